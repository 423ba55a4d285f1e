"""The ``_runs`` table: one row per pipeline run, and what the published builds covered.

A run is *published* when its build committed (the gate passed); rows loaded by runs that were
not published are what the next nightly run must still restate (``build_window``).

A run's row is written three times: ``outcome = 'running'`` when it takes the run lock, again
inside its build transaction just before the commit (``published = true``: the tables and the
record of their publication commit together), and finally with its outcome. A run whose process
was killed keeps ``'running'``; the next run (which holds the lock, so no other run is alive)
marks it ``'interrupted'`` (``mark_interrupted_runs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

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
# Columns added after the first release (ALTER TABLE ... ADD COLUMN IF NOT EXISTS on open).
RUNS_ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("first_date", "DATE"),
    ("last_date", "DATE"),
    ("window_reason", "VARCHAR"),
    ("model_windows", "VARCHAR"),
    ("stages", "VARCHAR"),
    ("gate", "VARCHAR"),
    ("published", "BOOLEAN"),
    ("report_path", "VARCHAR"),
    ("suppressed_cells", "BIGINT"),
)
# A run's tables were published: its build committed (old rows: a succeeded run).
PUBLISHED_RUNS_SQL = "SELECT run_id FROM _runs WHERE coalesce(published, outcome = 'succeeded')"


def ensure_runs_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``_runs`` if absent and add the columns later releases introduced."""
    con.execute(RUNS_DDL)
    for name, sql_type in RUNS_ADDED_COLUMNS:
        con.execute(f"ALTER TABLE _runs ADD COLUMN IF NOT EXISTS {name} {sql_type}")


@dataclass(frozen=True)
class PublishedBuild:
    """The last build that was published: its settings, code and the end of its window."""

    run_id: str
    settings_hash: str
    code_version: str
    end_date: date


def last_published_build(con: duckdb.DuckDBPyConnection) -> PublishedBuild | None:
    """Return the most recent published build recorded in ``_runs`` (None if there is none)."""
    rows = con.execute(
        "SELECT run_id, settings_hash, code_version, end_date FROM _runs "
        "WHERE coalesce(published, outcome = 'succeeded') AND end_date IS NOT NULL "
        # a run killed after its commit has no finished_at; runs are serial (the run lock)
        "ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST, run_id DESC NULLS LAST LIMIT 1"
    ).fetchall()
    return PublishedBuild(*rows[0]) if rows else None


def unpublished_run_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the loads whose rows no published build has covered yet (sorted)."""
    from attribution.contract import SOURCES

    unions = " UNION ".join(f"SELECT DISTINCT _run_id FROM {s.raw_table}" for s in SOURCES.values())
    rows = con.execute(
        f"SELECT _run_id FROM ({unions}) WHERE _run_id NOT IN ({PUBLISHED_RUNS_SQL}) ORDER BY 1 NULLS LAST"
    ).fetchall()
    return [r[0] for r in rows]


def record_run(con: duckdb.DuckDBPyConnection, values: Mapping[str, Any]) -> None:
    """Insert (or replace, for a retried record) one run's row; ``values`` maps column -> value."""
    ensure_runs_table(con)
    columns = list(values)
    select = ", ".join(f"${name} AS {name}" for name in columns)
    con.execute(f"INSERT OR REPLACE INTO _runs BY NAME SELECT {select}", dict(values))


INTERRUPTED = "interrupted"


def mark_interrupted_runs(con: duckdb.DuckDBPyConnection, current_run_id: str) -> list[str]:
    """Mark every other run still recorded as running as interrupted; return their ids (sorted).

    Call only while holding the warehouse's run lock: then no other run is alive, and a
    ``'running'`` row is a run whose process ended before it recorded its outcome (killed).
    Its ``published`` flag stays as it was: true if it was killed after its build committed.
    """
    rows = con.execute(
        "UPDATE _runs SET outcome = $interrupted, message = $message "
        "WHERE outcome = 'running' AND run_id <> $current RETURNING run_id",
        {
            "interrupted": INTERRUPTED,
            "current": current_run_id,
            "message": "the run's process ended before the run finished (killed or crashed); "
            f"found by run {current_run_id}",
        },
    ).fetchall()
    return sorted(r[0] for r in rows)
