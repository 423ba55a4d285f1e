"""Killed runs: SIGKILL at every stage boundary, mid-load, mid-build and mid-report, then the
same command again.

Each case kills a real ``attribution run --date`` child process (``ATTRIBUTION_FAULT_AT``,
``attribution/faults.py``; one case kills inside a landing file's transaction from a wrapper
script) on a copy of a warehouse built by a backfill of the 19 days before, and proves:

* right after the kill, DuckDB opens the file; the published tables are exactly the previous
  build's (killed before the commit) or exactly the uninterrupted night's (after it), never a
  mix; the report folder is the previous complete report or the new complete one;
* the rerun (``run_pipeline`` in this process, as the CLI calls it) succeeds and every table (raw, quarantine, staging, built) equals the uninterrupted
  night's, row for row (EXCEPT ALL both ways; run ids and load times left out);
* the bookkeeping stays consistent: each landing file loaded once, its rows counted once, no
  quarantine row twice, every load's run in ``_runs``, the killed run recorded as interrupted
  (published only if it was killed after its commit), no temporary report folder left behind,
  the run lock free.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest
from cli_child import Place, run_cli, start_cli
from warehouse_diff import table_changes

from attribution.contract import SOURCES
from attribution.faults import CHECKPOINTS, FAULT_ENV
from attribution.run_lock import lock_path

FIRST = date(2026, 9, 1)
NIGHT = date(2026, 9, 20)  # the 20th generated day: the night that is killed
BASE_END = date(2026, 9, 19)
# checkpoints after which the night's tables are published (committed)
PUBLISHED_FROM = ("build:committed", "report:staged", "report:swapped", "report:done")
# checkpoints after which the new report is in place
NEW_REPORT_FROM = ("report:swapped", "report:done")
IN_FILE_TRANSACTION = "ingest:in-file-transaction"  # the wrapper below, not a checkpoint

# Kills the process when the first landing file's transaction is about to commit: every row of
# the file is inserted (raw rows, quarantine, bookkeeping), nothing is committed.
KILL_AT_FIRST_COMMIT = """
import os, signal, sys
import attribution.pipeline as pipeline

class KillAtCommit:
    def __init__(self, con):
        self._con = con
    def execute(self, sql, *args, **kwargs):
        if isinstance(sql, str) and sql.strip().upper() == "COMMIT":
            os.kill(os.getpid(), signal.SIGKILL)
        return self._con.execute(sql, *args, **kwargs)
    def __getattr__(self, name):
        return getattr(self._con, name)

real_connect = pipeline.connect
pipeline.connect = lambda *a, **k: KillAtCommit(real_connect(*a, **k))
from attribution.cli import main
sys.argv = ["attribution", *sys.argv[1:]]
sys.exit(main())
"""


def kill_at(fault: str, landing: Path, place: Place, *args: str) -> subprocess.CompletedProcess:
    """Run ``attribution <args>`` in a child process that kills itself at ``fault``."""
    if fault == IN_FILE_TRANSACTION:
        return run_cli(landing, place, *args, program=("-c", KILL_AT_FIRST_COMMIT))
    return run_cli(landing, place, *args, env={FAULT_ENV: fault})


def night_args() -> list[str]:
    return ["run", "--date", str(NIGHT)]


def run(landing: Path, place: Place, first: date, last: date | None = None) -> None:
    """Run the pipeline in this process as ``attribution run --date first`` (no ``last``) or
    ``attribution backfill --start first --end last`` with the CLI flags above would."""
    from attribution.config import Settings
    from attribution.pipeline import run_pipeline

    dates = {"run_date": first} if last is None else {"start_date": first, "end_date": last}
    summary = run_pipeline(
        Settings(report_png="never"),
        landing_dir=landing,
        warehouse_path=place.warehouse,
        report_dir=place.report,
        expectations=False,
        **dates,
    )
    assert summary.outcome == "succeeded"


@dataclass(frozen=True)
class Scenario:
    landing: Path
    base: Place  # a backfill of FIRST .. BASE_END, report published
    reference: Place  # base + the night, uninterrupted
    night_seconds: float  # how long the uninterrupted night took in a child process


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    from attribution.generate import generate_landing

    root = tmp_path_factory.mktemp("faults")
    landing = root / "landing"
    generate_landing(landing, users=300, days=20, seed=3, start_date=FIRST)
    base = Place.at(root / "base")
    run(landing, base, FIRST, BASE_END)
    reference = base.copy_to(root / "reference")
    started = time.monotonic()
    night = run_cli(landing, reference, *night_args())
    assert night.returncode == 0, night.stderr[-3000:]
    return Scenario(landing, base, reference, time.monotonic() - started)


def is_published(name: str) -> bool:
    """A table the build writes (not a raw or quarantine table, not a staging view over them)."""
    return not name.startswith(("raw_", "stg_")) and name != "quarantine"


def published_changes(a: Path, b: Path) -> dict[str, tuple[list, list]]:
    return {name: diff for name, diff in table_changes(a, b).items() if is_published(name)}


def report_state(folder: Path) -> dict[str, object]:
    """What a complete report folder holds: its period and a digest of every exported table.
    Fails if the folder is incomplete (a file the manifest names is missing or of another size)."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert (folder / manifest["index_html"]).stat().st_size == manifest["html_bytes"]
    digests = {}
    for table in manifest["tables"].values():
        for kind in ("csv", "parquet"):
            if table.get(kind):
                digests[table[kind]] = hashlib.sha256(
                    (folder / table[kind]).read_bytes()
                ).hexdigest()
    return {"data_end": manifest["data_end"], "exports": digests}


