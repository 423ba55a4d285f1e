"""The pipeline as library stages: ingest -> build -> gate -> publish -> report, recorded in ``_runs``.

Modes (docs/operations.md):

* ``full``: every landing file; every day of the data rebuilt;
* ``nightly``: the ``dt=run_date`` partitions (and undated files); only what the new data can change
  is rebuilt (``plan_build_window``);
* ``backfill``: the partitions of a date range; the same code path as nightly.

Build: the SQL layers staging -> intermediate -> marts for the window, then the Python stages
(data-driven model, lift methods) over the whole data, then the KPI layer for the window.

Publishing is gated: the build runs inside one DuckDB transaction; the gate (every
``sql/audits`` query, and the Great Expectations suites of every load not yet covered by a
published build) runs inside it, after the build; only if the gate passes is the transaction
committed. A failed gate rolls everything back, so the last good tables stay published, the
report is not rewritten, and the run fails with ``GateFailed`` naming the reasons. The report
is written after the commit into a temporary folder that is swapped into place.

The Prefect flows in ``flows/`` call the same ``PipelineRun`` stages as tasks; the CLI calls
``run_pipeline``. This module never imports Prefect.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from attribution import __version__
from attribution.build_window import (
    BuildWindow,
    changed_kpi_lift_periods,
    earliest,
    keep_kpi_lift_rows,
    plan_build_window,
    restated_summary,
    settled_lift_through,
)
from attribution.config import Settings
from attribution.faults import checkpoint
from attribution.progress import Reporter, as_reporter
from attribution.run_lock import RunLock, WarehouseBusy
from attribution.run_log import (
    ensure_runs_table,
    mark_interrupted_runs,
    record_run,
    unpublished_run_ids,
)
from attribution.warehouse import (
    Model,
    atomic,
    connect,
    models,
    run_audits,
    run_models,
    scalar,
)

if TYPE_CHECKING:
    from attribution.report import ReportResult

MODES: tuple[str, ...] = ("full", "nightly", "backfill")
BUILD_LAYERS: tuple[str, ...] = ("staging", "intermediate", "marts")
KPI_LAYERS: tuple[str, ...] = ("kpi",)
_SESSION_MODELS = frozenset(
    {"int_interaction_sessions", "assistant_sessions", "int_session_products"}
)
# Rows in / out of the SQL stages: (the models whose rows written this run count as the stage's
# input, the models whose rows count as its output; None = every table of the stage). The lift
# stage's input is counted by its Python step, which also finishes it.
STAGE_ROWS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "sessions": (("int_interaction_sessions",), ("assistant_sessions",)),
    "orders": (("int_order_lines",), ("int_orders",)),
    "attribution": (("int_order_lines",), ("fct_attribution",)),
    "lift": ((), ("fct_conversion_lift",)),
    "kpi": (
        (
            "assistant_sessions",
            "int_orders",
            "fct_attribution",
            "fct_conversion_lift",
            "fct_conversion_lift_python",
        ),
        None,
    ),
}


class GateFailed(RuntimeError):
    """The publishing gate refused the build: audits or expectations failed."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__(
            "publishing gate failed: "
            + "; ".join(reasons)
            + ". Nothing was published: the last good tables and report stay in place."
        )


@dataclass
class StageFigures:
    """Rows into and out of one stage, and its wall-clock seconds."""

    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "seconds": self.seconds}


