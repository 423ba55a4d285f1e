"""Issue 7 benchmark: the whole pipeline, the nightly increment and the peers, against the scan floor.

Usage:
    python benchmarks/bench_scale.py --workload S --memory-limit 4GB --json OUT [--workdir DIR]
    python benchmarks/bench_scale.py --users N --days D [--seed S] [--threads N] [--scaling]

One run measures everything it compares, on one machine, each step in a fresh child process (its
peak RSS is its own; all children import one snapshot of the library copied into the workdir, so
a library edited during the run cannot change the code between two steps):

1. generate a landing folder of D+1 days (``attribution.generate``; reused when present);
2. a view of the first D days (hard links of the dated partitions, the undated files whole; the
   last day is held back for the nightly increment);
3. floor: a DuckDB scan of every column of every landing file of the view (best of --floor-repeats);
4. full pipeline on the view (ingest, build, gate with expectations, publish, report) into a fresh
   warehouse; per-stage seconds from its ``_runs`` row;
5. peers on that warehouse (workloads <= 2S unless --peers): the analyst's naive pandas
   merge-and-filter (five rule models, scope user, four windows, per-session ledger) and
   ``marketing-attribution-models`` (mam) heuristics on per-line paths;
6. nightly increment: the held-back day added to the view, ``run_pipeline(run_date=day)`` as
   ``attribution run --date`` calls it; then (unless --no-rebuild) a full rebuild over the same
   D+1 days into a second warehouse: the same tables the nightly produced (compared per table);
7. with --scaling: the full pipeline at half the users (same days) in its own folder, and the
   ratio of every stage: this workload / half (doubling the data).

Prints one table (seconds, peak MiB, ratio to the floor, what a target compares, target, met) and
writes every figure and the machine to JSON. Figures, not asserts; the targets of issue 7 are
defined at L (2M users) and are evaluated at whatever workload is run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"S": 200_000, "2S": 400_000, "L": 2_000_000, "5L": 10_000_000}
USERS_PER_GENERATOR = 2_000_000  # one generator process: about 5 GB of memory
PEER_MAX_USERS = WORKLOADS["2S"]
# a step is marked contended (*) when other processes used more than this share of the machine
CONTENDED_SHARE = 0.10
RESULT_MARK = "BENCH_RESULT "
# landing file readers of the floor: every column of every file, parsed (CSV as text, as ingest)
FLOOR_READERS = {
    ".jsonl.gz": "read_json('{glob}')",
    ".csv.gz": "read_csv('{glob}', all_varchar = true)",
    ".csv": "read_csv('{glob}', all_varchar = true)",
    ".parquet": "read_parquet('{glob}')",
}
PIPELINE_STAGES = (
    "ingest",
    "sessions",
    "orders",
    "attribution",
    "data_driven",
    "lift",
    "kpi",
    "gate",
    "report",
)
TARGETS = {
    "attribution_x_floor": 30.0,  # attribution stage <= 30x the scan floor
    "data_driven_x_attribution": 5.0,  # the data-driven model at most 5x more
    "nightly_share_of_full": 0.10,  # a nightly at most 10% of a full rebuild (same tables)
    "full_x_floor": 100.0,  # landing files to report <= 100x the scan floor
    "peak_mib": 4096,  # peak memory under 4 GiB with a DuckDB memory limit
    "naive_x_ours": 30.0,  # the naive pandas approach at least 30x slower than ours
    "mam_x_ours": 1.0,  # mam slower than ours (with path building and ledger)
    "scaling": 2.2,  # doubling the data at most doubles time (+10%)
}


# --------------------------------------------------------------------------------------------
# Child processes: one step each, result as one JSON line on stdout
# --------------------------------------------------------------------------------------------


def _peak_mib() -> dict[str, int]:
    """Peak RSS of this process (VmHWM: ru_maxrss would carry the parent's peak across exec)."""
    peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) // 1024
    return {"peak_rss_mib": peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def _settings(p: dict[str, Any], landing: str) -> Any:
    from attribution.config import Settings

    return Settings(
        duckdb_memory_limit=p["memory_limit"],
        duckdb_threads=p["threads"],
        landing_dir=Path(landing),
        warehouse_path=Path(p["warehouse"]),
        report_dir=Path(p["report_dir"]),
    )


def _child_floor(p: dict[str, Any]) -> dict[str, Any]:
    """Scan every column of every landing file of the view, one query per source and format."""
    import duckdb

    con = duckdb.connect()
    if p["memory_limit"]:
        con.execute(f"SET memory_limit = '{p['memory_limit']}'")
    if p["threads"]:
        con.execute(f"SET threads = {int(p['threads'])}")
    landing = Path(p["landing"])
    sources: dict[str, Any] = {}
    t_all = time.perf_counter()
    for source in sorted(d for d in landing.iterdir() if d.is_dir()):
        files = sorted(f for f in source.rglob("*") if f.is_file())
        for suffix, reader in FLOOR_READERS.items():
            # .csv must not match .csv.gz: take the longest suffix only
            chosen = [f for f in files if _suffix(f.name) == suffix]
            if not chosen:
                continue
            depth = {len(f.relative_to(source).parts) for f in chosen}
            glob = str(source / "/".join(["*"] * (max(depth) - 1) + [f"*{suffix}"]))
            t0 = time.perf_counter()
            query = f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {reader.format(glob=glob)}"
            rows = con.execute(query).fetchall()[0][0]
            sources[f"{source.name}{suffix}"] = {
                "files": len(chosen),
                "rows": rows,
                "bytes": sum(f.stat().st_size for f in chosen),
                "seconds": round(time.perf_counter() - t0, 3),
            }
    seconds = time.perf_counter() - t_all
    return {
        "seconds": round(seconds, 3),
        "rows": sum(s["rows"] for s in sources.values()),
        "bytes": sum(s["bytes"] for s in sources.values()),
        "sources": sources,
        **_peak_mib(),
    }


def _suffix(name: str) -> str | None:
    for suffix in sorted(FLOOR_READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return None


class _StageClock:
    """A pipeline Reporter that only notes when each step of each stage ends (wall clock), so
    that the parent can tell which stage its memory samples fall in."""

    def __init__(self) -> None:
        self.ends: list[tuple[float, str]] = []

    def start(self, stage: str, total: int | None = None) -> None:
        return None

    def advance(self, stage: str, detail: str = "") -> None:
        self.ends.append((time.time(), stage))

    def finish(self, stage: str, detail: str = "") -> None:
        self.ends.append((time.time(), stage))

    def note(self, message: str) -> None:
        return None


def _child_pipeline(p: dict[str, Any]) -> dict[str, Any]:
    """A full run (no run_date) or the nightly increment (run_date), with the report."""
    from attribution.pipeline import run_pipeline

    settings = _settings(p, p["landing"])
    run_date = date.fromisoformat(p["run_date"]) if p.get("run_date") else None
    clock = _StageClock()
    recorded_before = _run_ids(settings.warehouse_path)
    t0 = time.perf_counter()
    # as `attribution run [--date D] --quiet` does (cli._run_library): settings' paths, report
    try:
        summary = run_pipeline(
            settings,
            landing_dir=settings.landing_dir,
            warehouse_path=settings.warehouse_path,
            run_date=run_date,
            expectations=p["expectations"],
            report_dir=settings.report_dir,
            progress=clock,
        )
        run_id, error = summary.run_id, None
    except Exception as exc:  # recorded in _runs as failed: keep the step's figures
        run_id = _new_run_id(settings.warehouse_path, recorded_before)
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 3),
        "run_id": run_id,
        "error": error,
        "step_ends": clock.ends,
        **_peak_mib(),
    }


