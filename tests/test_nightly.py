"""Nightly and backfill runs: what a night rebuilds, restatements, the publishing gate, _runs.

A hand-made landing folder (windows 1 and 7 days) with a return arriving 10 days after its
order, an order in a currency whose rate comes a day late (the gate refuses that night), and
the proofs: nightly over every day = one full run = a backfill of the range; a rerun of the same
night changes nothing.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import Landing, fx_rate, interaction, order, visit
from digests import differing_tables, warehouse_digests

from attribution.build_window import plan_build_window
from attribution.config import Settings
from attribution.pipeline import GateFailed, run_pipeline
from attribution.warehouse import connect

SETTINGS = Settings(windows_days=(1, 7))
FIRST = date(2024, 2, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(13)]  # 02-01 .. 02-13


def late_return_landing(landing: Landing) -> None:
    """Two weeks of tiny data; o1 is returned on 02-11; o3 (GBP) on 02-12 has its rate on 02-13."""
    for day in DAYS:  # one visitor every day keeps the data moving
        landing.csv("visits", "v.csv", [visit(user_id="u4", ts=f"{day}T08:00:00Z")], dt=str(day))
    landing.csv(
        "visits",
        "v0.csv",
        [
            visit(user_id="u1", ts="2024-02-01T09:00:00Z"),
            visit(user_id="u2", ts="2024-02-01T09:30:00Z"),
        ],
        dt="2024-02-01",
    )
    landing.csv(
        "interactions",
        "i.csv",
        [
            interaction(event_id="e1", user_id="u1", session_id="s1", ts="2024-02-01T10:00:00Z"),
            interaction(event_id="e2", user_id="u2", session_id="s2", ts="2024-02-01T10:05:00Z"),
        ],
        dt="2024-02-01",
    )
    landing.csv("orders", "o.csv", [order(order_id="o1", amount="100.00")], dt="2024-02-01")
    landing.csv(
        "fx_rates",
        "fx.csv",
        [fx_rate(date="2024-02-01", currency="EUR", rate_to_usd="1.10")],
        dt="2024-02-01",
    )
    landing.csv(
        "orders",
        "o.csv",
        [
            order(
                order_id="o2",
                user_id="u2",
                ts="2024-02-02T12:00:00Z",
                amount="50.00",
                currency="EUR",
            )
        ],
        dt="2024-02-02",
    )
    landing.csv(  # the return of o1, ten days after the order
        "orders",
        "o.csv",
        [
            order(
                order_id="o1", amount="100.00", status="returned", updated_at="2024-02-11T08:00:00Z"
            )
        ],
        dt="2024-02-11",
    )
    landing.csv(
        "orders",
        "o.csv",
        [order(order_id="o3", ts="2024-02-12T12:00:00Z", amount="20.00", currency="GBP")],
        dt="2024-02-12",
    )
    landing.csv(  # the GBP rate of 02-12 arrives a day late
        "fx_rates",
        "fx.csv",
        [fx_rate(date="2024-02-12", currency="GBP", rate_to_usd="1.25")],
        dt="2024-02-13",
    )


def backfilled(
    warehouse: Path, landing: Landing, last: date, settings: Settings = SETTINGS
) -> None:
    """Build ``warehouse`` by a backfill of the partitions DAYS[0] .. ``last``."""
    run_pipeline(
        settings,
        landing_dir=landing.root,
        warehouse_path=warehouse,
        start_date=DAYS[0],
        end_date=last,
        expectations=False,
    )


def night(warehouse: Path, landing: Landing, day: date, **kwargs):
    return run_pipeline(
        SETTINGS,
        landing_dir=landing.root,
        warehouse_path=warehouse,
        run_date=day,
        expectations=False,
        **kwargs,
    )


def query(warehouse: Path, sql: str) -> list[tuple]:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


O1_ATTRIBUTION = (
    "SELECT line_status, line_revenue_usd, last_touch FROM fct_attribution "
    "WHERE order_id = 'o1' AND window_days = 7 AND scope = 'user'"
)
DAY1_KPI = "SELECT orders, revenue_usd, attributed_revenue_usd FROM kpi_daily WHERE \"date\" = DATE '2024-02-01'"
DAY1_CONVERSIONS = (
    "SELECT n_engaged, conversions_engaged FROM fct_conversion_lift WHERE period_start = "
    "DATE '2024-02-01' AND period_grain = 'day' AND segment = 'all' AND method = 'observed' "
    "AND window_days = 1"
)


@pytest.fixture
def late_landing(landing: Landing) -> Landing:
    late_return_landing(landing)
    return landing


def test_a_return_ten_days_later_restates_its_order(late_landing: Landing, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    for day in DAYS[:10]:  # 02-01 .. 02-10
        night(warehouse, late_landing, day)
    assert query(warehouse, O1_ATTRIBUTION) == [("placed", 100, 1.0)]
    assert query(warehouse, DAY1_KPI) == [(1, 100, 100)]
    # u1 and u2 used the assistant on 02-01; only u1 bought within a day (o2 came 26.5 h later)
    assert query(warehouse, DAY1_CONVERSIONS) == [(2, 1)]

    summary = night(warehouse, late_landing, date(2024, 2, 11))

    # the window reaches back to the returned order's day although it is past the largest window
    assert summary.start_date == FIRST and summary.end_date == date(2024, 2, 11)
    assert "2024-02-01" in summary.window_reason
    assert query(warehouse, O1_ATTRIBUTION) == [("returned", 0, 1.0)]
    assert query(warehouse, DAY1_KPI) == [(0, 0, 0)]
    assert query(warehouse, DAY1_CONVERSIONS) == [(2, 0)]


def test_a_plain_night_rebuilds_only_the_lookback(late_landing: Landing, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    for day in DAYS[:9]:
        summary = night(warehouse, late_landing, day)
    # 02-09 brings one visit: restate from (02-09 - 7 days); nothing before is touched
    assert (summary.start_date, summary.end_date) == (date(2024, 2, 2), date(2024, 2, 9))
    assert summary.stages["ingest"].rows_out == 1


def test_failed_gate_publishes_nothing_and_the_next_good_night_catches_up(
    late_landing: Landing, tmp_path: Path
) -> None:
    warehouse = tmp_path / "w.duckdb"
    for day in DAYS[:11]:
        night(warehouse, late_landing, day)
    before = warehouse_digests(warehouse)

    with pytest.raises(GateFailed, match=r"order_lines_missing_fx \(1\)") as failure:
        night(warehouse, late_landing, date(2024, 2, 12))
    assert "last good tables and report stay in place" in str(failure.value)

    after = warehouse_digests(warehouse)
    # the raw landing rows of 02-12 are kept (ingest commits per file); no built table changed
    assert [t for t in differing_tables(before, after) if not t.startswith(("raw_", "stg_"))] == []
    assert query(warehouse, "SELECT count(*) FROM int_order_lines WHERE order_id = 'o3'") == [(0,)]
    last = query(
        warehouse,
        "SELECT outcome, gate, published, message FROM _runs ORDER BY finished_at DESC LIMIT 1",
    )[0]
    assert last[:3] == ("failed", "failed", False)
    assert "order_lines_missing_fx" in last[3]

    summary = night(warehouse, late_landing, date(2024, 2, 13))  # the GBP rate arrives
    assert summary.published and summary.gate == "passed"
    # the unpublished rows of 02-12 are part of this night's window
    assert summary.start_date <= date(2024, 2, 12) - timedelta(days=7)
    assert query(
        warehouse,
        "SELECT line_revenue_usd FROM int_order_lines WHERE order_id = 'o3'",
    ) == [(25,)]


def test_nightly_over_every_day_equals_one_full_run_and_a_backfill(
    late_landing: Landing, tmp_path: Path
) -> None:
    nightly, full, backfill = (tmp_path / f"{n}.duckdb" for n in ("nightly", "full", "backfill"))
    for day in DAYS:
        try:
            night(nightly, late_landing, day)
        except GateFailed:
            assert day == date(2024, 2, 12)  # the missing GBP rate, fixed the next night
    run_pipeline(SETTINGS, landing_dir=late_landing.root, warehouse_path=full, expectations=False)
    backfilled(backfill, late_landing, DAYS[-1])
    full_tables = warehouse_digests(full)
    assert differing_tables(full_tables, warehouse_digests(nightly)) == []
    assert differing_tables(full_tables, warehouse_digests(backfill)) == []
    assert full_tables["fct_attribution"][0] > 0 and full_tables["kpi_daily"][0] > 0

    before = warehouse_digests(nightly)  # a rerun of the last night changes nothing
    rerun = night(nightly, late_landing, DAYS[-1])
    assert rerun.ingest["files_already_loaded"] == rerun.ingest["files"]
    assert differing_tables(before, warehouse_digests(nightly)) == []


def test_nightly_equals_full_on_generated_data(tmp_path: Path) -> None:
    """Generated logs (late updates up to 25 days later, duplicates, bad rows): every night vs one
    full run, with windows small enough that nights really rebuild only part of the data."""
    from attribution.generate import generate_landing

    landing = tmp_path / "landing"
    settings = Settings(windows_days=(1, 3))
    generate_landing(
        landing, users=120, days=12, seed=11, start_date=date(2026, 9, 1), settings=settings
    )
    partitions = sorted(
        {p.name[3:] for source in landing.iterdir() if source.is_dir() for p in source.glob("dt=*")}
    )
    nightly, full = tmp_path / "nightly.duckdb", tmp_path / "full.duckdb"
    starts = []
    for day in partitions:
        summary = run_pipeline(
            settings,
            landing_dir=landing,
            warehouse_path=nightly,
            run_date=date.fromisoformat(day),
            expectations=False,
        )
        starts.append(summary.start_date)
    run_pipeline(settings, landing_dir=landing, warehouse_path=full, expectations=False)
    assert differing_tables(warehouse_digests(full), warehouse_digests(nightly)) == []
    assert max(starts) > date(2026, 9, 1)  # some nights did not rebuild from the first day


def test_runs_records_window_settings_code_stages_and_outcome(
    late_landing: Landing, tmp_path: Path
) -> None:
    warehouse = tmp_path / "w.duckdb"
    summary = night(warehouse, late_landing, FIRST)
    row = query(
        warehouse,
        "SELECT mode, run_date, start_date, end_date, settings_hash, code_version, rows_read, "
        "rows_loaded, quarantined, stages, gate, published, outcome, window_reason FROM _runs",
    )
    assert len(row) == 1
    mode, run_date, start, end, settings_hash, code, read, loaded, quarantined = row[0][:9]
    stages, gate, published, outcome, reason = row[0][9:]
    assert (mode, run_date, start, end) == ("nightly", FIRST, FIRST, FIRST)
    assert settings_hash == SETTINGS.settings_hash() and code == summary.code_version
    assert code.split("+")[1] and len(code.split("+")[1]) == 12
    assert (read, loaded, quarantined) == (7, 7, 0)  # 3 visits, 2 events, 1 order, 1 rate
    stages = json.loads(stages)
    for stage in (
        "ingest",
        "sessions",
        "orders",
        "attribution",
        "data_driven",
        "lift",
        "kpi",
        "gate",
    ):
        assert set(stages[stage]) == {"rows_in", "rows_out", "seconds"}, stage
    assert stages["ingest"] == {**stages["ingest"], "rows_in": 7, "rows_out": 7}
    assert stages["sessions"]["rows_in"] == 2 and stages["sessions"]["rows_out"] == 2
    assert stages["attribution"]["rows_in"] == 1  # the one order line of the day
    assert (gate, published, outcome) == ("passed", True, "succeeded")
    assert reason.startswith("first build")


def test_a_settings_change_rebuilds_everything(late_landing: Landing, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    for day in DAYS[:5]:
        night(warehouse, late_landing, day)
    changed = Settings(windows_days=(1, 3))
    summary = run_pipeline(
        changed,
        landing_dir=late_landing.root,
        warehouse_path=warehouse,
        run_date=DAYS[5],
        expectations=False,
    )
    assert summary.start_date == FIRST and "settings changed" in summary.window_reason
    full = tmp_path / "full.duckdb"
    backfilled(full, late_landing, DAYS[5], changed)
    assert differing_tables(warehouse_digests(full), warehouse_digests(warehouse)) == []


def test_plan_is_empty_without_data_and_full_without_a_published_build(tmp_path: Path) -> None:
    from attribution.ingest import ensure_raw_schema
    from attribution.run_log import ensure_runs_table

    con = connect(tmp_path / "w.duckdb")
    ensure_raw_schema(con)
    ensure_runs_table(con)
    assert plan_build_window(con, SETTINGS, full=False, version="v") is None
    con.close()


def test_a_warehouse_of_an_earlier_release_is_upgraded_by_a_full_rebuild(
    late_landing: Landing, tmp_path: Path
) -> None:
    warehouse, fresh = tmp_path / "w.duckdb", tmp_path / "fresh.duckdb"
    for day in DAYS[:4]:
        night(warehouse, late_landing, day)
    con = connect(warehouse)
    # what the earlier release left: kpi_daily a table, lift rows without the user counts
    con.execute("CREATE TABLE kpi_daily_old AS SELECT * FROM kpi_daily")
    con.execute("DROP VIEW kpi_daily")
    con.execute("ALTER TABLE kpi_daily_old RENAME TO kpi_daily")
    con.execute("ALTER TABLE fct_conversion_lift DROP COLUMN n_engaged_users")
    con.execute("UPDATE _runs SET code_version = '0.1.0+earlier'")
    con.close()

    summary = night(warehouse, late_landing, DAYS[4])

    assert summary.start_date == FIRST and "code changed" in summary.window_reason
    backfilled(fresh, late_landing, DAYS[4])
    assert differing_tables(warehouse_digests(fresh), warehouse_digests(warehouse)) == []
