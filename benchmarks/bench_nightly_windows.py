"""Issue 7: the SQL models of one nightly increment, one window for all vs a window per model.

Usage (after ``bench_scale.py --workdir DIR`` generated DIR/generated of D+1 days):
    python benchmarks/bench_nightly_windows.py --workdir DIR [--repeats 3] [--json OUT]

On a warehouse fully built from the view (D days) with the held-back day ingested but not built
yet, times every SQL model (staging, intermediate, marts, kpi; the Python stages are left out) as
three builds run them: a full rebuild over D+1 days; the nightly with one window for every
incremental model (the earliest changed day minus the largest window, the rule before per-model
windows); the nightly with each model's own window (``plan_build_window``; the KPI windows as the
pipeline's build found them). Each build runs in a transaction that is rolled back, ``--repeats``
times; the best time per model counts (the machine is shared). Prints seconds per stage and the
share of the full rebuild.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
from bench_scale import build_view, first_day

from attribution.build_window import data_date_range
from attribution.config import Settings
from attribution.pipeline import PipelineRun, _stage_of, code_version, run_pipeline
from attribution.run_log import PUBLISHED_RUNS_SQL, last_published_build
from attribution.warehouse import (
    Model,
    atomic,
    connect,
    model_parameters,
    models,
    run_model,
    scalar,
    write_config_tables,
)

ModelWindow = tuple[date, date] | None
STAGES = ("sessions", "orders", "attribution", "lift", "kpi")

# the one-window rule this benchmark compares against: earliest changed day (sessions: the day
# before an event; orders: new rows' own dates) or the day after the last published window,
# minus the largest window
_NEW = f"_run_id NOT IN ({PUBLISHED_RUNS_SQL})"
ONE_WINDOW_EARLIEST_SQL = f"""
    SELECT min(d) FROM (
        SELECT cast(min(ts) AS DATE) - 1 AS d FROM raw_interactions WHERE {_NEW}
        UNION ALL SELECT cast(min(ts) AS DATE) FROM raw_visits WHERE {_NEW}
        UNION ALL SELECT cast(min(ts) AS DATE) FROM raw_orders WHERE {_NEW}
        UNION ALL SELECT min("date") FROM raw_fx_rates WHERE {_NEW}
    )
"""


def prepared_warehouse(workdir: Path, settings: Settings, day: date) -> Path:
    """Return a warehouse built from the view of the days before ``day`` with ``day``'s
    partitions ingested, not built (made once per workdir and day)."""
    path = workdir / f"windows-before-{day}.duckdb"
    if path.exists():
        return path
    view = workdir / "windows-view"
    build_view(workdir / "generated", view, day - timedelta(days=1))
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    run_pipeline(settings, landing_dir=view, warehouse_path=partial, expectations=False)
    build_view(workdir / "generated", view, day, only=day)
    nightly = PipelineRun(
        settings,
        landing_dir=view,
        warehouse_path=partial,
        mode="nightly",
        first_date=day,
        last_date=day,
        expectations=False,
    )
    nightly.ingest()
    partial.rename(path)
    return path


def per_model_windows(
    prepared: Path, settings: Settings, day: date, workdir: Path
) -> dict[str, Any]:
    """Return the summary of the pipeline's nightly build on a copy of ``prepared`` (the last
    build is marked as this code's, so that a library edited since does not force a rebuild)."""
    copy = workdir / "windows-plan.duckdb"
    shutil.copyfile(prepared, copy)
    con = connect(copy)
    con.execute("UPDATE _runs SET code_version = ?", [code_version()])
    con.close()
    run = PipelineRun(
        settings,
        landing_dir=workdir / "windows-view",
        warehouse_path=copy,
        mode="nightly",
        first_date=day,
        last_date=day,
        expectations=False,
    )
    summary = run.build()
    copy.unlink()
    return summary


def one_window_start(prepared: Path, settings: Settings) -> date:
    """Return the start of the single window every incremental model restated before."""
    con = connect(prepared, read_only=True)
    try:
        start, end = data_date_range(con)
        last = last_published_build(con)
        changed = min(last.end_date + timedelta(days=1), scalar(con, ONE_WINDOW_EARLIEST_SQL))
        return min(max(start, changed - timedelta(days=settings.max_window_days)), end)
    finally:
        con.close()


