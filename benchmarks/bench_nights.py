"""Issue 9 load: nightly runs one after another over a long history; does a night cost more as
the history grows?

Usage:
    python benchmarks/bench_nights.py --users 20000 --history 120 --nights 10 --json OUT
    python benchmarks/bench_nights.py --workload S --history 335 --nights 30    # a year at S
    python benchmarks/bench_nights.py --verdict-of RESULTS.json   # again, e.g. of a partial file

``--users`` sets the size of a day (the generator's activity per user and day is fixed: S =
200k users is about 33k interactions a day); ``--history`` days are built by one full run, then
``--nights`` nightly runs follow, each adding the next generated day (its partitions hard-linked
into the landing view, as upstream delivers them), as ``attribution run --date D`` does: ingest,
build, gate (expectations unless --no-expectations), publish, report (no PNG images unless
--png). Each run is a fresh child process (``bench_scale.run_child``: peak RSS, contention).

Per night it prints and writes to JSON: seconds of the run and of each stage (from ``_runs``),
the rows written per model, the restated window, every table's rows and the warehouse file's
bytes, peak RSS. The verdict fits a line to seconds vs night index (per stage too) and states
the growth over the nights relative to the mean, beside the growth of the data itself: a stage
that recomputes the whole history grows with the data; one that restates a bounded window does
not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench_scale import (
    WORKLOADS,
    build_view,
    ensure_generated,
    first_day,
    read_run,
    remove_warehouse,
    run_child,
    start_bench,
)

FLAT = 0.10  # growth over the nights below 10% of the mean: flat


def table_sizes(warehouse: Path) -> dict[str, Any]:
    """Rows of every table (views left out) and the bytes of the warehouse file and its WAL."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1"
            ).fetchall()
        ]
        rows = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0] for n in names}
    finally:
        con.close()
    wal = Path(f"{warehouse}.wal")
    return {
        "rows": rows,
        "total_rows": sum(rows.values()),
        "file_bytes": warehouse.stat().st_size + (wal.stat().st_size if wal.exists() else 0),
    }


def control_seconds() -> float:
    """Seconds of a fixed CPU and memory workload (DuckDB, one thread, and numpy; best of 3),
    timed before every run: the machine's own drift over a long load, to tell it from the
    pipeline's (a shared or throttled host slows every stage alike)."""
    import duckdb
    import numpy as np

    con = duckdb.connect()
    con.execute("SET threads = 1")
    values = np.arange(40_000_000, dtype=np.float64)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        con.execute("SELECT sum(i * i) FROM range(60000000) AS t(i)").fetchall()
        (values * 1.0001).sum()
        best = min(best, time.perf_counter() - t0)
    con.close()
    return round(best, 4)


def slope(values: list[float]) -> float:
    """Least-squares slope of values against their index 0, 1, 2, ..."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(n))


def growth(values: list[float]) -> dict[str, Any]:
    """The fitted change over the series relative to its mean, and whether that is flat."""
    mean = sum(values) / len(values) if values else 0.0
    per_night = slope(values)
    over_series = per_night * (len(values) - 1) / mean if mean else 0.0
    return {
        "mean": round(mean, 3),
        "slope_per_night": round(per_night, 4),
        "growth_over_nights": round(over_series, 3),
        "verdict": "grows"
        if over_series >= FLAT
        else "shrinks"
        if over_series <= -FLAT
        else "flat",
    }


def verdict(nights: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth of the run time, of each stage, of the rows written and of the data; the same
    over the uncontended nights alone (``uncontended``) when other processes took CPU on some."""
    stages = sorted({s for n in nights for s in n["stage_seconds"]})
    rows = [n["sizes"]["total_rows"] for n in nights]

    def seconds_growth(of: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "seconds": growth([n["seconds"] for n in of]),
            "stages": {s: growth([n["stage_seconds"].get(s, 0.0) for n in of]) for s in stages},
        }

    quiet = [n for n in nights if not n.get("contended")]
    extra: dict[str, Any] = {}
    if len(quiet) not in (0, len(nights)):
        extra["uncontended"] = {"nights": len(quiet), **seconds_growth(quiet)}
    controls = [n["control_seconds"] for n in nights if n.get("control_seconds")]
    if len(controls) == len(nights):
        # the run time in units of the control workload: what the pipeline itself grew
        mean = sum(controls) / len(controls)
        extra["control_seconds"] = growth(controls)
        extra["seconds_at_mean_control"] = growth(
            [n["seconds"] * mean / n["control_seconds"] for n in nights]
        )
    return {
        **extra,
        **seconds_growth(nights),
        "rows_written": growth([float(n["rows_written"]) for n in nights]),
        "peak_rss_mib": growth([float(n["peak_rss_mib"]) for n in nights]),
        "data_growth_over_nights": round((rows[-1] - rows[0]) / rows[0], 3) if rows else None,
    }


