"""Late and restated data: a file that arrives after its night ran, a return three weeks after
its order, an FX rate corrected after the fact. The night that loads it restates exactly the
affected rows (the warehouse before and after the night compared row by row, EXCEPT ALL both
ways, against rows counted by hand), and the result equals a full rebuild.

Four weeks of tiny data (01-15 .. 02-11, windows 1 and 7 days): every day u1 asks the assistant
at 10:00 (one session) and buys at 12:00 for 10.00 EUR (order ``o-<day>``), u4 visits at 08:00.
EUR rates: 1.10 from 01-15, 1.15 from 01-25, 1.10 from 02-01 (a line takes the latest rate on or
before its day). The base warehouse is a backfill of every day; each case then drops one more
file into the partition of the last night (02-11), as upstream delivers late, and runs that
night again.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Landing, fx_rate, order
from test_nightly import BASE_DAYS, four_weeks_landing
from warehouse_diff import compared_columns, table_changes

from attribution.config import Settings
from attribution.pipeline import run_pipeline

SETTINGS = Settings(windows_days=(1, 7))
DAYS = BASE_DAYS  # 01-15 .. 02-11
NIGHT = DAYS[-1]
RATES = {"2024-01-25": "1.15", "2024-02-01": "1.10"}  # and 1.10 from 01-15
# tables a changed order line never touches: the sessions, the other sources
UNTOUCHED_BY_ORDERS = (
    "assistant_sessions",
    "int_interaction_sessions",
    "int_session_products",
    "raw_interactions",
    "raw_visits",
    "raw_fx_rates",
    "quarantine",
)


def four_weeks(landing: Landing) -> None:
    """test_nightly's four weeks (u1, u4 as above; u2 and u3 add sessions and a USD order of
    their own) with the EUR rates of 01-25 and 02-01 added."""
    four_weeks_landing(landing)
    for day, rate in RATES.items():
        landing.csv("fx_rates", "fx.csv", [fx_rate(date=day, rate_to_usd=rate)], dt=day)


def run(landing: Path, warehouse: Path, **dates: date) -> None:
    summary = run_pipeline(
        SETTINGS, landing_dir=landing, warehouse_path=warehouse, expectations=False, **dates
    )
    assert summary.published


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The four weeks' landing folder and a warehouse published by a backfill of every day."""
    root = tmp_path_factory.mktemp("late")
    landing = Landing(root / "landing")
    four_weeks(landing)
    run(landing.root, root / "w.duckdb", start_date=DAYS[0], end_date=NIGHT)
    return landing.root, root / "w.duckdb"


def late_night(
    base: tuple[Path, Path], tmp_path: Path, source: str, rows: list[dict]
) -> dict[str, tuple[list[tuple], list[tuple]]]:
    """Deliver ``rows`` late into the last night's partition, run that night again; return the
    rows each table lost and gained, after proving the result equals a full rebuild."""
    landing = Landing(tmp_path / "landing")
    shutil.copytree(base[0], landing.root, dirs_exist_ok=True)
    before, after, full = (tmp_path / f"{n}.duckdb" for n in ("before", "after", "full"))
    shutil.copyfile(base[1], before)
    shutil.copyfile(base[1], after)
    landing.csv(source, "late.csv", rows, dt=str(NIGHT))

    run(landing.root, after, run_date=NIGHT)

    run(landing.root, full)
    assert table_changes(full, after) == {}
    return table_changes(before, after)


def lines(base: tuple[Path, Path], rows: list[tuple]) -> list[tuple]:
    """Return (order_id, line_status, rate_to_usd, line_amount_usd, line_revenue_usd) of
    int_order_lines rows, sorted."""
    names = compared_columns(base[1], "int_order_lines")
    wanted = ("order_id", "line_status", "rate_to_usd", "line_amount_usd", "line_revenue_usd")
    return sorted(tuple(dict(zip(names, row, strict=True))[k] for k in wanted) for row in rows)


