"""Issue 8 benchmark: the same build on DuckDB and on Spark ``local[N]``, on the same landing.

Usage:
    uv run python benchmarks/bench_spark.py --workload S --json benchmarks/results-spark-S.json
    uv run python benchmarks/bench_spark.py --users N --days D [--seed S] [--workdir DIR]

Steps (one process; Spark's JVM is its child, so the sampled peak RSS covers both):

1. the landing folder of ``bench_scale.py`` (its generator call and its D-day view; a folder
   generated before in ``--workdir`` is reused);
2. ingest into a fresh DuckDB warehouse (shared by both engines: ingest stays DuckDB);
3. DuckDB: every model of staging, intermediate and marts, the data-driven and lift stages, the
   KPI layer and the audits, as a full ``attribution run`` builds them (one transaction);
4. the raw tables written to the lake (Parquet by day), then the same build on Spark
   (``spark_engine.build_on_spark``: the models transpiled by SQLGlot, the data-driven inputs
   from Spark, the lift in DuckDB on the driver over the lake), after starting a session;
5. rows per table compared (DuckDB table vs lake table); seconds per stage and per model, the
   ratio Spark / DuckDB, the CPU other processes used meanwhile (contention), the machine.

Figures, not asserts. On one machine Spark is expected to be slower (JVM start, a job per query,
Parquet between models); its point is that the same models run on a cluster.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import (  # noqa: E402  (the benchmarks folder is not a package)
    WORKLOADS,
    CpuWatch,
    _tree_rss_kib,
    build_view,
    ensure_generated,
    first_day,
    machine,
)

STAGES = ("models", "data_driven", "lift", "kpi", "audits")


class Watch:
    """Samples this process tree's RSS (Python + JVM) and other processes' CPU, per phase."""

    def __init__(self) -> None:
        import os

        self.pid = os.getpid()
        self.peak_kib = 0
        self.cpu = CpuWatch()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.cpu.sample(self.pid)
            self.peak_kib = max(self.peak_kib, _tree_rss_kib(self.pid))

    def __enter__(self) -> Watch:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu.sample(self.pid)
        self.seconds = round(time.perf_counter() - self.started, 3)

    def figures(self) -> dict[str, Any]:
        import os

        foreign = self.cpu.seconds()
        return {
            "seconds": self.seconds,
            "peak_mib": self.peak_kib // 1024,
            "foreign_cpu_seconds": round(foreign, 1),
            "foreign_cpu_share": round(foreign / (self.seconds * (os.cpu_count() or 1)), 2),
            "foreign_cpu_top": self.cpu.top(),
        }


class Lap:
    """Seconds between successive progress lines, keyed by the line's first word (a model)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, line: str) -> None:
        now = time.perf_counter()
        name = line.split(":", 1)[0]
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self.last, 3)
        self.last = now


def duckdb_build(warehouse: Path, settings: Any, start: Any, end: Any) -> dict[str, Any]:
    """Build every table in DuckDB as a full run does; seconds per stage and per model."""
    from attribution.journeys import write_attribution_by_touch_type
    from attribution.lift import write_lift_tables
    from attribution.pipeline import BUILD_LAYERS, KPI_LAYERS
    from attribution.warehouse import atomic, connect, run_audits, run_models

    per_model: dict[str, float] = {}
    stages: dict[str, float] = {}
    con = connect(
        warehouse, memory_limit=settings.duckdb_memory_limit, threads=settings.duckdb_threads
    )

    def layers(names: tuple[str, ...]) -> None:
        lap = time.perf_counter()
        for model, _rows in run_models(con, settings, start, end, names, rebuild=True):
            now = time.perf_counter()
            per_model[model.name] = round(now - lap, 3)
            lap = now

    def timed(stage: str, step: Any) -> None:
        started = time.perf_counter()
        step()
        stages[stage] = round(time.perf_counter() - started, 3)

    try:
        with atomic(con):
            timed("models", lambda: layers(BUILD_LAYERS))
            timed(
                "data_driven",
                lambda: write_attribution_by_touch_type(
                    con,
                    settings,
                    start,
                    end,
                    order=settings.data_driven_order,
                    touch_column=settings.data_driven_touch_column,
                ),
            )
            timed("lift", lambda: write_lift_tables(con, settings, start, end))
            timed("kpi", lambda: layers(KPI_LAYERS))
            audits: dict[str, int] = {}
            timed("audits", lambda: audits.update(run_audits(con, settings, start, end)))
    finally:
        con.close()
    return {"stages": stages, "models": per_model, "audits": audits}


def statistics_inputs(warehouse: Path, settings: Any, start: Any, end: Any) -> dict[str, Any]:
    """Rows the Python statistics read: the data-driven model's aggregated journeys (distinct
    paths) per window, and the lift's visitor-days (one row each, plus outcomes per window)."""
    from attribution.journeys import aggregated_journeys_for_window
    from attribution.warehouse import connect

    con = connect(warehouse, read_only=True)
    try:
        paths = {
            window: aggregated_journeys_for_window(
                con, window, start, end, settings.data_driven_touch_column
            ).height
            for window in settings.windows_days
        }
        visitor_days = con.execute(
            "SELECT count(*) FROM (SELECT user_id, visit_date FROM stg_visits "
            "UNION SELECT user_id, session_date FROM assistant_sessions)"
        ).fetchall()[0][0]
    finally:
        con.close()
    return {"data_driven_paths_per_window": paths, "lift_visitor_days": visitor_days}