def rows_written(run: dict[str, Any]) -> int:
    return sum(v or 0 for v in run["model_rows"].values())


def with_verdict(figures: dict[str, Any]) -> dict[str, Any]:
    """Set the verdict and the nightly shares of the full run from the nights so far."""
    figures["verdict"] = verdict(figures["nights"])
    figures["nightly_share_of_full"] = share_of_full(figures["full"], figures["nights"])
    return figures


def save(figures: dict[str, Any], path: Path | None) -> None:
    """Write the figures so far (a partial file until the last night: ``complete`` false)."""
    if path:
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        tmp.replace(path)


def run_nights(
    args: argparse.Namespace, code_dir: str | None, figures: dict[str, Any]
) -> dict[str, Any]:
    """Run the full history then the nights, adding their figures to ``figures`` and writing
    them to ``--json`` after every run, so a long load interrupted midway keeps its nights."""
    workdir: Path = args.workdir
    # every generated day (and the order updates up to ~3 weeks after it) lies in the past: the
    # ingest quarantines timestamps beyond the run time (future_tolerance_days)
    days = args.history + args.nights
    start = date.today() - timedelta(days=days + 30)
    meta = ensure_generated(workdir, args.users, days - 1, args.seed, code_dir, start)
    generated = workdir / "generated"
    first = first_day(generated)
    last = first + timedelta(days=args.history - 1)
    view, warehouse, report = workdir / "landing", workdir / "warehouse.duckdb", workdir / "report"
    build_view(generated, view, last)
    remove_warehouse(warehouse)
    params = {
        "memory_limit": args.memory_limit,
        "threads": args.threads,
        "code_dir": code_dir,
        "landing": str(view),
        "warehouse": str(warehouse),
        "report_dir": str(report),
        "expectations": not args.no_expectations,
    }

    def night(name: str, day: date | None) -> dict[str, Any]:
        p = {**params, "run_date": day.isoformat() if day else None}
        control = control_seconds()
        result = run_child(
            "pipeline", p, workdir / "logs" / f"{name}.log", Path(f"{warehouse}.tmp")
        )
        result.update(read_run(warehouse, result["run_id"]))
        result["sizes"] = table_sizes(warehouse)
        result["rows_written"] = rows_written(result)
        result["control_seconds"] = control
        print(
            f"  {name}: {result['seconds']:.1f} s, peak {result['peak_rss_mib']} MiB, window "
            f"{result.get('start_date')} .. {result.get('end_date')}, "
            f"{result['rows_written']:,} rows written, {result['sizes']['total_rows']:,} rows, "
            f"{result['sizes']['file_bytes'] / 2**20:.0f} MiB, {result['outcome']}"
            + (f" ({result['error']})" if result.get("error") else "")
            + (" (contended)" if result["contended"] else ""),
            flush=True,
        )
        return result

    print(f"history {first} .. {last}: full run ...", flush=True)
    figures.update({"generated": meta, "first_day": first.isoformat(), "complete": False})
    figures["full"] = night("full", None)
    nights: list[dict[str, Any]] = []
    figures["nights"] = nights
    save(figures, args.json)
    for index in range(1, args.nights + 1):
        day = last + timedelta(days=index)
        build_view(generated, view, day, only=day)
        nights.append(night(f"night-{index:02d}-{day}", day))
        save(with_verdict(figures), args.json)
    figures["complete"] = True
    return figures


