"""fct_conversion_lift (observed) and kpi_daily on a hand-computed day; audits catch bad rows."""

from datetime import date, datetime
from decimal import Decimal

import pytest
from tables import build, empty_warehouse, insert, rows

from attribution.config import Settings
from attribution.stats import ratio_lift_interval
from attribution.warehouse import run_audits


def at(day, hour, minute=0):
    return datetime(2026, 3, day, hour, minute)


def visit(user, ts, marketplace="US", channel="web"):
    return {"user_id": user, "ts": ts, "marketplace": marketplace, "channel": channel}


def event(event_id, user, ts):
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "marketplace": "US",
        "channel": "web",
        "event_type": "query",
    }


def order(order_id, user, ts, amount="100.00", status="placed"):
    return {
        "order_id": order_id,
        "line_no": 1,
        "user_id": user,
        "ts": ts,
        "marketplace": "US",
        "product_id": "p1",
        "quantity": 1,
        "amount": Decimal(amount),
        "currency": "USD",
        "status": status,
    }


@pytest.fixture
def con():
    con = empty_warehouse()
    insert(
        con,
        "visits",
        [
            visit("u1", at(10, 10)),
            visit("u2", at(10, 11)),
            visit("u3", at(10, 9)),
            visit("u4", at(10, 8)),
        ],
    )
    insert(
        con,
        "interactions",
        [
            event("e1", "u1", at(10, 10, 5)),
            event("e4", "u4", at(10, 8, 30)),
            event("e5", "u5", at(10, 12)),
        ],
    )
    insert(
        con,
        "orders",
        [
            order("o1", "u1", at(12, 9)),  # engaged, 1.96 days later: converts at 7 days only
            order("o2", "u2", at(10, 15), amount="40.00"),  # not engaged, same day
            order("o4", "u4", at(9, 9)),  # before the visit: does not count
            order("o5", "u5", at(11, 9), status="cancelled"),  # no placed line
        ],
    )
    insert(con, "fx_rates", [{"date": date(2026, 3, 1), "currency": "USD", "rate_to_usd": 1}])
    build(con, date(2026, 3, 1), date(2026, 3, 31))
    return con


def lift_row(con, window, segment="all"):
    return rows(
        con,
        "SELECT n_engaged, n_comparison, conversions_engaged, conversions_comparison, cr_engaged, "
        "cr_comparison, lift, revenue_per_user_engaged_usd, revenue_per_user_comparison_usd, "
        "lift_ci_low, lift_ci_high FROM fct_conversion_lift WHERE period_start = DATE '2026-03-10'"
        f" AND window_days = {window} AND segment = '{segment}' AND method = 'observed'",
    )[0]


def test_observed_lift_hand_computed(con):
    # engaged visitor-days: u1, u4, u5 (session only); comparison: u2, u3
    n_e, n_c, x_e, x_c, cr_e, cr_c, lift, rpu_e, rpu_c, low, high = lift_row(con, 7)
    assert (n_e, n_c, x_e, x_c) == (3, 2, 1, 1)
    assert (cr_e, cr_c, lift) == pytest.approx((1 / 3, 1 / 2, -1 / 3))
    assert (rpu_e, rpu_c) == (Decimal("33.3333"), Decimal("20.0000"))
    expected = ratio_lift_interval(1, 3, 1, 2)
    assert (low, high) == pytest.approx((expected.ci_low, expected.ci_high))
    n_e, n_c, x_e, x_c, *_ = lift_row(con, 1)
    assert (n_e, n_c, x_e, x_c) == (3, 2, 0, 1)
    # distinct users per group (one visitor-day per user and day): u1, u4, u5 vs u2, u3
    assert rows(
        con,
        "SELECT n_engaged_users, n_comparison_users FROM fct_conversion_lift "
        "WHERE period_start = DATE '2026-03-10' AND window_days = 7 AND segment = 'all'",
    ) == [(3, 2)]


def test_segments_and_incomplete_windows(con):
    assert lift_row(con, 7, "marketplace=US")[:4] == (3, 2, 1, 1)
    assert lift_row(con, 7, "channel=web")[:4] == (3, 2, 1, 1)
    # a 30-day window from 2026-03-10 ends after the data (2026-03-31): not published
    assert rows(con, "SELECT count(*) FROM fct_conversion_lift WHERE window_days = 30")[0][0] == 0


def test_kpi_daily_hand_computed(con):
    got = rows(
        con,
        'SELECT "date", dau, queries, sessions, orders, revenue_usd FROM kpi_daily '
        "WHERE marketplace = 'US' ORDER BY \"date\"",
    )
    assert got == [
        (date(2026, 3, 9), 0, 0, 0, 1, Decimal("100.0000")),
        (date(2026, 3, 10), 3, 3, 3, 1, Decimal("40.0000")),
        (date(2026, 3, 11), 0, 0, 0, 0, Decimal("0.0000")),
        (date(2026, 3, 12), 0, 0, 0, 1, Decimal("100.0000")),
    ]


def test_audits_pass_on_good_tables_and_catch_a_broken_credit(con):
    settings = Settings()
    assert set(run_audits(con, settings, date(2026, 3, 1), date(2026, 3, 31)).values()) == {0}
    con.execute("UPDATE fct_attribution SET linear = 1.7 WHERE order_id = 'o1'")
    failed = run_audits(con, settings, date(2026, 3, 1), date(2026, 3, 31))
    assert failed["attribution_credits_sum_to_one"] > 0
    assert failed["attribution_revenue_exceeds_line"] > 0
