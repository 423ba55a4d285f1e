"""Nightly and backfill runs: what a night rebuilds, restatements, the publishing gate, _runs.

A hand-made landing folder (windows 1 and 7 days) with a return arriving 10 days after its
order, an order in a currency whose rate comes a day late (the gate refuses that night), and
the proofs: nightly over every day = one full run = a backfill of the range; a rerun of the same
night changes nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import Landing, fx_rate, interaction, order, visit
from digests import differing_tables, warehouse_digests

from attribution.build_window import (
    RESTATED_FROM,
    Changes,
    plan_build_window,
    restatement_starts,
)
from attribution.config import Settings
from attribution.pipeline import GateFailed, run_pipeline
from attribution.warehouse import connect, models

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
    warehouse: Path,
    landing: Landing,
    last: date,
    settings: Settings = SETTINGS,
    first: date = DAYS[0],
) -> None:
    """Build ``warehouse`` by a backfill of the partitions ``first`` .. ``last``."""
    run_pipeline(
        settings,
        landing_dir=landing.root,
        warehouse_path=warehouse,
        start_date=first,
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


# The incremental models by what restates them together (expected_windows).
GROUPS: dict[str, tuple[str, ...]] = {
    "sessions": ("int_interaction_sessions", "assistant_sessions", "int_session_products"),
    "orders": ("int_order_lines", "int_orders"),
    "attribution": (
        "fct_attribution",
        "fct_attribution_lag",
        "fct_attribution_window_sensitivity",
    ),
    "lift": ("fct_conversion_lift",),
    "kpi_daily": ("kpi_daily_segments",),
    "kpi_monthly": ("kpi_monthly_segments",),
}


def expected_windows(end: date, **first_days: str) -> dict[str, list[str] | None]:
    """Return the model_windows of a run: each group of GROUPS from its first day (ISO) through
    ``end``; a group not named is not restated (None)."""
    unknown = set(first_days) - set(GROUPS)
    assert not unknown, unknown
    return {
        name: [first_days[group], str(end)] if group in first_days else None
        for group, names in GROUPS.items()
        for name in names
    }


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
    # 02-09 brings one visit: the conversion windows of 02-02 close (02-09 - 7 days); sessions,
    # orders and the ledger are not touched; the month's KPI row is rebuilt whole
    assert summary.model_windows == expected_windows(
        date(2024, 2, 9), lift="2024-02-02", kpi_daily="2024-02-02", kpi_monthly="2024-02-01"
    )
    assert (summary.start_date, summary.end_date) == (date(2024, 2, 1), date(2024, 2, 9))
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
    """Generated logs (returns 3 to 16 days after their orders, cancellations, duplicates, bad
    rows), across a month end: every night vs one full run, with windows small enough that nights
    really rebuild only part of the data, and each model only what its inputs changed."""
    from attribution.generate import generate_landing

    landing = tmp_path / "landing"
    settings = Settings(windows_days=(1, 3))
    first = date(2026, 9, 24)
    generate_landing(landing, users=300, days=12, seed=11, start_date=first, settings=settings)
    partitions = sorted(
        {p.name[3:] for source in landing.iterdir() if source.is_dir() for p in source.glob("dt=*")}
    )
    nightly, full = tmp_path / "nightly.duckdb", tmp_path / "full.duckdb"
    summaries = [
        run_pipeline(
            settings,
            landing_dir=landing,
            warehouse_path=nightly,
            run_date=date.fromisoformat(day),
            expectations=False,
        )
        for day in partitions
    ]
    run_pipeline(settings, landing_dir=landing, warehouse_path=full, expectations=False)
    assert differing_tables(warehouse_digests(full), warehouse_digests(nightly)) == []
    assert max(s.start_date for s in summaries) > first  # not every night from the first day
    windows = [s.model_windows for s in summaries[1:]]
    # a night of a late return only: the order lines restated, the sessions not
    assert any(w["int_orders"] and not w["assistant_sessions"] for w in windows)
    # a new day with a return: the sessions from the day before, the order lines from the
    # returned order's date
    assert any(
        w["assistant_sessions"]
        and w["int_orders"]
        and w["assistant_sessions"][0] > w["int_orders"][0]
        for w in windows
    )
    assert any(w["kpi_monthly_segments"] == ["2026-10-01", "2026-10-05"] for w in windows)


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
    (windows,) = query(warehouse, "SELECT model_windows FROM _runs")[0]
    assert json.loads(windows) == expected_windows(FIRST, **dict.fromkeys(GROUPS, str(FIRST)))


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


# --- one kind of change per night: narrow windows, the same tables as a full rebuild ---------

BASE_DAYS = [date(2024, 1, 15) + timedelta(days=i) for i in range(28)]  # 01-15 .. 02-11
NIGHT = date(2024, 2, 12)


def four_weeks_landing(landing: Landing) -> None:
    """Four weeks across a month end. Every day u4 visits, u1 asks the assistant at 10:00 (rule
    sessions) and buys at 12:00 in EUR, whose one rate is delivered for the first day; u2 asks
    at 23:50 on 02-09 and buys on 02-10; u3 opens the given session g1 on 02-07."""
    landing.csv(
        "fx_rates",
        "fx.csv",
        [fx_rate(date="2024-01-15", currency="EUR", rate_to_usd="1.10")],
        dt="2024-01-15",
    )
    for day in BASE_DAYS:
        landing.csv("visits", "v.csv", [visit(user_id="u4", ts=f"{day}T08:00:00Z")], dt=str(day))
        landing.csv(
            "interactions",
            "i.csv",
            [interaction(event_id=f"e-{day}", user_id="u1", session_id="", ts=f"{day}T10:00:00Z")],
            dt=str(day),
        )
        landing.csv(
            "orders",
            "o.csv",
            [order(order_id=f"o-{day}", ts=f"{day}T12:00:00Z", amount="10.00", currency="EUR")],
            dt=str(day),
        )
    landing.csv(
        "interactions",
        "g.csv",
        [interaction(event_id="g1-a", user_id="u3", session_id="g1", ts="2024-02-07T20:00:00Z")],
        dt="2024-02-07",
    )
    landing.csv(
        "interactions",
        "late.csv",
        [interaction(event_id="u2-a", user_id="u2", session_id="", ts="2024-02-09T23:50:00Z")],
        dt="2024-02-09",
    )
    landing.csv(
        "orders",
        "u2.csv",
        [order(order_id="o-u2", user_id="u2", ts="2024-02-10T12:00:00Z", amount="40.00")],
        dt="2024-02-10",
    )


@pytest.fixture(scope="module")
def four_weeks_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The four weeks' landing folder and a warehouse published by a backfill of them."""
    root = tmp_path_factory.mktemp("four_weeks")
    landing = Landing(root / "landing")
    four_weeks_landing(landing)
    backfilled(root / "w.duckdb", landing, BASE_DAYS[-1], first=BASE_DAYS[0])
    return landing.root, root / "w.duckdb"