def assert_bookkeeping_consistent(warehouse: Path) -> None:
    """Each landing file loaded once and its rows counted once; no quarantine row twice; every
    load belongs to a run in _runs."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:

        def rows(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        assert (
            rows("SELECT source, sha256 FROM _loaded_files GROUP BY ALL HAVING count(*) > 1") == []
        )
        assert (
            rows(
                "SELECT source, file FROM _ingest_files WHERE status = 'loaded' "
                "GROUP BY ALL HAVING count(*) > 1"
            )
            == []
        )
        assert (
            rows('SELECT source, file, "row" FROM quarantine GROUP BY ALL HAVING count(*) > 1')
            == []
        )
        for name, source in SOURCES.items():
            loaded = con.execute(
                "SELECT file, rows_loaded FROM _ingest_files WHERE status = 'loaded' "
                "AND source = ? AND rows_loaded > 0",
                [name],
            ).fetchall()
            counted = rows(f"SELECT _file, count(*) FROM {source.raw_table} GROUP BY _file")
            assert sorted(loaded) == sorted(counted), name
        loads = " UNION ".join(
            [f"SELECT DISTINCT _run_id FROM {s.raw_table}" for s in SOURCES.values()]
            + ["SELECT run_id FROM _ingest_files", "SELECT run_id FROM quarantine"]
        )
        assert (
            rows(f"SELECT * FROM ({loads}) WHERE _run_id NOT IN (SELECT run_id FROM _runs)") == []
        )
    finally:
        con.close()


def abandoned_temporaries(place: Place) -> list[str]:
    return sorted(p.name for p in place.report.parent.iterdir() if p.name.startswith(".report."))


@pytest.mark.parametrize("fault", [*CHECKPOINTS, IN_FILE_TRANSACTION])
def test_a_night_killed_anywhere_reruns_to_the_uninterrupted_tables(
    fault: str, scenario: Scenario, tmp_path: Path
) -> None:
    place = scenario.base.copy_to(tmp_path / "case")

    killed = kill_at(fault, scenario.landing, place, *night_args())

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    published = fault in PUBLISHED_FROM
    expected = scenario.reference if published else scenario.base
    # no half-written table: exactly the previous build's tables, or exactly the new ones
    assert published_changes(expected.warehouse, place.warehouse) == {}
    # no half-written report: the previous complete one, or the new complete one
    new_report = fault in NEW_REPORT_FROM
    assert report_state(place.report) == report_state(
        (scenario.reference if new_report else scenario.base).report
    )

    run(scenario.landing, place, NIGHT)

    assert table_changes(scenario.reference.warehouse, place.warehouse) == {}
    assert report_state(place.report) == report_state(scenario.reference.report)
    assert_bookkeeping_consistent(place.warehouse)
    con = duckdb.connect(str(place.warehouse), read_only=True)
    runs = con.execute("SELECT outcome, published, mode FROM _runs ORDER BY started_at").fetchall()
    con.close()
    # the backfill, the killed night (published if killed after its commit), the rerun
    assert runs == [
        ("succeeded", True, "backfill"),
        ("interrupted", published, "nightly"),
        ("succeeded", True, "nightly"),
    ]
    assert abandoned_temporaries(place) == []
    assert lock_path(place.warehouse).read_text() == ""  # released by the rerun


@pytest.mark.parametrize("share", [0.5, 0.8])
def test_a_night_killed_at_an_arbitrary_moment_reruns_to_the_uninterrupted_tables(
    share: float, scenario: Scenario, tmp_path: Path
) -> None:
    """SIGKILL from outside after this share of an uninterrupted night's time: wherever it
    lands (DuckDB writing its WAL or a checkpoint, Python between checkpoints, or after the end),
    the published tables and the report are the previous ones or the new ones, and the rerun
    gives the uninterrupted tables."""
    place = scenario.base.copy_to(tmp_path / "case")
    child = start_cli(scenario.landing, place, *night_args())
    try:
        child.wait(timeout=share * scenario.night_seconds)
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode in (0, -signal.SIGKILL)

    old, new = scenario.base, scenario.reference
    assert {} in (
        published_changes(old.warehouse, place.warehouse),
        published_changes(new.warehouse, place.warehouse),
    )
    assert report_state(place.report) in (report_state(old.report), report_state(new.report))
    run(scenario.landing, place, NIGHT)
    assert table_changes(new.warehouse, place.warehouse) == {}
    assert report_state(place.report) == report_state(new.report)
    assert_bookkeeping_consistent(place.warehouse)
    assert abandoned_temporaries(place) == []


@pytest.mark.parametrize("fault", ["ingest:file"])
def test_a_first_build_killed_reruns_to_the_uninterrupted_tables(
    fault: str, scenario: Scenario, tmp_path: Path
) -> None:
    """The backfill that creates the warehouse (a full build), killed mid-load, then rerun."""
    place = Place.at(tmp_path / "case")
    args = ["backfill", "--start", str(FIRST), "--end", str(BASE_END)]

    killed = kill_at(fault, scenario.landing, place, *args)

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not place.report.exists()
    run(scenario.landing, place, FIRST, BASE_END)
    assert table_changes(scenario.base.warehouse, place.warehouse) == {}
    assert_bookkeeping_consistent(place.warehouse)
    assert report_state(place.report) == report_state(scenario.base.report)


def test_the_fault_hook_is_not_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the environment variable triggers it: a settings file naming it is rejected."""
    from pydantic import ValidationError

    from attribution.config import Settings
    from attribution.faults import checkpoint

    (tmp_path / "attribution.toml").write_text('fault_at = "ingest:done"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="fault_at"):
        Settings()
    monkeypatch.delenv(FAULT_ENV, raising=False)
    checkpoint("ingest:done")  # not set in this process: nothing happens
    with pytest.raises(ValueError, match="unknown fault checkpoint"):
        checkpoint("nowhere")