def order_ids(rows: list[tuple]) -> set[str]:
    return {row[0] for row in rows}


def assert_only_orders(changes: dict, removed: set[str], added: set[str]) -> None:
    """The order-grain tables changed in exactly these orders' rows; the sessions and the other
    sources not at all."""
    for table in ("int_order_lines", "int_orders", "fct_attribution"):
        lost, gained = changes[table]
        assert (order_ids(lost), order_ids(gained)) == (removed, added), table
    assert not set(UNTOUCHED_BY_ORDERS) & set(changes)


def ledger_rows(day: date) -> int:
    """fct_attribution rows of u1's order of ``day``: per window, u1's sessions in it (one a day
    at 10:00, the order at 12:00), in scopes user and product."""
    first = DAYS[0]
    sessions_1 = 1
    sessions_7 = min(7, (day - first).days + 1)
    return 2 * (sessions_1 + sessions_7)


def test_an_order_arriving_after_its_night_restates_only_that_order(base, tmp_path) -> None:
    late = order(order_id="o-late", ts="2024-02-05T14:00:00Z", amount="30.00", currency="EUR")

    changes = late_night(base, tmp_path, "orders", [late])

    assert_only_orders(changes, removed=set(), added={"o-late"})
    assert changes["raw_orders"][0] == [] and len(changes["raw_orders"][1]) == 1
    assert len(changes["fct_attribution"][1]) == ledger_rows(date(2024, 2, 5)) == 16
    # 30.00 EUR at the rate of 02-01 (1.10)
    assert lines(base, changes["int_order_lines"][1]) == [
        ("o-late", "placed", Decimal("1.10"), Decimal("33.00"), Decimal("33.00"))
    ]


def test_a_return_three_weeks_later_restates_only_the_returned_order(base, tmp_path) -> None:
    returned = order(
        order_id="o-2024-01-20",
        ts="2024-01-20T12:00:00Z",
        amount="10.00",
        currency="EUR",
        status="returned",
        updated_at="2024-02-11T09:00:00Z",
    )

    changes = late_night(base, tmp_path, "orders", [returned])

    assert_only_orders(changes, removed={"o-2024-01-20"}, added={"o-2024-01-20"})
    lost, gained = changes["fct_attribution"]
    assert len(lost) == len(gained) == ledger_rows(date(2024, 1, 20)) == 14
    lost, gained = changes["int_order_lines"]
    # 10.00 EUR x 1.10: revenue until the return, none after it
    assert lines(base, lost) == [
        ("o-2024-01-20", "placed", Decimal("1.10"), Decimal("11.00"), Decimal("11.00"))
    ]
    assert lines(base, gained) == [
        ("o-2024-01-20", "returned", Decimal("1.10"), Decimal("11.00"), Decimal("0.00"))
    ]


def test_an_fx_rate_corrected_after_the_fact_restates_the_days_it_applies_to(
    base, tmp_path
) -> None:
    corrected = fx_rate(date="2024-01-25", currency="EUR", rate_to_usd="1.25")

    changes = late_night(base, tmp_path, "fx_rates", [corrected])

    # 1.15 applied from 01-25 until the next rate (02-01): the seven orders 01-25 .. 01-31
    days = {f"o-{date(2024, 1, 25) + timedelta(days=i)}" for i in range(7)}
    for table in ("int_order_lines", "int_orders", "fct_attribution"):
        lost, gained = changes[table]
        assert (order_ids(lost), order_ids(gained)) == (days, days), table
    lost, gained = changes["int_order_lines"]
    ten_eur = [(o, "placed", Decimal("1.15"), Decimal("11.50"), Decimal("11.50")) for o in days]
    assert lines(base, lost) == sorted(ten_eur)
    assert lines(base, gained) == sorted(
        (o, status, Decimal("1.25"), Decimal("12.50"), Decimal("12.50"))
        for o, status, *_ in ten_eur
    )
    assert not {"assistant_sessions", "raw_orders", "raw_visits"} & set(changes)
