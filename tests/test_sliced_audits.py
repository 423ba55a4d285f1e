"""An audit declared ``sliced_by`` runs in slices of days: the same offending rows as one query
(issue 7: at 5x L the gate's audits ran out of DuckDB memory over the whole window)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import duckdb
import pytest
from report_warehouse import report_warehouse

from attribution.config import Settings
from attribution.warehouse import audits, load_audit, offending_rows, run_audits, sql_dir

SLICED = (
    "attribution_credits_sum_to_one",
    "attribution_revenue_exceeds_line",
    "attribution_session_outside_window",
    "attribution_single_touch_rank",
)


def test_the_attribution_audits_are_sliced_by_order_date() -> None:
    declared = {a.name: (a.sliced_by, a.slice_column, a.slice_rows) for a in audits()}
    for name in SLICED:
        assert declared[name] == ("fct_attribution", "order_date", 8_000_000)
    # it compares whole-window totals across windows: not a sum over days
    assert declared["attribution_lines_shrink_with_window"] == (None, None, None)


def test_an_audit_must_name_the_date_column_it_is_sliced_by(tmp_path: Path) -> None:
    path = tmp_path / "a.sql"
    path.write_text("-- grain: x\n-- sliced_by: fct_attribution\nselect 1\n")
    with pytest.raises(ValueError, match="date column"):
        load_audit(path)
    path.write_text("-- grain: x\n-- sliced_by: t(d), 5 rows\nselect 1\n")
    assert (load_audit(path).sliced_by, load_audit(path).slice_rows) == ("t", 5)


@pytest.fixture
def broken(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """The report warehouse with ledger rows broken on many days, for every sliced audit."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(report_warehouse(tmp_path_factory), path)
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    picked = "hash(order_id) % 23 = 0"
    # credits no longer sum to 1 and exceed the line: every row of some lines
    con.execute(f"UPDATE fct_attribution SET linear = linear * 2 WHERE {picked}")
    # a session after its order
    con.execute(
        "UPDATE fct_attribution SET session_start = order_at + INTERVAL 1 HOUR "
        "WHERE hash(session_id) % 29 = 0"
    )
    # ranks not 1..n: the first touch of some multi-touch lines ranked 2
    con.execute(
        "UPDATE fct_attribution SET touch_rank = 2 WHERE touch_rank = 1 AND n_touches > 1 "
        "AND hash(order_id) % 31 = 0"
    )
    yield con
    con.close()


class Recording:
    """``con`` that calls ``seen(sql, params)`` before every ``execute`` (to count queries)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seen) -> None:
        self.con, self.seen = con, seen

    def __getattr__(self, attribute: str):
        return getattr(self.con, attribute)

    def execute(self, sql: str, params=None):
        self.seen(sql, params)
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)


def order_dates(con: duckdb.DuckDBPyConnection) -> tuple:
    """The first and last order_date of the ledger."""
    return con.execute("SELECT min(order_date), max(order_date) FROM fct_attribution").fetchone()


@pytest.mark.parametrize("name", SLICED)
def test_a_sliced_audit_finds_the_rows_of_one_query(
    broken: duckdb.DuckDBPyConnection, settings: Settings, name: str
) -> None:
    audit = load_audit(sql_dir() / "audits" / f"{name}.sql")
    first, last, rows, days = broken.execute(
        "SELECT min(order_date), max(order_date), count(*), count(DISTINCT order_date) "
        "FROM fct_attribution"
    ).fetchone()
    assert days >= 12
    slices: list[tuple] = []

    def slice_of(sql: str, params) -> None:  # every audit query is one slice
        if sql.startswith("SELECT count(*) FROM (") and params is not None:
            slices.append((params["start_date"], params["end_date"]))

    counting = Recording(broken, slice_of)

    whole = offending_rows(broken, replace(audit, sliced_by=None), settings, first, last)
    assert whole > 0, "the broken rows must offend"
    sliced = offending_rows(counting, replace(audit, slice_rows=rows // 12), settings, first, last)
    assert len(slices) >= 12
    assert slices[0][0] == first and slices[-1][1] == last
    assert all(b[0] - a[1] == timedelta(days=1) for a, b in pairwise(slices))
    assert sliced == whole
    # a window inside the data: the same rows as one query over that window
    middle = first + (last - first) / 2
    slices.clear()
    part = offending_rows(counting, replace(audit, slice_rows=rows // 12), settings, middle, last)
    assert len(slices) >= 5
    assert part == offending_rows(broken, replace(audit, sliced_by=None), settings, middle, last)
    assert 0 < part < whole


def test_run_audits_counts_the_sliced_audits_over_the_window(
    broken: duckdb.DuckDBPyConnection, settings: Settings
) -> None:
    first, last = order_dates(broken)
    counts = run_audits(broken, settings, first, last)
    assert set(counts) == {a.name for a in audits()}
    assert all(counts[name] > 0 for name in SLICED)
    # the shrink audit still reads whole-window line counts (doubling linear does not touch it)
    assert counts["attribution_lines_shrink_with_window"] == 0


def test_run_audits_plans_the_slices_of_audits_sliced_alike_once(
    broken: duckdb.DuckDBPyConnection, settings: Settings
) -> None:
    first, last = order_dates(broken)
    plans: list[str] = []

    def plan_of(sql: str, params) -> None:  # a query that plans slices (a count per day)
        if sql.startswith('SELECT "order_date", count(*) FROM "fct_attribution"'):
            plans.append(sql)

    shared = run_audits(Recording(broken, plan_of), settings, first, last)
    assert len(plans) == 1  # four audits sliced by fct_attribution(order_date)
    assert shared == {a.name: offending_rows(broken, a, settings, first, last) for a in audits()}