@dataclass(frozen=True)
class NightOfChange:
    """One kind of change arriving on NIGHT, the windows it must restate, and a probe of it."""

    source: str
    rows: list[dict[str, Any]]
    end: date
    first_days: dict[str, str]
    probe: str
    probed: list[tuple]


NIGHTS_OF_CHANGE: dict[str, NightOfChange] = {
    # sessions from the day before the new event; the ledger from that day (new touches can only
    # credit later orders); lift and KPIs from the conversion windows that close tonight
    "new interactions only": NightOfChange(
        "interactions",
        [interaction(event_id="e-new", user_id="u1", session_id="", ts="2024-02-12T10:00:00Z")],
        NIGHT,
        {
            "sessions": "2024-02-11",
            "attribution": "2024-02-11",
            "lift": "2024-02-05",
            "kpi_daily": "2024-02-05",
            "kpi_monthly": "2024-02-01",
        },
        "SELECT count(*) FROM assistant_sessions WHERE session_date = DATE '2024-02-12'",
        [(1,)],
    ),
    # the order's date; the lift from a window before it (visitor-days whose window holds it);
    # the KPIs from the first lift row that changed (02-03 10:00 is within 7 days of the order)
    "a late order only": NightOfChange(
        "orders",
        [order(order_id="o-late", ts="2024-02-09T14:00:00Z", amount="30.00", currency="EUR")],
        BASE_DAYS[-1],
        {
            "orders": "2024-02-09",
            "attribution": "2024-02-09",
            "lift": "2024-02-02",
            "kpi_daily": "2024-02-03",
            "kpi_monthly": "2024-02-01",
        },
        # u1's sessions of 02-03 .. 02-09, each in scopes user and product
        "SELECT count(*) FROM fct_attribution WHERE order_id = 'o-late' AND window_days = 7",
        [(14,)],
    ),
    # weeks later: the order's date, not a lookback before it, for the lines and the ledger
    "a status-only return weeks later": NightOfChange(
        "orders",
        [
            order(
                order_id="o-2024-01-25",
                ts="2024-01-25T12:00:00Z",
                amount="10.00",
                currency="EUR",
                status="returned",
                updated_at="2024-02-12T08:00:00Z",
            )
        ],
        BASE_DAYS[-1],
        {
            "orders": "2024-01-25",
            "attribution": "2024-01-25",
            "lift": "2024-01-18",
            "kpi_daily": "2024-01-19",
            "kpi_monthly": "2024-01-01",
        },
        "SELECT DISTINCT line_status, line_revenue_usd FROM fct_attribution "
        "WHERE order_id = 'o-2024-01-25'",
        [("returned", 0)],
    ),
    # a rate for a past date without one: the lines from that date on take it
    "a late FX rate for a past date": NightOfChange(
        "fx_rates",
        [fx_rate(date="2024-02-05", currency="EUR", rate_to_usd="1.20")],
        BASE_DAYS[-1],
        {
            "orders": "2024-02-05",
            "attribution": "2024-02-05",
            "lift": "2024-01-29",
            "kpi_daily": "2024-01-30",
            "kpi_monthly": "2024-01-01",
        },
        "SELECT order_date, rate_to_usd FROM int_order_lines "
        "WHERE order_id IN ('o-2024-02-04', 'o-2024-02-11') ORDER BY 1",
        [(date(2024, 2, 4), Decimal("1.10")), (date(2024, 2, 11), Decimal("1.20"))],
    ),
    # 00:10 on 02-10 extends u2's session of 23:50 on 02-09: sessions from 02-09
    "a late interaction extends a session across midnight": NightOfChange(
        "interactions",
        [interaction(event_id="u2-b", user_id="u2", session_id="", ts="2024-02-10T00:10:00Z")],
        BASE_DAYS[-1],
        {
            "sessions": "2024-02-09",
            "attribution": "2024-02-09",
            "lift": "2024-02-09",
            "kpi_daily": "2024-02-09",
            "kpi_monthly": "2024-02-01",
        },
        "SELECT session_date, n_events FROM assistant_sessions WHERE user_id = 'u2'",
        [(date(2024, 2, 9), 2)],
    ),
    # an event of the given session g1, three days after its start: sessions from its start
    "a late interaction joins a given session days later": NightOfChange(
        "interactions",
        [interaction(event_id="g1-b", user_id="u3", session_id="g1", ts="2024-02-10T09:00:00Z")],
        BASE_DAYS[-1],
        {
            "sessions": "2024-02-07",
            "attribution": "2024-02-07",
            "lift": "2024-02-07",
            "kpi_daily": "2024-02-07",
            "kpi_monthly": "2024-02-01",
        },
        "SELECT session_date, n_events FROM assistant_sessions WHERE session_id = 'g1'",
        [(date(2024, 2, 7), 2)],
    ),
}