def compare_rows(warehouse: Path, lake: Path, tables: list[str]) -> dict[str, list[int]]:
    """Rows per table: [DuckDB, lake] (equal when the engines agree on the table's size)."""
    from attribution import lake as lk
    from attribution.warehouse import connect

    con = connect(warehouse, read_only=True)
    try:
        return {
            table: [
                con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0],
                con.execute(
                    f"SELECT count(*) FROM ({lk.duckdb_reader_sql(lake, table)})"
                ).fetchall()[0][0],
            ]
            for table in tables
        }
    finally:
        con.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default=None)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g", help="spark.driver.memory (local mode)")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory limit")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    users = args.users or WORKLOADS[args.workload or "S"]
    name = args.workload or f"{users}u{args.days}d"
    workdir = args.workdir or Path(f"/tmp/bench/spark-{name}")
    workdir.mkdir(parents=True, exist_ok=True)

    from attribution.config import Settings
    from attribution.pipeline import PipelineRun
    from attribution.spark_engine import (
        build_on_spark,
        data_span,
        export_raw_to_lake,
        spark_session,
    )

    settings = Settings(duckdb_memory_limit=args.memory_limit)
    meta = ensure_generated(workdir, users, args.days, args.seed, None)
    generated = workdir / "generated"
    last = first_day(generated) + timedelta(days=args.days - 1)
    landing = workdir / "landing"
    build_view(generated, landing, last)
    warehouse, lake = workdir / "spark-bench.duckdb", workdir / "lake"
    for path in (warehouse, Path(f"{warehouse}.wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(lake, ignore_errors=True)
    figures: dict[str, Any] = {"users": users, "days": args.days, "seed": args.seed}
    figures["generated"] = meta

    print(f"ingest {landing} ...", flush=True)
    with Watch() as watch:
        run = PipelineRun(
            settings, landing_dir=landing, warehouse_path=warehouse, expectations=False
        )
        run.ingest()
        run.succeed()
        run.record()  # releases the warehouse's run lock
    figures["ingest"] = watch.figures()
    span = data_span(warehouse)
    assert span is not None, "nothing ingested"
    figures["window"] = [span[0].isoformat(), span[1].isoformat()]

    print("duckdb build ...", flush=True)
    with Watch() as watch:
        duck = duckdb_build(warehouse, settings, *span)
    figures["duckdb"] = duck | watch.figures()
    figures["statistics_inputs"] = statistics_inputs(warehouse, settings, *span)

    print("raw tables to the lake ...", flush=True)
    with Watch() as watch:
        exported = export_raw_to_lake(warehouse, lake)
    figures["export_raw"] = watch.figures() | {"rows": exported}

    print(f"spark {args.master} build ...", flush=True)
    with Watch() as watch:
        started = time.perf_counter()
        spark = spark_session(args.master, extra={"spark.driver.memory": args.driver_memory})
        session_seconds = round(time.perf_counter() - started, 3)
        lap = Lap()
        try:
            built = build_on_spark(spark, lake, settings, *span, progress=lap)
        finally:
            spark.stop()
    figures["spark"] = {
        "master": args.master,
        "driver_memory": args.driver_memory,
        "session_start_seconds": session_seconds,
        "stages": built.seconds,
        "models": {k: v for k, v in lap.seconds.items() if k in built.tables},
        "audits": built.audits,
        "not_produced": built.not_produced,
    } | watch.figures()
    figures["rows"] = compare_rows(warehouse, lake, sorted(built.tables))
    figures["rows_equal"] = all(a == b for a, b in figures["rows"].values())
    figures["machine"] = machine()
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return figures


def print_table(figures: dict[str, Any]) -> None:
    duck, spark = figures["duckdb"], figures["spark"]
    print(f"\n{figures['users']:,} users x {figures['days']} days; window {figures['window']}")
    print(f"{'stage':<14}{'duckdb s':>10}{'spark s':>10}{'ratio':>8}")
    for stage in STAGES:
        d, s = duck["stages"].get(stage), spark["stages"].get(stage)
        ratio = f"{s / d:.1f}x" if d and s else "-"
        print(f"{stage:<14}{d or 0:>10.1f}{s or 0:>10.1f}{ratio:>8}")
    total_d = sum(duck["stages"].values())
    total_s = sum(v for k, v in spark["stages"].items() if k in STAGES)
    print(f"{'build total':<14}{total_d:>10.1f}{total_s:>10.1f}{total_s / total_d:>7.1f}x")
    print(
        f"spark session start {spark['session_start_seconds']:.1f} s, reading raw "
        f"{spark['stages'].get('read_raw', 0):.1f} s; raw export "
        f"{figures['export_raw']['seconds']:.1f} s; ingest {figures['ingest']['seconds']:.1f} s"
    )
    print(
        f"peak RSS duckdb {duck['peak_mib']} MiB, spark (driver + JVM) {spark['peak_mib']} MiB; "
        f"other processes' CPU share: duckdb {duck['foreign_cpu_share']}, "
        f"spark {spark['foreign_cpu_share']}"
    )
    print(f"rows equal on both engines: {figures['rows_equal']}")
    print(f"Python statistics read: {figures['statistics_inputs']}")


if __name__ == "__main__":
    main()