@dataclass
class RunSummary:
    """What one pipeline run did: partitions, window, rows per stage, gate, publish, outcome."""

    run_id: str
    mode: str
    run_date: date | None
    first_date: date | None = None
    last_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    window_reason: str = ""
    # what the Python lift stage kept of the published rows (a nightly build; part of the reason)
    lift_kept: str = ""
    # incremental models: the days each restated ([first, last] as ISO dates; None: not restated)
    model_windows: dict[str, list[str] | None] = field(default_factory=dict)
    ingest: dict[str, int] = field(default_factory=dict)
    model_rows: dict[str, int | None] = field(default_factory=dict)
    stages: dict[str, StageFigures] = field(default_factory=dict)
    audits: dict[str, int] = field(default_factory=dict)
    expectations: str = "skipped"
    gate: str = "not_run"
    published: bool = False
    report: dict[str, Any] = field(default_factory=dict)
    outcome: str = "running"
    message: str = ""
    settings_hash: str = ""
    code_version: str = ""

    @property
    def stage_seconds(self) -> dict[str, float]:
        return {name: figures.seconds for name, figures in self.stages.items()}

    def as_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (dates as ISO strings, no Decimal)."""
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "run_date": _iso(self.run_date),
            "first_date": _iso(self.first_date),
            "last_date": _iso(self.last_date),
            "start_date": _iso(self.start_date),
            "end_date": _iso(self.end_date),
            "window_reason": self.window_reason,
            "model_windows": self.model_windows,
            "ingest": self.ingest,
            "model_rows": self.model_rows,
            "stages": {name: figures.as_json() for name, figures in self.stages.items()},
            "stage_seconds": self.stage_seconds,
            "audits": self.audits,
            "expectations": self.expectations,
            "gate": self.gate,
            "published": self.published,
            "report": self.report,
            "outcome": self.outcome,
            "message": self.message,
            "settings_hash": self.settings_hash,
            "code_version": self.code_version,
        }


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


@lru_cache(maxsize=1)
def code_version() -> str:
    """Return the package version plus a digest of the library's Python and SQL sources."""
    from attribution.warehouse import sql_dir

    package = Path(__file__).resolve().parent
    sql = sql_dir()
    digest = hashlib.sha256()
    sources = [(f"attribution/{p.name}", p) for p in package.glob("*.py")]
    sources += [(f"sql/{p.relative_to(sql).as_posix()}", p) for p in sql.rglob("*.sql")]
    for name, path in sorted(sources):
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


# --- the run ----------------------------------------------------------------------------------


def _stage_of(model: Model) -> str:
    if model.layer == "kpi":
        return "kpi"
    if model.name.startswith("fct_conversion_lift"):
        return "lift"
    if model.name.startswith("fct_attribution"):
        return "attribution"
    if model.name in _SESSION_MODELS:
        return "sessions"
    return "orders"


def _model_line(model: Model, rows: int | None, days: tuple[date, date] | None, full: bool) -> str:
    """Return the progress line of one model: rows written, and in a nightly build its days."""
    if rows is None:
        return ""
    if full or model.materialized != "incremental":
        return f"{model.name}: {rows:,} rows"
    if days is None:
        return f"{model.name}: not restated (nothing it reads changed)"
    return f"{model.name}: {rows:,} rows, {days[0]} .. {days[1]}"


def _restated_note(starts: list[date | None] | None) -> str:
    """Return ', restated from <day>' for a stage of a nightly build ('' for a full build)."""
    if not starts:
        return ""
    first = earliest(starts)
    return f", restated from {first}" if first else ", not restated"


