"""Benchmark of the attribution stage against the scan floor, at a given scale.

Usage:
    python benchmarks/bench_attribution.py --users 200000 --days 60 [--workdir DIR] [--json OUT]

Generates a landing folder (or reuses one in --workdir), ingests it into a DuckDB warehouse (no
expectations), then times, each in a fresh child process so that peak memory is its own:

* floor_landing: a DuckDB scan of every column of every landing file of interactions and orders;
* floor_raw: a DuckDB scan of every column of raw_interactions and raw_orders in the warehouse;
* upstream: the staging views and intermediate models (sessions, session products, FX, lines);
* attribution: fct_attribution (five rule models, every window, scopes user and product);
* data_driven: fct_attribution_by_touch_type (journeys + Markov + Shapley per window).

Prints one table (seconds, peak RSS, ratio to each floor) and writes JSON. Figures, not asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UPSTREAM = (
    "int_fx_daily",
    "int_interaction_sessions",
    "assistant_sessions",
    "int_session_products",
    "int_order_lines",
    "int_orders",
)


def _stage(name: str, workdir: Path, memory_limit: str | None) -> dict:
    """Run one stage in this process and return its figures (called in a child process)."""
    from attribution.build_window import data_date_range
    from attribution.config import Settings
    from attribution.warehouse import (
        connect,
        model_parameters,
        models,
        run_model,
        write_config_tables,
    )

    settings = Settings()
    con = connect(workdir / "warehouse.duckdb")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    start, end = data_date_range(con)
    params = model_parameters(settings, start, end)
    landing = workdir / "landing"
    t0 = time.perf_counter()
    rows: int | None = None
    if name == "floor_landing":
        rows = 0
        for source, reader in (
            ("interactions", "read_json"),
            ("orders", "read_csv"),
        ):
            pattern = str(landing / source / "dt=*" / "*")
            options = ", all_varchar = true" if reader == "read_csv" else ""
            rows += con.execute(
                f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {reader}('{pattern}'{options})"
            ).fetchall()[0][0]
    elif name == "floor_raw":
        rows = 0
        for table in ("raw_interactions", "raw_orders"):
            rows += con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {table}").fetchall()[
                0
            ][0]
    elif name == "upstream":
        write_config_tables(con, settings)
        rows = 0
        for model in models():
            if model.layer == "staging" or model.name in UPSTREAM:
                rows += run_model(con, model, params) or 0
    elif name == "attribution":
        write_config_tables(con, settings)
        (model,) = [m for m in models() if m.name == "fct_attribution"]
        rows = run_model(con, model, params)
    elif name == "data_driven":
        from attribution.journeys import write_attribution_by_touch_type

        rows = write_attribution_by_touch_type(con, settings, start, end)
    else:
        raise SystemExit(f"unknown stage {name}")
    seconds = time.perf_counter() - t0
    con.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "stage": name,
        "seconds": round(seconds, 3),
        "rows": rows,
        "peak_rss_mib": peak_kib // 1024,
    }


def _child(name: str, workdir: Path, memory_limit: str | None) -> dict:
    cmd = [sys.executable, __file__, "--stage", name, "--workdir", str(workdir)]
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(f"/tmp/attribution-bench-{args.users}-{args.days}")

    if args.stage:
        print(json.dumps(_stage(args.stage, workdir, args.memory_limit)))
        return

    from attribution.config import Settings
    from attribution.generate import generate_landing
    from attribution.pipeline import run_pipeline

    workdir.mkdir(parents=True, exist_ok=True)
    figures: dict = {"users": args.users, "days": args.days, "seed": args.seed}
    truth_file = workdir / "landing" / "truth.json"
    if not truth_file.is_file():
        t0 = time.perf_counter()
        generate_landing(
            workdir / "landing", users=args.users, days=args.days, seed=args.seed, overwrite=True
        )
        figures["generate_seconds"] = round(time.perf_counter() - t0, 1)
    truth = json.loads(truth_file.read_text())
    figures["interactions"] = truth["counts"]["interactions"]
    figures["order_lines"] = truth["counts"]["order_lines"]
    warehouse = workdir / "warehouse.duckdb"
    if not warehouse.is_file():
        t0 = time.perf_counter()
        run_pipeline(
            Settings(),
            landing_dir=workdir / "landing",
            warehouse_path=warehouse,
            expectations=False,
        )
        figures["full_pipeline_seconds"] = round(time.perf_counter() - t0, 1)

    stages = [
        _child(name, workdir, args.memory_limit)
        for name in ("floor_landing", "floor_raw", "upstream", "attribution", "data_driven")
    ]
    floors = {s["stage"]: s["seconds"] for s in stages if s["stage"].startswith("floor")}
    for s in stages:
        s["x_floor_landing"] = round(s["seconds"] / floors["floor_landing"], 2)
        s["x_floor_raw"] = round(s["seconds"] / floors["floor_raw"], 2)
    figures["stages"] = stages
    figures["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": date.today().isoformat(),
    }
    print(
        f"\nattribution benchmark: {args.users:,} users, {args.days} days, "
        f"{figures['interactions']:,} interactions, {figures['order_lines']:,} order lines"
    )
    print(f"{'stage':<14}{'seconds':>10}{'rows':>14}{'peak MiB':>10}{'x landing':>11}{'x raw':>9}")
    for s in stages:
        print(
            f"{s['stage']:<14}{s['seconds']:>10.2f}{(s['rows'] or 0):>14,}{s['peak_rss_mib']:>10}"
            f"{s['x_floor_landing']:>11.2f}{s['x_floor_raw']:>9.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
