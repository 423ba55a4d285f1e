"""A nightly build's lift stage keeps the published rows of settled periods (day, week and month
periods that end before the lift's restated window) instead of recomputing them; which day is
settled (``build_window.settled_lift_through``) and that the kept rows are the published ones.
That a nightly with kept rows equals a full rebuild is tests/test_nights_load.py."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from report_warehouse import report_warehouse

from attribution.build_window import BuildWindow, settled_lift_through
from attribution.config import Settings
from attribution.lift import _SQL_OWNED, SETTLED_GRAINS, write_lift_tables
from attribution.warehouse import connect

DATA_START, END, LIFT_START = date(2026, 9, 1), date(2026, 10, 31), date(2026, 10, 1)


@pytest.fixture
def small() -> duckdb.DuckDBPyConnection:
    """Users active on 09-10 (u_old) and 10-20 (u_new); one published run."""
    con = duckdb.connect()
    con.execute("CREATE TABLE _runs (run_id VARCHAR, published BOOLEAN, outcome VARCHAR)")
    con.execute("INSERT INTO _runs VALUES ('r1', true, 'succeeded')")
    con.execute("CREATE TABLE raw_assignments (user_id VARCHAR, _run_id VARCHAR)")
    con.execute("CREATE TABLE stg_visits (user_id VARCHAR, visit_date DATE)")
    con.execute("CREATE TABLE assistant_sessions (user_id VARCHAR, session_date DATE)")
    con.execute("INSERT INTO stg_visits VALUES ('u_old', DATE '2026-09-10')")
    con.execute("INSERT INTO assistant_sessions VALUES ('u_new', DATE '2026-10-20')")
    con.execute("INSERT INTO raw_assignments VALUES ('u_old', 'r1'), ('u_new', 'r1')")
    return con


def nightly(lift_start: date | None, *, full: bool = False) -> BuildWindow:
    return BuildWindow(
        DATA_START, END, DATA_START, full, "test", model_starts={"fct_conversion_lift": lift_start}
    )


def test_the_periods_before_the_lift_window_are_settled(small: duckdb.DuckDBPyConnection) -> None:
    assert settled_lift_through(small, nightly(LIFT_START)) == date(2026, 9, 30)
    # a new assignment of a user first active after that day changes no settled visitor-day
    small.execute("INSERT INTO raw_assignments VALUES ('u_new', 'r2')")
    assert settled_lift_through(small, nightly(LIFT_START)) == date(2026, 9, 30)


def test_nothing_is_settled_when_a_settled_visitor_day_can_change(
    small: duckdb.DuckDBPyConnection,
) -> None:
    assert settled_lift_through(small, nightly(LIFT_START, full=True)) is None
    assert settled_lift_through(small, nightly(None)) is None
    assert settled_lift_through(small, nightly(DATA_START)) is None
    # the holdout flag is per user over all time: a new assignment of a user active on a
    # settled day changes that day's units
    small.execute("INSERT INTO raw_assignments VALUES ('u_old', 'r2')")
    assert settled_lift_through(small, nightly(LIFT_START)) is None
    # the assignment published: settled again
    small.execute("INSERT INTO _runs VALUES ('r2', true, 'succeeded')")
    assert settled_lift_through(small, nightly(LIFT_START)) == date(2026, 9, 30)


def _lift(con: duckdb.DuckDBPyConnection, where: str) -> list[tuple]:
    return con.execute(
        "SELECT period_grain, period_start, segment, method, window_days, lift, p_value_bh "
        f"FROM fct_conversion_lift WHERE {where} ORDER BY ALL"
    ).fetchall()


def test_settled_rows_are_kept_and_the_rest_recomputed(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(report_warehouse(tmp_path_factory), path)
    con = connect(path)
    start, end = con.execute("SELECT min(visit_date), max(visit_date) FROM stg_visits").fetchone()
    through = end - timedelta(days=120)
    settled = (
        "experiment_id IS NULL AND method = 'adjusted' "
        f"AND period_grain IN {SETTLED_GRAINS} AND period_end <= DATE '{through}'"
    )
    recent = f"method = 'adjusted' AND period_grain = 'month' AND period_end > DATE '{through}'"
    published = {q: _lift(con, q) for q in (settled, recent, "true")}
    balance = con.execute("SELECT * FROM fct_lift_balance ORDER BY ALL").fetchall()
    overlap = con.execute("SELECT * FROM fct_lift_overlap ORDER BY ALL").fetchall()
    assert published[settled] and published[recent]
    # mark a settled row and a recent one: the first is kept as it is, the second recomputed
    marked = (
        "UPDATE fct_conversion_lift SET lift = -9 WHERE {} AND segment = 'all' AND window_days = 7"
    )
    con.execute(marked.format(settled))
    con.execute(marked.format(recent))

    written = write_lift_tables(con, Settings(), start, end, settled_through=through)

    assert 0 < written.kept < written.rows
    assert written.rows == len(published["true"]) - len(_lift(con, _SQL_OWNED))
    kept = _lift(con, settled)

    def is_marked(row: tuple) -> bool:
        return row[2] == "all" and row[4] == 7

    assert len(kept) == len(published[settled])
    assert {r[5] for r in kept if is_marked(r)} == {-9}
    assert [r for r in kept if not is_marked(r)] == [
        r for r in published[settled] if not is_marked(r)
    ]
    assert _lift(con, recent) == published[recent]  # recomputed: the mark is gone
    assert con.execute("SELECT * FROM fct_lift_balance ORDER BY ALL").fetchall() == balance
    assert con.execute("SELECT * FROM fct_lift_overlap ORDER BY ALL").fetchall() == overlap

    # without a settled day every row is recomputed: the table is the published one again
    write_lift_tables(con, Settings(), start, end)
    assert _lift(con, "true") == published["true"]
    con.close()
