"""Two runs on one warehouse at once (real processes): the second stops with a clear message
naming the warehouse and the holder, exit 75 (or waits, when told to); a lock left by a killed
run is taken over; a warehouse held open by another process is refused the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from cli_child import Place, run_cli, start_cli
from conftest import Landing, interaction, order, visit

from attribution.faults import FAULT_ENV
from attribution.run_lock import EXIT_BUSY, RunLock, WarehouseBusy, lock_path, read_holder

DAY = "2024-02-01"
WAIT_ENV = "ATTRIBUTION_RUN_LOCK_WAIT_SECONDS"


@pytest.fixture
def tiny(landing: Landing, tmp_path: Path) -> tuple[Path, Place]:
    """A one-day landing folder and an empty place for its warehouse."""
    landing.csv("visits", "v.csv", [visit(ts=f"{DAY}T09:00:00Z")], dt=DAY)
    landing.csv("interactions", "i.csv", [interaction(ts=f"{DAY}T10:00:00Z")], dt=DAY)
    landing.csv("orders", "o.csv", [order(ts=f"{DAY}T11:00:00Z")], dt=DAY)
    return landing.root, Place.at(tmp_path / "place")


@contextmanager
def stopped_holder(landing: Path, place: Place) -> Iterator[subprocess.Popen]:
    """Start a run, wait until it holds the run lock, freeze it (SIGSTOP) for the block, then
    let it finish (it must succeed)."""
    holder = start_cli(landing, place, "run")
    deadline = time.monotonic() + 120
    while (found := read_holder(lock_path(place.warehouse))) is None or found.pid != holder.pid:
        assert holder.poll() is None, holder.communicate()
        assert time.monotonic() < deadline, "the run never took the lock"
        time.sleep(0.01)
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        yield holder
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        _, err = holder.communicate(timeout=300)
    assert holder.returncode == 0, err


def runs(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT run_id, outcome, rows_loaded FROM _runs ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()


def test_a_second_run_stops_at_once_or_after_its_wait_naming_the_holder(tiny) -> None:
    landing, place = tiny
    with stopped_holder(landing, place) as holder:
        holder_run = read_holder(lock_path(place.warehouse))
        refused = run_cli(landing, place, "run")
        started = time.monotonic()
        refused_later = run_cli(landing, place, "run", env={WAIT_ENV: "1.5"})
        waited = time.monotonic() - started

    for result in (refused, refused_later):
        assert result.returncode == EXIT_BUSY, result.stderr
        message = " ".join(result.stderr.split())
        assert f"warehouse {place.warehouse} is busy" in message
        assert f"run {holder_run.run_id} (pid {holder.pid} on " in message
        assert f"started {holder_run.started_at}" in message
    assert "waited 0 s" in " ".join(refused.stderr.split())
    assert "waited 1.5 s" in " ".join(refused_later.stderr.split()) and waited >= 1.5
    # the refused runs touched nothing: one run recorded, the holder's; the file is sound
    assert [(run_id, outcome) for run_id, outcome, _ in runs(place.warehouse)] == [
        (holder_run.run_id, "succeeded")
    ]
    assert lock_path(place.warehouse).read_text() == ""


def test_a_second_run_told_to_wait_runs_after_the_first(tiny) -> None:
    landing, place = tiny
    with stopped_holder(landing, place):
        waiting = start_cli(landing, place, "run", env={WAIT_ENV: "300"})
        time.sleep(1.0)
        assert waiting.poll() is None  # still waiting for the frozen holder
    _, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    (_, outcome_1, loaded_1), (_, outcome_2, loaded_2) = runs(place.warehouse)
    # the second run found every file loaded by the first: it ran after it, not beside it
    assert (outcome_1, outcome_2) == ("succeeded", "succeeded")
    assert (loaded_1, loaded_2) == (3, 0)


def test_a_lock_left_by_a_killed_run_is_taken_over(tiny) -> None:
    landing, place = tiny
    killed = run_cli(landing, place, "run", env={FAULT_ENV: "ingest:done"})
    assert killed.returncode == -signal.SIGKILL
    left = read_holder(lock_path(place.warehouse))
    assert left is not None  # the killed run could not empty the file

    rerun = run_cli(landing, place, "run", quiet=False)

    assert rerun.returncode == 0, rerun.stderr
    output = " ".join(rerun.stdout.split())
    assert f"took over the run lock of {left.describe()}, which ended without releasing it" in (
        output
    )
    assert f"run {left.run_id} was interrupted" in output
    (killed_id, killed_outcome, _), (_, outcome, _) = runs(place.warehouse)
    assert (killed_id, killed_outcome, outcome) == (left.run_id, "interrupted", "succeeded")


HOLD_OPEN = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("open", flush=True)
time.sleep(300)
"""


def test_a_warehouse_kept_open_by_another_process_is_a_clear_refusal(tiny) -> None:
    landing, place = tiny
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(place.warehouse)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        refused = run_cli(landing, place, "run")
        report = [sys.executable, "-m", "attribution.cli", "report"]
        report += ["--warehouse", str(place.warehouse), "--out", str(place.report)]
        refused_report = subprocess.run(report, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    for result in (refused, refused_report):
        assert result.returncode == EXIT_BUSY, result.stderr
        message = " ".join(result.stderr.split())
        assert f"warehouse {place.warehouse} is in use by another process" in message
        assert f"PID {holder.pid}" in message


def test_run_lock_in_one_process(tmp_path: Path) -> None:
    """Two holders of one warehouse's lock, even in one process: the second is refused with the
    first's description; a clean release empties the file and frees the lock."""
    warehouse = tmp_path / "w.duckdb"
    first, second = RunLock(warehouse, "run-a"), RunLock(warehouse, "run-b")
    assert first.acquire() is None
    assert json.loads(lock_path(warehouse).read_text())["run_id"] == "run-a"
    with pytest.raises(WarehouseBusy, match=r"run run-a \(pid \d+ on .*waited 0 s"):
        second.acquire()
    first.release()
    assert lock_path(warehouse).read_text() == ""
    assert second.acquire() is None and second.held
    second.release()
