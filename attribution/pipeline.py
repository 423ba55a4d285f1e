"""The whole run as plain library calls: ingest -> expectations -> SQL models -> audits -> ``_runs``.

The Prefect flows in ``flows/`` call the same stage functions as tasks; the CLI calls
``run_pipeline`` directly (no orchestration overhead for cron or the demo).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from attribution import __version__
from attribution.config import Settings
from attribution.warehouse import connect, run_audits, run_models

Progress = Callable[[str], None]


class AuditFailed(RuntimeError):
    """An audit query returned offending rows: the run's tables are not trustworthy."""


@dataclass
class RunSummary:
    """What one pipeline run did: window, rows per stage, audits, timings and outcome."""

    run_id: str
    mode: str
    run_date: date | None
    start_date: date | None = None
    end_date: date | None = None
    ingest: dict[str, int] = field(default_factory=dict)
    model_rows: dict[str, int | None] = field(default_factory=dict)
    audits: dict[str, int] = field(default_factory=dict)
    expectations: str = "skipped"
    stage_seconds: dict[str, float] = field(default_factory=dict)
    outcome: str = "running"
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (dates as ISO strings)."""
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "run_date": _iso(self.run_date),
            "start_date": _iso(self.start_date),
            "end_date": _iso(self.end_date),
            "ingest": self.ingest,
            "model_rows": self.model_rows,
            "audits": self.audits,
            "expectations": self.expectations,
            "stage_seconds": self.stage_seconds,
            "outcome": self.outcome,
            "message": self.message,
        }


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


RUNS_DDL = """
CREATE TABLE IF NOT EXISTS _runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    mode VARCHAR,
    run_date DATE,
    start_date DATE,
    end_date DATE,
    settings_hash VARCHAR,
    code_version VARCHAR,
    rows_read BIGINT,
    rows_loaded BIGINT,
    duplicates BIGINT,
    quarantined BIGINT,
    model_rows VARCHAR,
    audits VARCHAR,
    expectations VARCHAR,
    stage_seconds VARCHAR,
    outcome VARCHAR,
    message VARCHAR
)
"""


def data_date_range(con: duckdb.DuckDBPyConnection) -> tuple[date, date] | None:
    """Return the first and last UTC date with interactions, visits or orders (None if empty)."""
    row = con.execute(
        """
        SELECT min(d), max(d) FROM (
            SELECT cast(ts AS DATE) AS d FROM raw_interactions
            UNION ALL SELECT cast(ts AS DATE) FROM raw_visits
            UNION ALL SELECT cast(ts AS DATE) FROM raw_orders
        )
        """
    ).fetchall()[0]
    if row[0] is None:
        return None
    return row[0], row[1]


def model_window(
    con: duckdb.DuckDBPyConnection, settings: Settings, run_date: date | None
) -> tuple[date, date] | None:
    """Return the output window to rebuild: everything, or [run_date - max window, run_date]."""
    if run_date is None:
        return data_date_range(con)
    # A nightly run restates the last max_window_days: late order updates and conversions whose
    # windows were still open change only inside that range.
    return run_date - timedelta(days=settings.max_window_days), run_date


def run_pipeline(
    settings: Settings,
    *,
    landing_dir: Path,
    warehouse_path: Path,
    run_date: date | None = None,
    expectations: bool = True,
    progress: Progress | None = None,
    run_time: datetime | None = None,
    per_file: bool = False,
) -> RunSummary:
    """Run ingest, expectations, models and audits into ``warehouse_path``; return the summary.

    Raises ``IngestError``, ``ExpectationsFailed`` or ``AuditFailed`` after recording the failed
    run in ``_runs``.
    """
    from attribution.ingest import ensure_raw_schema, ingest_landing

    say = progress or (lambda _msg: None)
    summary = RunSummary(
        run_id=f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        mode="nightly" if run_date else "full",
        run_date=run_date,
    )
    started = datetime.now(UTC).replace(tzinfo=None)
    con = connect(warehouse_path)
    try:
        con.execute(RUNS_DDL)
        ensure_raw_schema(con)
        try:
            with _timed(summary, "ingest"):
                say(f"ingest: reading {landing_dir}")
                result = ingest_landing(
                    con,
                    Path(landing_dir),
                    settings,
                    run_id=summary.run_id,
                    run_date=run_date,
                    run_time=run_time,
                )
                summary.ingest = result.totals()
                for line in result.lines(per_file=per_file):
                    say(line)
            if expectations:
                with _timed(summary, "expectations"):
                    from attribution.expectations import validate_loaded_batches

                    say("expectations: validating loaded batches")
                    docs_dir = settings.data_docs_dir or Path(warehouse_path).parent / "data_docs"
                    checked = validate_loaded_batches(con, summary.run_id, settings, docs_dir)
                    summary.expectations = checked.summary_line()
                    say(f"expectations: {summary.expectations}")
            window = model_window(con, settings, run_date)
            if window is None:
                summary.outcome = "empty"
                summary.message = "no interactions, visits or orders loaded yet"
                say(summary.message)
                return summary
            summary.start_date, summary.end_date = window
            with _timed(summary, "models"):
                for model, rows in run_models(con, settings, *window):
                    summary.model_rows[model.name] = rows
                    if rows is not None:
                        say(f"model {model.name}: {rows:,} rows")
            with _timed(summary, "data_driven"):
                from attribution.journeys import write_attribution_by_touch_type

                # the data-driven summary covers every loaded day (journeys need whole history)
                everything = data_date_range(con) or window
                rows = write_attribution_by_touch_type(
                    con,
                    settings,
                    *everything,
                    order=settings.data_driven_order,
                    touch_column=settings.data_driven_touch_column,
                )
                summary.model_rows["fct_attribution_by_touch_type"] = rows
                say(f"model fct_attribution_by_touch_type: {rows:,} rows")
            with _timed(summary, "lift"):
                from attribution.lift import write_lift_tables

                # adjusted/experiment lift and the other periods/segments, over every loaded day
                everything = data_date_range(con) or window
                rows = write_lift_tables(con, settings, *everything)
                summary.model_rows["fct_conversion_lift_python"] = rows
                say(f"model fct_conversion_lift (python methods): {rows:,} rows")
            with _timed(summary, "audits"):
                summary.audits = run_audits(con, settings, *window)
            failed = {name: n for name, n in summary.audits.items() if n}
            if failed:
                raise AuditFailed(
                    "audits found offending rows: "
                    + ", ".join(f"{name} ({n})" for name, n in sorted(failed.items()))
                )
            summary.outcome = "succeeded"
            return summary
        except Exception as exc:
            summary.outcome = "failed"
            summary.message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            _record_run(con, settings, summary, started)
    finally:
        con.close()


class _timed:
    """Context manager adding a stage's wall-clock seconds to the summary."""

    def __init__(self, summary: RunSummary, stage: str) -> None:
        self.summary, self.stage = summary, stage

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.summary.stage_seconds[self.stage] = round(time.perf_counter() - self.t0, 3)