class RolledBack(Exception):
    """Raised at the end of a timed build so that ``atomic`` rolls it back."""


def timed_model(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    model: Model,
    window: ModelWindow,
    *,
    rebuild: bool,
) -> float:
    """Return the seconds one model takes over ``window`` (0 when it is not restated)."""
    if window is None:
        return 0.0
    started = time.perf_counter()
    run_model(con, model, model_parameters(settings, *window), rebuild=rebuild)
    return time.perf_counter() - started


def timed_build(
    prepared: Path,
    settings: Settings,
    window_of: Callable[[Model], ModelWindow],
    *,
    rebuild: bool,
    repeats: int,
) -> dict[str, float]:
    """Return the best seconds of every model over ``repeats`` rolled-back builds."""
    best: dict[str, float] = {}
    con = connect(prepared, memory_limit=settings.duckdb_memory_limit)
    try:
        for _ in range(repeats):
            try:
                with atomic(con):  # the models' own transactions join it; rolled back below
                    write_config_tables(con, settings)
                    for model in models():
                        best[model.name] = min(
                            best.get(model.name, float("inf")),
                            timed_model(con, settings, model, window_of(model), rebuild=rebuild),
                        )
                    raise RolledBack
            except RolledBack:
                pass
    finally:
        con.close()
    return best


def by_stage(seconds: dict[str, float]) -> dict[str, float]:
    stage_of = {model.name: _stage_of(model) for model in models()}
    totals = dict.fromkeys(STAGES, 0.0)
    for name, value in seconds.items():
        totals[stage_of[name]] += value
    return {stage: round(value, 3) for stage, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings(duckdb_memory_limit=args.memory_limit or None)
    meta = json.loads((args.workdir / "generated.json").read_text())
    day = first_day(args.workdir / "generated") + timedelta(days=meta["days"] - 1)
    prepared = prepared_warehouse(args.workdir, settings, day)
    con = connect(prepared, read_only=True)
    data_start, end = data_date_range(con)
    con.close()
    summary = per_model_windows(prepared, settings, day, args.workdir)
    own = {
        name: (date.fromisoformat(w[0]), date.fromisoformat(w[1])) if w else None
        for name, w in summary["model_windows"].items()
    }
    one_start = one_window_start(prepared, settings)

    def incremental(model: Model, window: ModelWindow) -> ModelWindow:
        return window if model.materialized == "incremental" else (window or (data_start, end))

    builds = {
        "full rebuild": timed_build(
            prepared, settings, lambda m: (data_start, end), rebuild=True, repeats=args.repeats
        ),
        f"nightly, one window from {one_start}": timed_build(
            prepared, settings, lambda m: (one_start, end), rebuild=False, repeats=args.repeats
        ),
        "nightly, a window per model": timed_build(
            prepared,
            settings,
            lambda m: incremental(m, own.get(m.name, (data_start, end))),
            rebuild=False,
            repeats=args.repeats,
        ),
    }
    full = by_stage(builds["full rebuild"])
    print(f"SQL models of the nightly {day} on {data_start} .. {end}; best of {args.repeats}")
    print(f"per-model windows: {summary['window_reason']}")
    print(f"{'build':45s}" + "".join(f"{s:>18s}" for s in (*STAGES, "all SQL")))
    for name, seconds in builds.items():
        stages = by_stage(seconds)
        total = sum(stages.values())
        cells = [
            f"{stages[s]:7.2f} s {100 * stages[s] / full[s] if full[s] else 0:4.0f}%"
            for s in STAGES
        ]
        cells.append(f"{total:7.2f} s {100 * total / sum(full.values()):4.0f}%")
        print(f"{name:45s}" + "".join(f"{c:>18s}" for c in cells))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "day": str(day),
                    "model_windows": summary["model_windows"],
                    "one_window_start": str(one_start),
                    "builds": builds,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