def _recorded_runs(warehouse: Path) -> list[tuple[str, Any]]:
    """(run_id, started_at) of every ``_runs`` row, newest first (none if the warehouse has no
    file or table, or cannot be opened: the pipeline then fails with its own error, reported)."""
    import duckdb

    from attribution.warehouse import table_exists

    if not Path(warehouse).is_file():
        return []
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return []
    try:
        if not table_exists(con, "_runs"):
            return []
        return con.execute(
            "SELECT run_id, started_at FROM _runs ORDER BY started_at DESC, run_id DESC"
        ).fetchall()
    finally:
        con.close()


def _run_ids(warehouse: Path) -> set[str]:
    """The run ids recorded in the warehouse's ``_runs``."""
    return {run_id for run_id, _ in _recorded_runs(warehouse)}


def _new_run_id(warehouse: Path, before: set[str]) -> str | None:
    """The run id the failed run recorded: the newest ``_runs`` row not there before it (None if
    it failed before recording itself, e.g. the warehouse could not be opened)."""
    return next((r for r, _ in _recorded_runs(warehouse) if r not in before), None)


def _child_naive(p: dict[str, Any]) -> dict[str, Any]:
    """What an analyst writes in pandas: merge lines with sessions on user, filter by window,
    rank per line, five rule models, one ledger row per (line, window, eligible session)."""
    import duckdb
    import numpy as np
    import pandas as pd

    con = duckdb.connect(p["warehouse"], read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    t0 = time.perf_counter()
    sessions = con.sql("SELECT user_id, session_id, session_start FROM assistant_sessions").df()
    lines = con.sql(
        "SELECT order_id, line_no, user_id, order_at, line_revenue_usd FROM int_order_lines"
    ).df()
    read_seconds = time.perf_counter() - t0
    expected_rows = con.execute(
        "SELECT count(*) FROM fct_attribution WHERE scope = 'user'"
    ).fetchall()[0][0]
    con.close()

    t1 = time.perf_counter()
    half_life = float(p["half_life_days"])
    pairs = lines.merge(sessions, on="user_id")
    age = pairs["order_at"] - pairs["session_start"]
    ledgers = []
    for window in p["windows"]:
        eligible = pairs[(age >= pd.Timedelta(0)) & (age <= pd.Timedelta(days=window))].copy()
        eligible = eligible.sort_values(["order_id", "line_no", "session_start", "session_id"])
        eligible["age_days"] = (
            eligible["order_at"] - eligible["session_start"]
        ).dt.total_seconds() / 86400.0
        eligible["weight"] = np.exp2(-eligible["age_days"] / half_life)
        by_line = eligible.groupby(["order_id", "line_no"], sort=False)
        n = by_line["session_id"].transform("size")
        rank = by_line["session_start"].rank(method="first")
        eligible["n_touches"] = n
        eligible["touch_rank"] = rank.astype("int64")
        eligible["first_touch"] = (rank == 1).astype(float)
        eligible["last_touch"] = (rank == n).astype(float)
        eligible["linear"] = 1.0 / n
        eligible["time_decay"] = eligible["weight"] / by_line["weight"].transform("sum")
        eligible["position_based"] = np.select(
            [n == 1, n == 2, (rank == 1) | (rank == n)],
            [1.0, 0.5, 0.4],
            default=0.2 / (n - 2).clip(lower=1),
        )
        eligible["window_days"] = window
        ledgers.append(eligible)
    ledger = pd.concat(ledgers, ignore_index=True)
    seconds = time.perf_counter() - t1

    sums = ledger.groupby(["order_id", "line_no", "window_days"])[
        ["first_touch", "last_touch", "linear", "time_decay", "position_based"]
    ].sum()
    return {
        "read_seconds": round(read_seconds, 3),
        "seconds": round(seconds, 3),
        "pairs": len(pairs),
        "ledger_rows": len(ledger),
        "ledger_rows_ours_scope_user": expected_rows,
        "credits_sum_to_one": bool(np.allclose(sums.to_numpy(), 1.0)),
        **_peak_mib(),
    }


def _child_mam(p: dict[str, Any]) -> dict[str, Any]:
    """mam's heuristics on per-line paths (scope user, one window) read from the warehouse."""
    import duckdb
    import polars as pl
    from mam import MAM

    window = int(p["window"])
    con = duckdb.connect(p["warehouse"], read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    if p["threads"]:
        con.execute(f"SET threads = {int(p['threads'])}")
    t0 = time.perf_counter()
    # one row per touch: the line is the journey, its eligible sessions in order, the line's
    # revenue on its last touch (mam's "session" format, as tests/test_mam_crosscheck.py feeds it)
    if p["paths"] == "ledger":  # the eligible (line, session) pairs of our per-session ledger
        query = f"""
            SELECT order_id || ':' || line_no AS journey, session_start, touch_type,
                   TRUE AS converted,
                   CASE WHEN touch_rank = n_touches THEN cast(line_revenue_usd AS DOUBLE)
                        ELSE 0e0 END AS value
            FROM fct_attribution WHERE scope = 'user' AND window_days = {window}
        """
    else:  # built from sessions and order lines, as a user without our ledger would
        query = f"""
            SELECT l.order_id || ':' || l.line_no AS journey, s.session_start, s.touch_type,
                   TRUE AS converted,
                   CASE WHEN row_number() OVER (
                       PARTITION BY l.order_id, l.line_no
                       ORDER BY s.session_start DESC, s.session_id DESC) = 1
                   THEN cast(l.line_revenue_usd AS DOUBLE) ELSE 0e0 END AS value
            FROM int_order_lines AS l
            JOIN assistant_sessions AS s
              ON s.user_id = l.user_id AND s.session_start <= l.order_at
             AND s.session_start >= l.order_at - INTERVAL {window} DAY
        """
    touches = con.sql(query).pl()
    con.close()
    read_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    model = MAM(
        touches,
        "session",
        channels_colname="touch_type",
        journey_with_conv_colname="converted",
        datetime_colname="session_start",
        user_id_colname="journey",
        conversion_value_colname="value",
    )
    prepare_seconds = time.perf_counter() - t1
    heuristics: dict[str, float] = {}
    totals: dict[str, float] = {}
    runs = {
        "first_click": lambda: model.run_first_click(),
        "last_click": lambda: model.run_last_click(),
        "linear": lambda: model.run_linear(),
        "position_based": lambda: model.run_position_based(),
        "time_decay": lambda: model.run_time_decay(half_life_hours=24.0 * p["half_life_days"]),
    }
    for name, run in runs.items():
        t = time.perf_counter()
        result = run()
        heuristics[name] = round(time.perf_counter() - t, 3)
        totals[name] = float(result.to_polars()["attribution"].sum())
    four = sum(v for k, v in heuristics.items() if k != "time_decay")
    return {
        "paths": p["paths"],
        "window_days": window,
        "touches": touches.height,
        "journeys": model.unified_df.height,
        "revenue_usd": float(touches["value"].sum()),
        "read_seconds": round(read_seconds, 3),
        "prepare_seconds": round(prepare_seconds, 3),
        "heuristic_seconds": heuristics,
        "attributed_usd": totals,
        # path building (read + mam's session -> journey preprocessing) + the heuristics
        "seconds_four": round(read_seconds + prepare_seconds + four, 3),
        "seconds": round(read_seconds + prepare_seconds + sum(heuristics.values()), 3),
        "polars": pl.__version__,
        **_peak_mib(),
    }


def _child_ours_models(p: dict[str, Any]) -> dict[str, Any]:
    """Each SQL model of our attribution stage alone, as the full build runs it (rebuild of every
    day, one transaction), on the built warehouse; rolled back, so the warehouse is unchanged."""

    from attribution.build_window import data_date_range
    from attribution.config import Settings
    from attribution.pipeline import _stage_of
    from attribution.warehouse import (
        atomic,
        connect,
        model_parameters,
        models,
        run_model,
        write_config_tables,
    )

    # default: the configured windows; mam's like-for-like run passes its one window
    settings = Settings(windows_days=tuple(p["windows"])) if p.get("windows") else Settings()
    con = connect(p["warehouse"], memory_limit=p["memory_limit"], threads=p["threads"])
    start, end = data_date_range(con)
    params = model_parameters(settings, start, end)
    seconds: dict[str, float] = {}
    rows: dict[str, int | None] = {}
    try:
        with atomic(con, keep=False):  # measured, not written
            write_config_tables(con, settings)
            for model in models(("marts",)):
                if _stage_of(model) != "attribution":
                    continue
                t0 = time.perf_counter()
                rows[model.name] = run_model(con, model, params, rebuild=True)
                seconds[model.name] = round(time.perf_counter() - t0, 3)
            scope_user = con.execute(
                "SELECT count(*) FROM fct_attribution WHERE scope = 'user'"
            ).fetchall()[0][0]
    finally:
        con.close()
    return {
        "model_seconds": seconds,
        "model_rows": rows,
        "fct_attribution_rows_scope_user": scope_user,
        "seconds": round(sum(seconds.values()), 3),
        **_peak_mib(),
    }


def _child_generate(p: dict[str, Any]) -> dict[str, Any]:
    from attribution.generate import generate_landing

    t0 = time.perf_counter()
    start = {"start_date": date.fromisoformat(p["start"])} if p.get("start") else {}
    shard = p.get("shard", 0)
    truth = generate_landing(
        Path(p["out"]),
        users=p["users"],
        days=p["days"],
        seed=p["seed"],
        overwrite=shard == 0,
        shard=shard,
        **start,
    )
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "counts": truth["counts"],
        **_peak_mib(),
    }


CHILDREN = {
    "generate": _child_generate,
    "ours_models": _child_ours_models,
    "floor": _child_floor,
    "pipeline": _child_pipeline,
    "naive": _child_naive,
    "mam": _child_mam,
}


def _child_main(task: str, params: str) -> None:
    p = json.loads(params)
    if p.get("code_dir"):
        sys.path.insert(0, p["code_dir"])
    else:
        sys.path.insert(0, str(ROOT))
    result = CHILDREN[task](p)
    print(RESULT_MARK + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# Parent: run a child, watch its memory and DuckDB's spill folder
# --------------------------------------------------------------------------------------------


def _dir_bytes(path: Path) -> int:
    total = 0
    try:
        for entry in os.scandir(path):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
            elif entry.is_dir(follow_symlinks=False):
                total += _dir_bytes(Path(entry.path))
    except OSError:
        pass
    return total


def _tree_rss_kib(pid: int) -> int:
    """Resident KiB of a process and all its descendants (now)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _proc_table() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (name, parent pid, session id, CPU ticks so far) of every process on the machine."""
    table: dict[int, tuple[str, int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        table[int(entry.name)] = (
            name,
            int(fields[1]),
            int(fields[3]),
            int(fields[11]) + int(fields[12]),
        )
    return table


class CpuWatch:
    """CPU seconds that other processes (not the step's process tree or session) used during
    the step, sampled: a step is contended when they took a noticeable share of the machine."""

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")
        self.baseline = {pid: row[3] for pid, row in _proc_table().items()}
        self.foreign: dict[int, tuple[str, int]] = {}
        self.mine = {os.getpid()}

    def sample(self, child: int) -> None:
        table = _proc_table()
        # parents before children: a descendant of the step (even in a new session) is the step's
        for pid in sorted(table, key=lambda p: (table[p][1] not in self.mine, p)):
            name, ppid, sid, ticks = table[pid]
            if pid == child or sid == child or ppid in self.mine or pid in self.mine:
                self.mine.add(pid)
                self.foreign.pop(pid, None)
            else:
                self.foreign[pid] = (name, ticks - self.baseline.get(pid, 0))

    def seconds(self) -> float:
        return sum(max(0, t) for _, t in self.foreign.values()) / self.hz

    def top(self, n: int = 3) -> list[str]:
        """The busiest other processes: 'name pid seconds'."""
        busiest = sorted(self.foreign.items(), key=lambda kv: -kv[1][1])[:n]
        return [f"{name} {pid} {t / self.hz:.1f}s" for pid, (name, t) in busiest if t > 0]


def _peaks_by_stage(
    samples: list[tuple[float, int]], ends: list[tuple[float, str]]
) -> dict[str, int]:
    """Peak sampled RSS (MiB) per stage: a sample belongs to the stage of the next step to end
    (every model, file and Python step reports its end); after the last one: 'record'."""
    peaks: dict[str, int] = {}
    i = 0
    for moment, kib in samples:
        while i < len(ends) and ends[i][0] < moment:
            i += 1
        stage = ends[i][1] if i < len(ends) else "record"
        peaks[stage] = max(peaks.get(stage, 0), kib // 1024)
    return peaks


def run_child(task: str, params: dict[str, Any], log: Path, spill_dir: Path | None = None) -> dict:
    """Run one step in a fresh interpreter; return its JSON plus the parent's view of it: wall
    seconds of the process, peak RSS of its process tree (sampled), DuckDB's spill folder, and
    the CPU that other processes of the machine used meanwhile (contention)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", task, json.dumps(params)]
    cpu = CpuWatch()
    started = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, start_new_session=True
        )
        peaks = {"tree_kib": 0, "spill": 0}
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.5):
                cpu.sample(proc.pid)
                samples.append((time.time(), _tree_rss_kib(proc.pid)))
                peaks["tree_kib"] = max(peaks["tree_kib"], samples[-1][1])
                if spill_dir is not None:
                    peaks["spill"] = max(peaks["spill"], _dir_bytes(spill_dir))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        out, _ = proc.communicate()
        stop.set()
        watcher.join()
    process_seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"step {task} failed (exit {proc.returncode}); {log}:\n{tail}")
    lines = [line for line in out.splitlines() if line.startswith(RESULT_MARK)]
    result = json.loads(lines[-1][len(RESULT_MARK) :])
    cpu.sample(proc.pid)
    foreign = cpu.seconds()
    capacity = process_seconds * (os.cpu_count() or 1)
    result["process_seconds"] = round(process_seconds, 3)
    result["foreign_cpu_seconds"] = round(foreign, 1)
    result["foreign_cpu_top"] = cpu.top()
    result["foreign_cpu_share"] = round(foreign / capacity, 3) if capacity else None
    result["contended"] = bool(capacity and foreign / capacity > CONTENDED_SHARE)
    result["peak_tree_rss_mib_sampled"] = peaks["tree_kib"] // 1024
    if "step_ends" in result:
        result["peak_mib_by_stage"] = _peaks_by_stage(samples, result.pop("step_ends"))
    if spill_dir is not None:
        result["spill_max_mib"] = round(peaks["spill"] / 2**20, 1)
    return result


# --------------------------------------------------------------------------------------------
# Landing folder and its D-day view
# --------------------------------------------------------------------------------------------


def ensure_generated(
    workdir: Path,
    users: int,
    days: int,
    seed: int,
    code_dir: str | None,
    start: date | None = None,
    per_process: int = USERS_PER_GENERATOR,
) -> dict[str, Any]:
    """Generate days+1 days (from ``start``, default the generator's) into workdir/generated
    unless the same landing is already there (in a child process, so that this process stays
    small while the steps run)."""
    generated = workdir / "generated"
    meta_file = workdir / "generated.json"
    wanted = {"users": users, "days": days + 1, "seed": seed}
    if start is not None:
        wanted["start"] = start.isoformat()
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if (generated / "truth.json").is_file() and {k: meta.get(k) for k in wanted} == wanted:
        meta["reused"] = True
        return meta
    print(f"generating {users:,} users x {days + 1} days into {generated} ...", flush=True)
    # the generator holds a population in memory (~2.4 GB per million users): larger ones are
    # written as shards of equal size, one child process each (generate_landing's `shard`)
    shards = -(-users // per_process)
    if users % shards:
        raise SystemExit(f"{users:,} users do not split into {shards} equal generator shards")
    seconds, counts = 0.0, Counter()
    for shard in range(shards):
        step = run_child(
            "generate",
            {"code_dir": code_dir, "out": str(generated), **wanted, "shard": shard}
            | {"users": users // shards},
            workdir / "logs" / f"generate-{shard}.log",
        )
        seconds += step["seconds"]
        counts.update(step["counts"])
    meta = {
        **wanted,
        "shards": shards,
        "generate_seconds": round(seconds, 1),
        "counts": dict(counts) | {"products": step["counts"]["products"]},
    }
    meta_file.write_text(json.dumps(meta, indent=2))
    meta["reused"] = False
    return meta


def _partition(name: str) -> date | None:
    if not name.startswith("dt="):
        return None
    try:
        return date.fromisoformat(name[3:])
    except ValueError:
        return None


def first_day(generated: Path) -> date:
    days = [_partition(d.name) for d in (generated / "interactions").iterdir()]
    return min(d for d in days if d is not None)


def _link(src: Path, dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError:
        shutil.copy2(src, dst)
        return "copy"


def build_view(generated: Path, view: Path, last: date, *, only: date | None = None) -> dict:
    """Hard-link the dated partitions up to ``last`` (or exactly ``only``) and every undated file.

    Hard links, not symlinks: ingest refuses a path that resolves outside the landing folder.
    Partitions after ``last`` (late order status updates) stay out, as on that night.
    """
    if only is None and view.exists():
        shutil.rmtree(view)
    modes: dict[str, int] = {}
    files = 0
    for source in sorted(d for d in generated.iterdir() if d.is_dir()):
        for entry in sorted(source.iterdir()):
            day = _partition(entry.name) if entry.is_dir() else None
            if entry.is_dir() and day is None:
                continue
            if only is not None and day != only:
                continue
            if day is not None and day > last:
                continue
            leaves = sorted(f for f in entry.iterdir() if f.is_file()) if day else [entry]
            for leaf in leaves:
                mode = _link(leaf, view / leaf.relative_to(generated))
                modes[mode] = modes.get(mode, 0) + 1
                files += 1
    return {"files": files, "link_modes": modes}


# --------------------------------------------------------------------------------------------
# Warehouse helpers
# --------------------------------------------------------------------------------------------


def remove_warehouse(warehouse: Path) -> None:
    """Delete a warehouse and what lives beside it (WAL, spill folder, data docs)."""
    for path in (warehouse, Path(f"{warehouse}.wal")):
        path.unlink(missing_ok=True)
    for folder in (Path(f"{warehouse}.tmp"), warehouse.parent / "data_docs"):
        shutil.rmtree(folder, ignore_errors=True)


def read_run(warehouse: Path, run_id: str | None) -> dict[str, Any]:
    """The run's ``_runs`` row (read-only): stage seconds, window, rows, outcome, code. A run that
    failed before recording itself (``run_id`` None) gets outcome "not recorded" and no stages."""
    import duckdb

    if run_id is None:
        return {"outcome": "not recorded", "stage_seconds": {}, "model_rows": {}}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cur = con.execute("SELECT * FROM _runs WHERE run_id = ?", [run_id])
        names = [d[0] for d in cur.description]
        row = dict(zip(names, cur.fetchall()[0], strict=True))
    finally:
        con.close()
    keep = (
        "mode",
        "run_date",
        "start_date",
        "end_date",
        "window_reason",
        "rows_read",
        "rows_loaded",
        "duplicates",
        "quarantined",
        "expectations",
        "gate",
        "published",
        "outcome",
        "message",
        "code_version",
        "settings_hash",
    )
    out = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items() if k in keep}
    out["stage_seconds"] = json.loads(row["stage_seconds"])
    out["model_rows"] = json.loads(row["model_rows"])
    return out


def compare_warehouses(a: Path, b: Path) -> dict[str, Any]:
    """Per published table: row count and a sum of per-column hashes (columns not starting with
    ``_``), in two warehouses. Equal = the same multiset of rows (bit for bit)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'a' "
            "AND schema_name = 'main' AND NOT starts_with(table_name, '_') "
            "AND NOT starts_with(table_name, 'raw_') AND table_name <> 'quarantine' "
            "ORDER BY 1"
        ).fetchall()
    ]
    result: dict[str, Any] = {}
    for table in tables:
        digest = []
        for db in ("a", "b"):
            try:
                digest.append(
                    con.execute(
                        f"SELECT count(*), sum(hash(COLUMNS(c -> NOT starts_with(c, '_')))) "
                        f'FROM {db}.main."{table}"'
                    ).fetchall()[0]
                )
            except duckdb.Error as exc:
                digest.append((f"error: {exc}",))
        result[table] = {
            "rows": [digest[0][0], digest[1][0]],
            "equal": digest[0] == digest[1],
        }
    con.close()
    return result


# --------------------------------------------------------------------------------------------
# One workload
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, users: int, workdir: Path, code_dir: str | None):
        self.args = args
        self.users = users
        self.days = args.days
        self.workdir = workdir
        self.code_dir = code_dir
        self.logs = workdir / "logs"

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "memory_limit": self.args.memory_limit,
            "threads": self.args.threads,
            "code_dir": self.code_dir,
            **extra,
        }

    def prepare(self) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        meta = ensure_generated(
            self.workdir,
            self.users,
            self.days,
            self.args.seed,
            self.code_dir,
            per_process=self.args.generator_users,
        )
        generated = self.workdir / "generated"
        self.first = first_day(generated)
        self.last = self.first + timedelta(days=self.days - 1)
        self.night = self.last + timedelta(days=1)
        if not (generated / "interactions" / f"dt={self.night}").is_dir():
            raise SystemExit(f"no interactions partition for the held-back day {self.night}")
        self.view = self.workdir / "landing"
        view = build_view(generated, self.view, self.last)
        return {
            "generated": meta,
            "first_day": self.first.isoformat(),
            "last_day": self.last.isoformat(),
            "nightly_day": self.night.isoformat(),
            "view": view,
        }

    def floor(self) -> dict[str, Any]:
        repeats = [
            run_child("floor", self.params(landing=str(self.view)), self.logs / f"floor-{i}.log")
            for i in range(self.args.floor_repeats)
        ]
        calm = [r for r in repeats if not r["contended"]] or repeats
        best = min(calm, key=lambda r: r["seconds"])
        return {**best, "repeats_seconds": [r["seconds"] for r in repeats]}

    def pipeline(self, name: str, warehouse: Path, report: Path, run_date: date | None) -> dict:
        """One pipeline run; a full run that other processes slowed down (contended) is run
        again, up to --retry-contended times (a nightly cannot be: it changes the warehouse)."""
        tries = 1 + (self.args.retry_contended if run_date is None else 0)
        for attempt in range(tries):
            result = self._pipeline(name, warehouse, report, run_date)
            result["attempt"] = attempt + 1
            if not result["contended"]:
                break
            print(
                f"  {name} was contended ({result['foreign_cpu_share']:.0%} of the CPU used by "
                f"{', '.join(result['foreign_cpu_top'])})",
                flush=True,
            )
        return result

    def _pipeline(self, name: str, warehouse: Path, report: Path, run_date: date | None) -> dict:
        if run_date is None:
            remove_warehouse(warehouse)
        print(f"  {name} ...", flush=True)
        p = self.params(
            landing=str(self.view),
            warehouse=str(warehouse),
            report_dir=str(report),
            expectations=not self.args.no_expectations,
            run_date=run_date.isoformat() if run_date else None,
        )
        result = run_child("pipeline", p, self.logs / f"{name}.log", Path(f"{warehouse}.tmp"))
        result.update(read_run(warehouse, result["run_id"]))  # a stub row if it was not recorded
        print(
            f"  {name}: {result['seconds']:.1f} s, peak {result['peak_rss_mib']} MiB, "
            f"{result['outcome']}",
            flush=True,
        )
        return result


def run_workload(args: argparse.Namespace, code_dir: str | None) -> dict[str, Any]:
    bench = Bench(args, args.users, args.workdir, code_dir)
    figures: dict[str, Any] = {"users": args.users, "days": args.days, "seed": args.seed}
    figures.update(bench.prepare())
    print(
        f"view {bench.view}: {bench.first} .. {bench.last} "
        f"({figures['view']['files']} files); nightly day {bench.night}",
        flush=True,
    )
    figures["floor"] = bench.floor()
    print(f"  floor: {figures['floor']['repeats_seconds']} s", flush=True)

    warehouse = args.workdir / "warehouse.duckdb"
    report = args.workdir / "report"
    figures["full"] = bench.pipeline("full", warehouse, report, None)
    if figures["full"].get("error"):  # nothing published: no peers, nightly or scaling on it
        print(f"  full run failed: {figures['full']['error']}", flush=True)
        return figures

    peers = args.peers if args.peers is not None else args.users <= PEER_MAX_USERS
    if peers:
        print("  peers: naive pandas, mam ...", flush=True)
        figures["naive_pandas"] = run_child(
            "naive",
            bench.params(
                warehouse=str(warehouse),
                windows=list(args.windows),
                half_life_days=args.half_life_days,
            ),
            bench.logs / "naive.log",
        )
        for paths in ("ledger", "sessions"):
            figures[f"mam_{paths}"] = run_child(
                "mam",
                bench.params(
                    warehouse=str(warehouse),
                    window=max(args.windows),
                    half_life_days=args.half_life_days,
                    paths=paths,
                ),
                bench.logs / f"mam-{paths}.log",
            )
        figures["ours_models"] = run_child(
            "ours_models", bench.params(warehouse=str(warehouse)), bench.logs / "ours.log"
        )
        # like for like with mam: our ledger models at mam's one window (scopes user, product)
        figures["ours_one_window"] = run_child(
            "ours_models",
            bench.params(warehouse=str(warehouse), windows=[max(args.windows)]),
            bench.logs / "ours-one-window.log",
        )

    if args.no_nightly:
        return figures
    figures["view_nightly"] = build_view(
        args.workdir / "generated", bench.view, bench.night, only=bench.night
    )
    figures["nightly"] = bench.pipeline("nightly", warehouse, report, bench.night)
    if not args.no_rebuild:
        rebuild = args.workdir / "rebuild" / "warehouse.duckdb"
        figures["rebuild"] = bench.pipeline(
            "rebuild", rebuild, args.workdir / "rebuild" / "report", None
        )
        figures["nightly_vs_rebuild_tables"] = compare_warehouses(warehouse, rebuild)

    if args.scaling:
        half = Bench(args, args.users // 2, args.scaling_workdir, code_dir)
        print(f"scaling: {half.users:,} users in {half.workdir}", flush=True)
        figures["half"] = {"users": half.users, **half.prepare()}
        figures["half"]["floor"] = half.floor()
        figures["half"]["full"] = half.pipeline(
            "full", half.workdir / "warehouse.duckdb", half.workdir / "report", None
        )
    return figures


# --------------------------------------------------------------------------------------------
# Ratios, targets, the table
# --------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _peak(step: dict[str, Any]) -> int:
    """The larger of the step's own VmHWM and the sampled peak of its process tree."""
    return max(step.get("peak_rss_mib") or 0, step.get("peak_tree_rss_mib_sampled") or 0)


def derive(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the table: measurement, seconds, peak MiB, x floor, the compared figure, target."""
    floor = figures["floor"]["seconds"]
    full = figures["full"]
    stages = full["stage_seconds"]
    rows: list[dict[str, Any]] = []

    def row(name, seconds=None, step=None, figure=None, shown=None, target=None, met=None):
        rows.append(
            {
                "measurement": name,
                "seconds": seconds,
                "peak_mib": _peak(step) if step else None,
                "x_floor": _ratio(seconds, floor),
                "contended": bool(step and step.get("contended")),
                "figure": figure,
                "figure_text": shown,
                "target": target,
                "met": met,
            }
        )

    def within(x: float | None, limit: float) -> bool | None:
        return None if x is None else x <= limit

    row("floor_landing: scan of every landing column", floor, figures["floor"])
    x = _ratio(full["seconds"], floor)
    failed = bool(full.get("error"))
    row(
        "full pipeline, landing -> report" + (" FAILED" if failed else ""),
        full["seconds"],
        full,
        x,
        f"failed after {x:.1f}x floor" if failed else f"{x:.1f}x floor",
        f"<= {TARGETS['full_x_floor']:.0f}x floor",
        False if failed else within(x, TARGETS["full_x_floor"]),
    )
    for stage in PIPELINE_STAGES:
        seconds = stages.get(stage)
        if seconds is None:
            continue
        if stage == "attribution":
            x = _ratio(seconds, floor)
            row(
                "  stage attribution (4 models, 4 scopes)",
                seconds,
                None,
                x,
                f"{x:.2f}x floor",
                f"<= {TARGETS['attribution_x_floor']:.0f}x floor",
                within(x, TARGETS["attribution_x_floor"]),
            )
        elif stage == "data_driven":
            x = _ratio(seconds, stages.get("attribution"))
            row(
                "  stage data_driven",
                seconds,
                None,
                x,
                f"{x:.2f}x attribution ({seconds / floor:.2f}x floor)",
                f"<= {TARGETS['data_driven_x_attribution']:.0f}x attribution",
                within(x, TARGETS["data_driven_x_attribution"]),
            )
        else:
            row(f"  stage {stage}", seconds)
        rows[-1]["peak_mib"] = full.get("peak_mib_by_stage", {}).get(stage)

    if "nightly" in figures:  # not with --no-nightly
        nightly = figures["nightly"]
        compare = figures.get("rebuild", full)
        versus = "D+1-day rebuild" if "rebuild" in figures else "D-day full run"
        share = _ratio(nightly["seconds"], compare["seconds"])
        row(
            f"nightly {nightly['run_date']} (restates {nightly['start_date']}..)",
            nightly["seconds"],
            nightly,
            share,
            f"{100 * share:.1f}% of {versus}",
            f"<= {100 * TARGETS['nightly_share_of_full']:.0f}% of full",
            within(share, TARGETS["nightly_share_of_full"]),
        )
        for stage in PIPELINE_STAGES:
            seconds = nightly["stage_seconds"].get(stage)
            if seconds is None:
                continue
            x = _ratio(seconds, compare["stage_seconds"].get(stage))
            row(f"  nightly stage {stage}", seconds, None, x, f"{100 * (x or 0):.0f}% of {versus}")
            rows[-1]["peak_mib"] = nightly.get("peak_mib_by_stage", {}).get(stage)
        if "rebuild" in figures:
            tables = figures["nightly_vs_rebuild_tables"]
            equal = sum(t["equal"] for t in tables.values())
            row(
                "full rebuild over D+1 days",
                compare["seconds"],
                compare,
                equal,
                f"{equal}/{len(tables)} tables = nightly's",
            )
    runs = [figures[k] for k in ("full", "nightly", "rebuild") if k in figures]
    peak = max(_peak(r) for r in runs)
    spill = max(r.get("spill_max_mib") or 0 for r in runs)
    row(
        "peak memory of the pipeline runs",
        None,
        None,
        peak,
        f"{peak} MiB (spilled {spill:.0f} MiB)",
        f"< {TARGETS['peak_mib']} MiB",
        peak < TARGETS["peak_mib"],
    )
    rows[-1]["peak_mib"] = peak

    ours = stages.get("attribution")
    models = figures.get("ours_models", {}).get("model_seconds", {})
    alone = models.get("fct_attribution")
    if "naive_pandas" in figures:
        naive = figures["naive_pandas"]
        x = _ratio(naive["seconds"], ours)
        row(
            "peer: naive pandas merge-and-filter",
            naive["seconds"],
            naive,
            x,
            f"{x:.2f}x our stage (+{naive['read_seconds']:.1f} s read)",
            f">= {TARGETS['naive_x_ours']:.0f}x ours",
            x >= TARGETS["naive_x_ours"],
        )
    for name in ("mam_ledger", "mam_sessions"):
        if name not in figures:
            continue
        mam = figures[name]
        x = _ratio(mam["seconds_four"], ours)
        source = "our ledger" if mam["paths"] == "ledger" else "sessions x lines"
        row(
            f"peer: mam 4 heuristics, paths: {source}",
            mam["seconds_four"],
            mam,
            x,
            f"{x:.2f}x our stage ({mam['seconds']:.2f} s with time decay)",
            "> 1x ours" if mam["paths"] == "ledger" else None,
            x > TARGETS["mam_x_ours"] if mam["paths"] == "ledger" else None,
        )
    if "ours_one_window" in figures and "mam_ledger" in figures:
        one = figures["ours_one_window"]
        x = _ratio(figures["mam_ledger"]["seconds_four"], one["seconds"])
        row(
            "peer: mam 4 heuristics vs ours at its one window",
            figures["mam_ledger"]["seconds_four"],
            figures["mam_ledger"],
            x,
            f"{x:.2f}x ours ({one['seconds']:.2f} s: 5 models, 2 scopes, ledger)",
            "> 1x ours",
            x > TARGETS["mam_x_ours"],
        )
    if models:
        step = figures["ours_models"]
        for model, seconds in models.items():
            shown = None
            if model == "fct_attribution" and "naive_pandas" in figures:
                naive_x = _ratio(figures["naive_pandas"]["seconds"], alone)
                shown = f"naive pandas = {naive_x:.2f}x this"
            row(f"  ours alone: {model}", seconds, step, None, shown)

    if "half" in figures:
        half = figures["half"]["full"]
        x = _ratio(full["seconds"], half["seconds"])
        row(
            f"scaling: full pipeline {figures['users']:,} / {figures['half']['users']:,} users",
            full["seconds"],
            None,
            x,
            f"{x:.2f}x",
            f"<= {TARGETS['scaling']}x",
            within(x, TARGETS["scaling"]),
        )
        xf = _ratio(figures["floor"]["seconds"], figures["half"]["floor"]["seconds"])
        xr = _ratio(full["rows_read"], half["rows_read"])
        row(
            "  scaling: floor",
            figures["floor"]["seconds"],
            None,
            xf,
            f"{xf:.2f}x; landing rows {xr:.2f}x",
        )
        for stage in PIPELINE_STAGES:
            a, b = stages.get(stage), half["stage_seconds"].get(stage)
            x = _ratio(a, b)
            if x is None:
                continue
            row(
                f"  scaling: stage {stage}",
                a,
                None,
                x,
                f"{x:.2f}x",
                f"<= {TARGETS['scaling']}x",
                within(x, TARGETS["scaling"]),
            )
    return rows


def print_table(figures: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    full = figures["full"]
    print(
        f"\nbench_scale: {figures['users']:,} users, {figures['days']} days "
        f"({figures['first_day']} .. {figures['last_day']}; nightly {figures['nightly_day']}), "
        f"{full['rows_read']:,} landing rows read; DuckDB memory_limit "
        f"{figures['args']['memory_limit']}, threads {figures['args']['threads'] or 'all'}; "
        f"{figures['machine']['cores']} cores, {figures['machine']['ram_gib']} GiB"
    )
    head = (
        f"{'measurement':<48}{'seconds':>10}{'peak MiB':>9}{'x floor':>9}  "
        f"{'figure':<42}{'target':<21}{'met?':<4}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        seconds = f"{r['seconds']:.2f}" if r["seconds"] is not None else ""
        seconds += "*" if r["contended"] else " "
        peak = str(r["peak_mib"]) if r["peak_mib"] is not None else ""
        x = f"{r['x_floor']:.2f}" if r["x_floor"] is not None else ""
        met = "" if r["met"] is None else ("yes" if r["met"] else "no")
        print(
            f"{r['measurement']:<48}{seconds:>10}{peak:>9}{x:>9}  "
            f"{r['figure_text'] or '':<42}{r['target'] or '':<21}{met:<4}"
        )
    print(
        "targets are defined at L (2M users); * = other processes used more than "
        f"{100 * CONTENDED_SHARE:.0f}% of the machine's CPU during that step"
    )


# --------------------------------------------------------------------------------------------
# Machine, code snapshot, main
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import duckdb
    import pandas
    import polars

    def proc_field(path: str, key: str) -> str | None:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            return None
        return None

    mem_kib = proc_field("/proc/meminfo", "MemTotal")
    try:
        from importlib.metadata import version

        mam_version = version("marketing-attribution-models")
    except Exception:  # optional peer
        mam_version = None
    git = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "attribution", "sql"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(int(mem_kib.split()[0]) / 2**20, 1) if mem_kib else None,
        "cpu": proc_field("/proc/cpuinfo", "model name"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "pandas": pandas.__version__,
        "mam": mam_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git,
        "library_modified_since_commit": dirty.splitlines() if dirty else [],
    }


def snapshot_code(workdir: Path) -> str:
    """Copy the library and its SQL into the workdir: every child of this run imports this copy."""
    code = workdir / "code"
    shutil.rmtree(code, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "attribution", code / "attribution", ignore=ignore)
    shutil.copytree(ROOT / "sql", code / "sql", ignore=ignore)
    return str(code)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default=None)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument(
        "--days", type=int, default=60, help="days of the full run (one more is generated)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit ('' = none)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default all)")
    parser.add_argument("--floor-repeats", type=int, default=3, help="floor = best of N scans")
    parser.add_argument("--scaling", action="store_true", help="also run half the users")
    parser.add_argument("--scaling-workdir", type=Path, default=None)
    peers = parser.add_mutually_exclusive_group()
    peers.add_argument("--peers", dest="peers", action="store_true", default=None)
    peers.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument(
        "--no-nightly", action="store_true", help="the full run only (no nightly, no rebuild)"
    )
    parser.add_argument(
        "--generator-users",
        type=int,
        default=USERS_PER_GENERATOR,
        help="users per generator process (larger workloads are generated in shards)",
    )
    parser.add_argument("--no-rebuild", action="store_true", help="skip the D+1-day rebuild")
    parser.add_argument(
        "--retry-contended",
        type=int,
        default=1,
        help="run a full pipeline again (up to N times) when other processes took > 10%% of the CPU",
    )
    parser.add_argument("--no-expectations", action="store_true")
    parser.add_argument("--no-snapshot", action="store_true", help="children import the tree")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 7, 14, 30])
    parser.add_argument("--half-life-days", type=float, default=7.0)
    args = parser.parse_args(argv)
    if args.workload and args.users is None:
        args.users = WORKLOADS[args.workload]
    args.users = args.users or WORKLOADS["S"]
    args.memory_limit = args.memory_limit or None
    args.workdir = args.workdir or Path(f"/tmp/bench/scale-{args.users}-{args.days}")
    args.scaling_workdir = args.scaling_workdir or args.workdir / "half"
    return args


def start_bench(args: argparse.Namespace) -> tuple[str | None, float, dict[str, Any]]:
    """Prepare a benchmark run: the workdir, the code snapshot its children import (None with
    --no-snapshot), the start time, and the figures' header (arguments and machine)."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    code_dir = None if args.no_snapshot else snapshot_code(args.workdir)
    sys.path.insert(0, code_dir or str(ROOT))
    figures: dict[str, Any] = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
    }
    return code_dir, time.perf_counter(), figures


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child_main(sys.argv[2], sys.argv[3])
        return
    args = parse_args()
    code_dir, started, figures = start_bench(args)
    figures.update(run_workload(args, code_dir))
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    rows = derive(figures)
    figures["table"] = rows
    figures["targets"] = TARGETS
    print_table(figures, rows)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    if figures["full"].get("error"):
        raise SystemExit(f"the full run failed: {figures['full']['error']}")


if __name__ == "__main__":
    main()