def _record_run(
    con: duckdb.DuckDBPyConnection, settings: Settings, summary: RunSummary, started: datetime
) -> None:
    con.execute(
        "INSERT INTO _runs VALUES ($run_id, $started_at, $finished_at, $mode, $run_date, "
        "$start_date, $end_date, $settings_hash, $code_version, $rows_read, $rows_loaded, "
        "$duplicates, $quarantined, $model_rows, $audits, $expectations, $stage_seconds, "
        "$outcome, $message)",
        {
            "run_id": summary.run_id,
            "started_at": started,
            "finished_at": datetime.now(UTC).replace(tzinfo=None),
            "mode": summary.mode,
            "run_date": summary.run_date,
            "start_date": summary.start_date,
            "end_date": summary.end_date,
            "settings_hash": settings.settings_hash(),
            "code_version": __version__,
            "rows_read": summary.ingest.get("rows_read", 0),
            "rows_loaded": summary.ingest.get("rows_loaded", 0),
            "duplicates": summary.ingest.get("duplicates", 0),
            "quarantined": summary.ingest.get("quarantined", 0),
            "model_rows": json.dumps(summary.model_rows, sort_keys=True),
            "audits": json.dumps(summary.audits, sort_keys=True),
            "expectations": summary.expectations,
            "stage_seconds": json.dumps(summary.stage_seconds, sort_keys=True),
            "outcome": summary.outcome,
            "message": summary.message,
        },
    )
