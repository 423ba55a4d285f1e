"""FX rates corrected after the fact: loaded at ingest, the latest delivery wins in staging, and
the next nightly run restates exactly the lines of the corrected dates (== a full rebuild)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
from conftest import Landing, fx_rate, interaction, order, visit
from digests import differing_tables, warehouse_digests

from attribution.config import Settings
from attribution.expectations import validate_loaded_batches
from attribution.pipeline import run_pipeline
from attribution.warehouse import connect

SETTINGS = Settings(windows_days=(1, 7))
DAYS = [date(2024, 2, 1) + timedelta(days=i) for i in range(5)]  # 02-01 .. 02-05
NIGHT = date(2024, 2, 6)


def latest_rates(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """stg_fx_rates as built by the staging model itself (a view over raw_fx_rates)."""
    sql = (Path(__file__).parents[1] / "sql" / "staging" / "stg_fx_rates.sql").read_text()
    return con.execute(
        f"SELECT rate_date, currency, rate_to_usd FROM ({sql}) ORDER BY 1, 2"
    ).fetchall()


def test_a_different_rate_is_a_correction_an_identical_one_a_duplicate(
    landing: Landing, ingest, con
) -> None:
    landing.csv("fx_rates", "fx.csv", [fx_rate(rate_to_usd="1.08")], dt="2024-02-01")
    ingest(run_id="r1")
    landing.csv("fx_rates", "fx.csv", [fx_rate(rate_to_usd="1.09")], dt="2024-02-03")
    (second,) = [f for f in ingest(run_id="r2").files if f.status == "loaded"]
    assert (second.rows_loaded, second.duplicates) == (1, 0)
    assert latest_rates(con) == [(date(2024, 2, 1), "EUR", Decimal("1.09"))]

    # the same corrected rate again: a duplicate of the current one
    landing.csv("fx_rates", "fx.csv", [fx_rate(rate_to_usd="1.0900")], dt="2024-02-04")
    (third,) = [f for f in ingest(run_id="r3").files if f.status == "loaded"]
    assert (third.rows_loaded, third.duplicates) == (0, 1)
    # back to the first rate: a correction too (not a duplicate of the superseded delivery);
    # (a file with the very bytes of an earlier file would be skipped as already loaded)
    landing.csv("fx_rates", "fx.csv", [fx_rate(rate_to_usd="1.080")], dt="2024-02-05")
    (fourth,) = [f for f in ingest(run_id="r4").files if f.status == "loaded"]
    assert (fourth.rows_loaded, fourth.duplicates) == (1, 0)
    assert latest_rates(con) == [(date(2024, 2, 1), "EUR", Decimal("1.08"))]
    assert con.execute("SELECT count(*) FROM raw_fx_rates").fetchall() == [(3,)]


def test_corrections_within_one_file_follow_row_order(
    landing: Landing, ingest, con, tmp_path: Path
) -> None:
    rates = ["1.10", "1.10", "1.20", "1.20", "1.10"]
    landing.csv(
        "fx_rates",
        "fx.csv",
        [fx_rate(rate_to_usd=r) for r in rates] + [fx_rate(currency="GBP", rate_to_usd="1.3")],
    )
    (result,) = ingest().files
    assert (result.rows_read, result.rows_loaded, result.duplicates) == (6, 4, 2)
    assert con.execute("SELECT _row FROM raw_fx_rates ORDER BY _row").fetchall() == [
        (1,),
        (3,),
        (5,),
        (6,),
    ]
    assert latest_rates(con) == [
        (date(2024, 2, 1), "EUR", Decimal("1.10")),
        (date(2024, 2, 1), "GBP", Decimal("1.30")),
    ]
    # a batch holding a rate and its correction passes the critical expectations
    checked = validate_loaded_batches(con, "run1", Settings(), tmp_path / "data_docs")
    assert checked.success


# --- the nightly restatement ------------------------------------------------------------------


def five_days_landing(landing: Landing) -> None:
    """Every day u1 asks the assistant at 10:00 and buys for 100 EUR at 12:00; EUR has its own
    rate every day (1.10, 1.11, ...); u2 visits every day."""
    for i, day in enumerate(DAYS):
        dt = str(day)
        landing.csv("visits", "v.csv", [visit(user_id="u2", ts=f"{dt}T08:00:00Z")], dt=dt)
        landing.csv(
            "interactions",
            "i.csv",
            [interaction(event_id=f"e-{dt}", user_id="u1", session_id="", ts=f"{dt}T10:00:00Z")],
            dt=dt,
        )
        landing.csv(
            "orders",
            "o.csv",
            [order(order_id=f"o-{dt}", ts=f"{dt}T12:00:00Z", amount="100.00", currency="EUR")],
            dt=dt,
        )
        landing.csv("fx_rates", "fx.csv", [fx_rate(date=dt, rate_to_usd=f"1.1{i}")], dt=dt)


def build(warehouse: Path, landing: Landing, **dates: date) -> None:
    run_pipeline(
        SETTINGS,
        landing_dir=landing.root,
        warehouse_path=warehouse,
        expectations=False,
        **dates,
    )


def line_revenue(warehouse: Path) -> dict[str, tuple[Decimal, ...]]:
    """order_id -> (int_order_lines revenue, distinct fct_attribution revenues, kpi_daily sum)."""
    con = connect(warehouse)
    try:
        lines = dict(
            con.execute("SELECT order_id, line_revenue_usd FROM int_order_lines").fetchall()
        )
        credited = dict(
            con.execute(
                "SELECT order_id, max(line_revenue_usd) FROM fct_attribution "
                "GROUP BY order_id HAVING count(DISTINCT line_revenue_usd) = 1"
            ).fetchall()
        )
        daily = dict(
            con.execute(
                "SELECT 'o-' || cast(date AS VARCHAR), sum(revenue_usd) FROM kpi_daily GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    return {order_id: (lines[order_id], credited[order_id], daily[order_id]) for order_id in lines}


def test_a_corrected_rate_restates_exactly_its_dates_lines_like_a_full_rebuild(
    tmp_path: Path,
) -> None:
    landing = Landing(tmp_path / "landing")
    five_days_landing(landing)
    nightly = tmp_path / "nightly.duckdb"
    build(nightly, landing, start_date=DAYS[0], end_date=DAYS[-1])
    before = line_revenue(nightly)
    assert before["o-2024-02-03"] == (Decimal("112.0000"),) * 3

    # on NIGHT a corrected rate for 02-03 arrives (nothing else)
    landing.csv(
        "fx_rates", "fx.csv", [fx_rate(date="2024-02-03", rate_to_usd="1.25")], dt=str(NIGHT)
    )
    build(nightly, landing, run_date=NIGHT)

    after = line_revenue(nightly)
    assert after["o-2024-02-03"] == (Decimal("125.0000"),) * 3
    assert {k: v for k, v in after.items() if k != "o-2024-02-03"} == {
        k: v for k, v in before.items() if k != "o-2024-02-03"
    }
    full = tmp_path / "full.duckdb"
    build(full, landing, start_date=DAYS[0], end_date=NIGHT)
    assert differing_tables(warehouse_digests(full), warehouse_digests(nightly)) == []