def share_of_full(full: dict[str, Any], nights: list[dict[str, Any]]) -> dict[str, float]:
    """Mean nightly seconds of each stage / the full run's: about 1 for a stage that recomputes
    the whole history every night (its nightly cost grows with the history), far below 1 for
    one that restates a bounded window."""
    return {
        stage: round(sum(n["stage_seconds"].get(stage, 0.0) for n in nights) / len(nights) / s, 3)
        for stage, s in sorted(full["stage_seconds"].items())
        if s
    }


def print_seconds_growth(v: dict[str, Any], indent: str) -> None:
    """One line per stage (the run first): mean seconds, fitted slope and growth, verdict."""
    for name, g in [("run", v["seconds"]), *sorted(v["stages"].items())]:
        print(
            f"{indent}{name:<12} mean {g['mean']:8.2f} s  slope {g['slope_per_night']:+.3f} "
            f"s/night  growth {g['growth_over_nights']:+.1%}  {g['verdict']}"
        )


def print_verdict(figures: dict[str, Any]) -> None:
    v = figures["verdict"]
    print("\nper-night cost vs night index (least-squares line; growth = slope x (n-1) / mean):")
    print_seconds_growth(v, "  ")
    for name in ("rows_written", "peak_rss_mib"):
        g = v[name]
        print(f"  {name:<12} mean {g['mean']:10,.0f}  growth {g['growth_over_nights']:+.1%}")
    print(f"  data (rows of every table) grew {v['data_growth_over_nights']:+.1%} over the nights")
    if "control_seconds" in v:
        c, n = v["control_seconds"], v["seconds_at_mean_control"]
        print(
            f"  control workload mean {c['mean']:.3f} s, growth {c['growth_over_nights']:+.1%} "
            f"(the machine); run time scaled by it: growth {n['growth_over_nights']:+.1%} "
            f"{n['verdict']}"
        )
    if "uncontended" in v:
        q = v["uncontended"]
        print(f"  uncontended nights only ({q['nights']}):")
        print_seconds_growth(q, "    ")
    print("mean nightly seconds / the full run's (about 1: the whole history every night):")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in figures["nightly_share_of_full"].items()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default=None)
    parser.add_argument("--users", type=int, default=None, help="size of a day (default S/10)")
    parser.add_argument("--history", type=int, default=120, help="days built by the full run")
    parser.add_argument("--nights", type=int, default=10, help="nightly runs after it")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit ('' = none)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-expectations", action="store_true")
    parser.add_argument("--png", action="store_true", help="PNG images in every night's report")
    parser.add_argument("--no-snapshot", action="store_true", help="children import the tree")
    args = parser.parse_args(argv)
    if args.workload and args.users is None:
        args.users = WORKLOADS[args.workload]
    args.users = args.users or WORKLOADS["S"] // 10
    args.memory_limit = args.memory_limit or None
    args.workdir = args.workdir or Path(f"/tmp/bench/nights-{args.users}-{args.history}")
    return args


def reverdict(path: Path) -> None:
    """Recompute and print the verdict of a results file (a partial one too); write it back."""
    figures = json.loads(path.read_text())
    if not figures.get("nights"):
        raise SystemExit(f"{path}: no night yet")
    with_verdict(figures)
    print(f"{path}: {len(figures['nights'])} nights, complete: {figures.get('complete', True)}")
    print_verdict(figures)
    save(figures, path)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--verdict-of":
        reverdict(Path(sys.argv[2]))
        return
    args = parse_args()
    if not args.png:
        os.environ["ATTRIBUTION_REPORT_PNG"] = "never"  # the children inherit it
    code_dir, started, figures = start_bench(args)
    run_nights(args, code_dir, figures)
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    print_verdict(figures)
    if args.json:
        save(figures, args.json)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