class PipelineRun:
    """One run's stages on one warehouse. Each stage opens and closes its own connection, so
    the Prefect flow can run them as separate tasks; the summary collects what they did."""

    def __init__(
        self,
        settings: Settings,
        *,
        landing_dir: Path,
        warehouse_path: Path,
        mode: str = "full",
        first_date: date | None = None,
        last_date: date | None = None,
        report_dir: Path | None = None,
        report_period: str = "all",
        expectations: bool = True,
        run_time: datetime | None = None,
        progress: Reporter | Callable[[str], None] | None = None,
        per_file: bool = False,
        run_id: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
        if mode != "full" and (first_date is None or last_date is None):
            raise ValueError(f"a {mode} run needs its first and last partition dates")
        if first_date and last_date and last_date < first_date:
            raise ValueError(f"the range ends ({last_date}) before it starts ({first_date})")
        self.settings = settings
        self.landing_dir = Path(landing_dir)
        self.warehouse_path = Path(warehouse_path)
        self.report_dir = Path(report_dir) if report_dir is not None else None
        self.report_period = report_period
        self.expectations = expectations
        self.run_time = run_time
        self.per_file = per_file
        self.reporter = as_reporter(progress)
        self.started = datetime.now(UTC).replace(tzinfo=None)
        self._lock: RunLock | None = None  # taken by the first stage, released by record()
        self._refused = False  # another run held the warehouse: nothing touched, nothing recorded
        self.summary = RunSummary(
            run_id=run_id or f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
            mode=mode,
            run_date=first_date if mode == "nightly" else None,
            first_date=first_date,
            last_date=last_date,
            settings_hash=settings.settings_hash(),
            code_version=code_version(),
        )

    # stages -----------------------------------------------------------------------------------

    def ingest(self) -> dict[str, Any]:
        """Load the run's landing partitions (one transaction per file); return the totals."""
        from attribution.ingest import ensure_raw_schema, ingest_landing

        s = self.summary
        span = (s.first_date, s.last_date) if s.mode != "full" else None
        with self._stage("ingest") as figures, self._connection() as con:
            ensure_raw_schema(con)
            self.reporter.start("ingest")
            result = ingest_landing(
                con,
                self.landing_dir,
                self.settings,
                run_id=s.run_id,
                run_time=self.run_time,
                date_span=span,  # type: ignore[arg-type]
                on_file=self._file_done,
            )
            s.ingest = result.totals()
            figures.rows_in, figures.rows_out = result.rows_read, result.rows_loaded
            self.reporter.finish(
                "ingest",
                f"{result.rows_read:,} rows read, {result.rows_loaded:,} loaded, "
                f"{result.duplicates:,} duplicates, {result.quarantined:,} quarantined",
            )
            for line in result.lines(per_file=self.per_file):
                self.reporter.note(line)
        checkpoint("ingest:done")
        return dict(s.ingest)

    def _file_done(self, index: int, total: int, result: Any) -> None:
        if index == 1:
            self.reporter.start("ingest", total)
        self.reporter.advance("ingest", f"{result.file} ({result.status})")
        checkpoint("ingest:file")

    def build(self) -> dict[str, Any]:
        """Rebuild what the new data can change, run the gate, and publish by committing.

        Raises ``GateFailed`` (rolled back, nothing published) when audits or expectations fail.
        """
        s = self.summary
        with self._connection() as con:
            window = plan_build_window(
                con, self.settings, full=s.mode == "full", version=s.code_version
            )
            if window is None:
                s.outcome, s.message = "empty", "no interactions, visits or orders loaded yet"
                self.reporter.note(s.message)
                return s.as_json()
            self._set_window(window)
            note = "" if window.full else "; kpi also where the lift stage changes rows it reads"
            self.reporter.note(
                f"build window {window.start} .. {window.end}: {s.window_reason}{note}"
            )
            with atomic(con):
                window = self._build_models(con, window)
                self._set_window(window)
                self._gate(con, window)
                # the record of the publication commits with the tables it publishes
                record_run(con, {**self._record_values(finished=False), "published": True})
                checkpoint("build:gated")
            s.published = True
            checkpoint("build:committed")
            self.reporter.note(f"published: window {window.start} .. {window.end}")
        return s.as_json()

    def _set_window(self, window: BuildWindow) -> None:
        """Record the build's window: overall days, reason with the restated days per stage, and
        each incremental model's restated days."""
        s = self.summary
        windows = window.restated_windows()
        s.start_date, s.end_date = window.start, window.end
        s.window_reason = window.reason
        if not window.full:
            stages = {model.name: _stage_of(model) for model in models()}
            s.window_reason += f"; restating {restated_summary(windows, stages.__getitem__)}"
        if s.lift_kept:
            s.window_reason += f"; {s.lift_kept}"
        s.model_windows = {
            name: [days[0].isoformat(), days[1].isoformat()] if days else None
            for name, days in windows.items()
        }

    def _build_models(self, con: duckdb.DuckDBPyConnection, window: BuildWindow) -> BuildWindow:
        """Build every layer; return the window with the KPI models' final windows (they read
        the lift rows, known once the lift stage has run)."""
        from attribution.journeys import write_attribution_by_touch_type
        from attribution.lift import write_lift_tables

        s, settings = self.summary, self.settings
        started = time.perf_counter()
        kept = not window.full and keep_kpi_lift_rows(con, settings)
        keep_seconds = time.perf_counter() - started
        self._run_layers(con, window, BUILD_LAYERS)
        checkpoint("build:models")
        with self._stage("data_driven") as figures:
            self.reporter.start("data_driven")
            # journeys need the whole history: the data-driven summary covers every loaded day
            figures.rows_in = s.model_rows.get("fct_attribution") or 0
            figures.rows_out = write_attribution_by_touch_type(
                con,
                settings,
                window.data_start,
                window.end,
                order=settings.data_driven_order,
                touch_column=settings.data_driven_touch_column,
            )
            s.model_rows["fct_attribution_by_touch_type"] = figures.rows_out
            self.reporter.finish(
                "data_driven", f"{figures.rows_in:,} rows in, {figures.rows_out:,} out"
            )
        with self._stage("lift") as figures:
            self.reporter.start("lift")
            # adjusted/experiment lift and the other periods/segments, over every loaded day
            settled = settled_lift_through(con, window)
            written = write_lift_tables(
                con, settings, window.data_start, window.end, settled_through=settled
            )
            rows = written.rows
            s.model_rows["fct_conversion_lift_python"] = rows
            if settled is not None:
                s.lift_kept = (
                    f"lift kept the day/week/month periods through {settled} "
                    f"({written.kept:,} of {rows:,} rows)"
                )
            figures.rows_in += int(
                scalar(
                    con,
                    "SELECT (SELECT count(*) FROM stg_visits) "
                    "+ (SELECT count(*) FROM assistant_sessions)",
                )
            )
            figures.rows_out += rows
            self.reporter.finish(
                "lift",
                f"{figures.rows_in:,} rows in, {figures.rows_out:,} out"
                + (f" ({written.kept:,} of them kept, settled)" if settled else ""),
            )
        if not window.full:
            with self._stage("kpi") as figures:  # finding the KPI windows is the KPI stage's work
                figures.seconds += keep_seconds
                changed = changed_kpi_lift_periods(
                    con, settings, kept=kept, data_start=window.data_start
                )
                window = window.with_changes(settings, **changed)
        self._run_layers(con, window, KPI_LAYERS)
        return window

    def _run_layers(
        self, con: duckdb.DuckDBPyConnection, window: BuildWindow, layers: tuple[str, ...]
    ) -> None:
        s = self.summary
        remaining = Counter(_stage_of(m) for m in models(layers))
        for stage, n in remaining.items():
            self.reporter.start(stage, n)
        started = time.perf_counter()
        restated: dict[str, list[date | None]] = {}
        for model, rows in run_models(
            con,
            self.settings,
            window.start,
            window.end,
            layers,
            rebuild=window.full,
            window_of=window.window_of,
        ):
            stage = _stage_of(model)
            figures = s.stages.setdefault(stage, StageFigures())
            now = time.perf_counter()
            figures.seconds = round(figures.seconds + now - started, 3)
            started = now
            s.model_rows[model.name] = rows
            inputs, outputs = STAGE_ROWS.get(stage, ((), None))
            if rows is not None and (outputs is None or model.name in outputs):
                figures.rows_out += rows
            days = window.restated_days(model)
            if model.materialized == "incremental" and not window.full:
                restated.setdefault(stage, []).append(days[0] if days else None)
            self.reporter.advance(stage, _model_line(model, rows, days, window.full))
            remaining[stage] -= 1
            if remaining[stage] == 0 and stage != "lift":  # lift ends with its Python step
                figures.rows_in = sum(s.model_rows.get(name) or 0 for name in inputs)
                self.reporter.finish(
                    stage,
                    f"{figures.rows_in:,} rows in, {figures.rows_out:,} out"
                    + _restated_note(restated.get(stage)),
                )

    def _gate(self, con: duckdb.DuckDBPyConnection, window: BuildWindow) -> None:
        s = self.summary
        reasons: list[str] = []
        with self._stage("gate") as figures:
            self.reporter.start("gate")
            s.audits = run_audits(con, self.settings, window.start, window.end)
            failed = {name: n for name, n in s.audits.items() if n}
            figures.rows_in = len(s.audits)
            figures.rows_out = sum(failed.values())
            if failed:
                reasons.append(
                    "audits found offending rows: "
                    + ", ".join(f"{name} ({n})" for name, n in sorted(failed.items()))
                )
            if self.expectations:
                reasons += self._expectations(con)
            s.gate = "failed" if reasons else "passed"
            self.reporter.finish("gate", s.gate if not reasons else "; ".join(reasons))
        if reasons:
            raise GateFailed(reasons)

    def _expectations(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        from attribution.expectations import (
            ExpectationsFailed,
            default_data_docs_dir,
            validate_loaded_batches,
        )

        s = self.summary
        docs_dir = default_data_docs_dir(self.settings, self.warehouse_path)
        try:
            checked = validate_loaded_batches(
                con, s.run_id, self.settings, docs_dir, batch_run_ids=unpublished_run_ids(con)
            )
        except ExpectationsFailed as exc:
            s.expectations = exc.result.summary_line()
            return [f"expectations: {exc}"]
        s.expectations = checked.summary_line()
        self.reporter.note(f"expectations: {s.expectations}")
        return []

    def report(self) -> dict[str, Any]:
        """Write the report and exports for the published tables (atomically swapped in)."""
        from attribution.report import write_report

        if self.report_dir is None:
            raise ValueError("this run has no report folder")
        s = self.summary
        with self._stage("report") as figures:
            self.reporter.start("report")
            result = write_report(
                self.warehouse_path, self.report_dir, self.settings, period=self.report_period
            )
            s.report = report_json(result)
            # the floor hides cells, never rows: every table row read is exported
            figures.rows_in = figures.rows_out = result.exported_rows
            self.reporter.finish("report", str(s.report.get("index_html")))
        checkpoint("report:done")
        return dict(s.report)

    def succeed(self) -> None:
        s = self.summary
        if s.outcome == "running":
            s.outcome = "succeeded"

    def fail(self, exc: BaseException) -> None:
        self.summary.outcome = "failed"
        self.summary.message = f"{type(exc).__name__}: {exc}"

    def record(self) -> None:
        """Write this run's final row into ``_runs`` (window, settings hash, code version, stages)
        and release the run lock. A run refused the warehouse (another run held it) records
        nothing: it never touched the warehouse."""
        if self._refused:
            return
        try:
            with self._connection() as con:
                record_run(con, self._record_values(finished=True))
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _record_values(self, *, finished: bool) -> dict[str, Any]:
        """Return this run's ``_runs`` row as it stands (column -> value)."""
        s = self.summary
        return {
            "run_id": s.run_id,
            "started_at": self.started,
            "finished_at": datetime.now(UTC).replace(tzinfo=None) if finished else None,
            "mode": s.mode,
            "run_date": s.run_date,
            "first_date": s.first_date,
            "last_date": s.last_date,
            "start_date": s.start_date,
            "end_date": s.end_date,
            "window_reason": s.window_reason,
            "model_windows": json.dumps(s.model_windows, sort_keys=True),
            "settings_hash": s.settings_hash,
            "code_version": s.code_version,
            "rows_read": s.ingest.get("rows_read", 0),
            "rows_loaded": s.ingest.get("rows_loaded", 0),
            "duplicates": s.ingest.get("duplicates", 0),
            "quarantined": s.ingest.get("quarantined", 0),
            "model_rows": json.dumps(s.model_rows, sort_keys=True),
            "stages": json.dumps({k: v.as_json() for k, v in s.stages.items()}, sort_keys=True),
            "stage_seconds": json.dumps(s.stage_seconds, sort_keys=True),
            "audits": json.dumps(s.audits, sort_keys=True),
            "expectations": s.expectations,
            "gate": s.gate,
            "published": s.published,
            "report_path": s.report.get("index_html"),
            "suppressed_cells": s.report.get("suppressed_cells"),
            "outcome": s.outcome,
            "message": s.message,
        }

    # helpers ----------------------------------------------------------------------------------

    def _hold_warehouse(self) -> None:
        """Take the warehouse's run lock for the rest of the run (first call only).

        Waits up to ``run_lock_wait_seconds`` for another run, then raises ``WarehouseBusy``
        (nothing read or written). Holding it, marks runs left ``running`` by killed processes
        as interrupted and records this run as running.
        """
        if self._lock is not None:
            return
        lock = RunLock(self.warehouse_path, self.summary.run_id)
        try:
            left = lock.acquire(self.settings.run_lock_wait_seconds)
        except WarehouseBusy:
            self._refused = True
            raise
        self._lock = lock
        if left is not None:
            self.reporter.note(
                f"took over the run lock of {left.describe()}, which ended without releasing it"
            )
        with self._open() as con:
            for run_id in mark_interrupted_runs(con, self.summary.run_id):
                self.reporter.note(f"run {run_id} was interrupted (its process ended mid-run)")
            record_run(con, self._record_values(finished=False))
        checkpoint("run:locked")

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the warehouse for a stage, holding the run lock (taken on first use)."""
        self._hold_warehouse()
        with self._open() as con:
            yield con

    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(
            self.warehouse_path,
            memory_limit=self.settings.duckdb_memory_limit,
            threads=self.settings.duckdb_threads,
        )
        try:
            ensure_runs_table(con)
            yield con
        finally:
            con.close()

    @contextmanager
    def _stage(self, name: str) -> Iterator[StageFigures]:
        figures = self.summary.stages.setdefault(name, StageFigures())
        started = time.perf_counter()
        try:
            yield figures
        finally:
            figures.seconds = round(figures.seconds + time.perf_counter() - started, 3)


def report_json(result: ReportResult) -> dict[str, Any]:
    """JSON figures of a published report: its files, exported rows, suppressed cells, headline."""
    return {
        "index_html": str(result.index_html),
        "exports": [str(p) for p in result.exports],
        "images": [str(p) for p in result.images],
        "exported_rows": result.exported_rows,
        "suppressed_cells": sum(result.suppressed_cells.values()),
        "png_note": result.png_note,
        "headline": list(result.headline),
        "period": result.period,
    }


def run_pipeline(
    settings: Settings,
    *,
    landing_dir: Path,
    warehouse_path: Path,
    run_date: date | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    expectations: bool = True,
    progress: Reporter | Callable[[str], None] | None = None,
    run_time: datetime | None = None,
    per_file: bool = False,
    report_dir: Path | None = None,
    report_period: str = "all",
) -> RunSummary:
    """Run one pipeline run and return its summary: full (no dates), nightly (``run_date``) or
    backfill (``start_date``..``end_date``); with ``report_dir`` the report is published too.

    Raises ``IngestError``, ``GateFailed`` or another error after recording the failed run in
    ``_runs``; a failed gate publishes nothing.
    """
    if run_date is not None and (start_date or end_date):
        raise ValueError("give run_date (nightly) or start_date/end_date (backfill), not both")
    if (start_date is None) != (end_date is None):
        raise ValueError("a backfill needs both start_date and end_date")
    mode = "nightly" if run_date else "backfill" if start_date else "full"
    run = PipelineRun(
        settings,
        landing_dir=landing_dir,
        warehouse_path=warehouse_path,
        mode=mode,
        first_date=run_date or start_date,
        last_date=run_date or end_date,
        report_dir=report_dir,
        report_period=report_period,
        expectations=expectations,
        run_time=run_time,
        progress=progress,
        per_file=per_file,
    )
    try:
        run.ingest()
        run.build()
        if run.report_dir is not None and run.summary.published:
            run.report()
        run.succeed()
        return run.summary
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        run.record()