@pytest.mark.parametrize("kind", sorted(NIGHTS_OF_CHANGE))
def test_each_kind_of_change_restates_only_what_it_changes(
    kind: str, four_weeks_built: tuple[Path, Path], tmp_path: Path
) -> None:
    change = NIGHTS_OF_CHANGE[kind]
    base_landing, base_warehouse = four_weeks_built
    landing = Landing(tmp_path / "landing")
    shutil.copytree(base_landing, landing.root, dirs_exist_ok=True)
    warehouse = tmp_path / "w.duckdb"
    shutil.copyfile(base_warehouse, warehouse)
    landing.csv(change.source, "night.csv", change.rows, dt=str(NIGHT))

    summary = night(warehouse, landing, NIGHT)

    assert summary.model_windows == expected_windows(change.end, **change.first_days)
    assert query(warehouse, change.probe) == change.probed
    full = tmp_path / "full.duckdb"
    backfilled(full, landing, NIGHT, first=BASE_DAYS[0])
    assert differing_tables(warehouse_digests(full), warehouse_digests(warehouse)) == []


def test_every_incremental_model_has_a_restatement_rule() -> None:
    incremental = {m.name for m in models() if m.materialized == "incremental"}
    assert incremental == set(RESTATED_FROM)
    assert incremental == {name for names in GROUPS.values() for name in names}


def test_restatement_rules_follow_what_each_model_reads() -> None:
    names = [m.name for m in models() if m.materialized == "incremental"]
    changes = Changes(sessions=date(2024, 2, 9), orders=date(2024, 1, 25))
    starts = restatement_starts(changes, SETTINGS, names)
    assert starts["assistant_sessions"] == date(2024, 2, 9)
    assert starts["int_orders"] == date(2024, 1, 25)
    # the ledger from the earlier of the two, never a lookback before it
    assert starts["fct_attribution_lag"] == date(2024, 1, 25)
    # conversions: the visitor-days whose 7-day window holds the order
    assert starts["fct_conversion_lift"] == date(2024, 1, 18)
    assert starts["kpi_monthly_segments"] == date(2024, 1, 25)
    nothing = restatement_starts(Changes(), SETTINGS, names)
    assert set(nothing.values()) == {None}
