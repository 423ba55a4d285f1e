"""fct_attribution on hand-computed tables: every rule model, windows, scopes, FX, statuses."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from tables import T0, build, empty_warehouse, insert, rows

from attribution.config import Settings
from attribution.warehouse import run_audits

ORDER_AT = T0  # 2026-03-10 12:00 UTC
MODELS = "first_touch, last_touch, linear, time_decay, position_based"


def session_event(event_id, user, days_before, products=None, session_id=None):
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ORDER_AT - timedelta(days=days_before),
        # every event its own given session, so that equal start times stay separate touches
        "session_id": session_id or f"s-{event_id}",
        "marketplace": "US",
        "channel": "web",
        "event_type": "query",
        "product_ids": products,
        "model_version": "v1",
    }


def line(order_id, line_no, product, amount="100.00", currency="USD", status="placed", user="u1"):
    return {
        "order_id": order_id,
        "line_no": line_no,
        "user_id": user,
        "ts": ORDER_AT,
        "marketplace": "US",
        "product_id": product,
        "quantity": 1,
        "amount": Decimal(amount),
        "currency": currency,
        "status": status,
    }


def fx(currency, day, rate):
    return {"date": day, "currency": currency, "rate_to_usd": Decimal(rate)}


def warehouse(events, lines, rates=None):
    con = empty_warehouse()
    insert(con, "interactions", events)
    insert(con, "orders", lines)
    insert(con, "fx_rates", rates or [fx("USD", date(2026, 1, 1), "1")])
    build(con, date(2026, 1, 1), date(2026, 3, 31))
    return con


def credits(con, window, scope="user", order="o1", line_no=1):
    return rows(
        con,
        f"SELECT session_id, {MODELS} FROM fct_attribution WHERE order_id = '{order}' "
        f"AND line_no = {line_no} AND window_days = {window} AND scope = '{scope}' "
        "ORDER BY touch_rank",
    )


def test_time_decay_worked_example_7_day_half_life():
    # touches 0, 0, 6 and 9 days before the conversion: 33.8%, 33.8%, 18.6%, 13.8%
    con = warehouse(
        [
            session_event("a", "u1", 0),
            session_event("b", "u1", 0),
            session_event("c", "u1", 6),
            session_event("d", "u1", 9),
        ],
        [line("o1", 1, "p1")],
    )
    got = {r[0]: r[4] for r in credits(con, 30)}
    assert [round(got[s], 3) for s in ("s-a", "s-b", "s-c", "s-d")] == [0.338, 0.338, 0.186, 0.138]
    # exact: weights 1, 1, 2^(-6/7), 2^(-9/7)
    weights = [1, 1, 2 ** (-6 / 7), 2 ** (-9 / 7)]
    assert got["s-c"] == pytest.approx(weights[2] / sum(weights), abs=1e-12)


def test_every_rule_model_with_four_touches_and_a_tie():
    con = warehouse(
        [
            session_event("d", "u1", 9),
            session_event("c", "u1", 6),
            session_event("b", "u1", 0),
            session_event("a", "u1", 0),
        ],
        [line("o1", 1, "p1")],
    )
    got = credits(con, 30)
    # order: d (9 days), c (6 days), then the tie at 0 days broken by session_id: s-a, s-b
    assert [r[0] for r in got] == ["s-d", "s-c", "s-a", "s-b"]
    assert [r[1] for r in got] == [1, 0, 0, 0]  # first touch
    assert [r[2] for r in got] == [0, 0, 0, 1]  # last touch: the tie's later session_id
    assert [r[3] for r in got] == [0.25] * 4  # linear
    assert [r[5] for r in got] == pytest.approx([0.4, 0.1, 0.1, 0.4])  # position based


@pytest.mark.parametrize(("n", "expected"), [(1, [1.0]), (2, [0.5, 0.5]), (3, [0.4, 0.2, 0.4])])
def test_position_based_small_paths(n, expected):
    con = warehouse([session_event(f"e{i}", "u1", 3 - i) for i in range(n)], [line("o1", 1, "p1")])
    assert [r[5] for r in credits(con, 7)] == pytest.approx(expected)


def test_window_boundary_exactly_n_days_is_inclusive():
    just_outside = session_event("out", "u1", 7)
    just_outside["ts"] -= timedelta(microseconds=1)
    con = warehouse(
        [session_event("edge", "u1", 7), just_outside, session_event("day1", "u1", 1)],
        [line("o1", 1, "p1")],
    )
    assert [r[0] for r in credits(con, 1)] == ["s-day1"]  # exactly 1 day before: inside
    assert [r[0] for r in credits(con, 7)] == ["s-edge", "s-day1"]
    assert [r[0] for r in credits(con, 14)] == ["s-out", "s-edge", "s-day1"]


def test_session_after_the_order_is_never_eligible():
    after = session_event("late", "u1", 0)
    after["ts"] += timedelta(seconds=1)
    con = warehouse([after, session_event("ok", "u1", 2)], [line("o1", 1, "p1")])
    assert [r[0] for r in credits(con, 30)] == ["s-ok"]


def test_line_with_no_eligible_session_is_unattributed():
    con = warehouse([session_event("old", "u1", 40)], [line("o1", 1, "p1")])
    assert rows(con, "SELECT count(*) FROM fct_attribution")[0][0] == 0
    assert rows(con, "SELECT count(*) FROM int_order_lines")[0][0] == 1


def test_other_users_sessions_are_never_eligible():
    con = warehouse([session_event("x", "u2", 1)], [line("o1", 1, "p1")])
    assert rows(con, "SELECT count(*) FROM fct_attribution")[0][0] == 0


def test_two_lines_of_one_order_product_scope():
    con = warehouse(
        [
            session_event("s1", "u1", 3, products=["p1", "p9"]),
            session_event("s2", "u1", 1, products=["p2"]),
            session_event("s3", "u1", 2),
        ],
        [line("o1", 1, "p1"), line("o1", 2, "p2", amount="50.00")],
    )
    assert [r[0] for r in credits(con, 7, "user", line_no=1)] == ["s-s1", "s-s3", "s-s2"]
    assert [r[0] for r in credits(con, 7, "user", line_no=2)] == ["s-s1", "s-s3", "s-s2"]
    assert credits(con, 7, "product", line_no=1) == [("s-s1", 1, 1, 1, 1, 1)]
    assert credits(con, 7, "product", line_no=2) == [("s-s2", 1, 1, 1, 1, 1)]


def test_fx_latest_rate_on_or_before_the_order_date():
    con = warehouse(
        [session_event("s1", "u1", 1)],
        [line("o1", 1, "p1", amount="100.00", currency="EUR")],
        rates=[
            fx("USD", date(2026, 3, 1), "1"),
            fx("EUR", date(2026, 3, 8), "1.10"),
            fx("EUR", date(2026, 3, 11), "1.50"),  # after the order date: not used
        ],
    )
    got = rows(con, "SELECT DISTINCT line_amount_usd, line_revenue_usd FROM fct_attribution")
    assert got == [(Decimal("110.0000"), Decimal("110.0000"))]


def test_cancelled_line_kept_with_zero_revenue():
    con = warehouse(
        [session_event("s1", "u1", 1)],
        [line("o1", 1, "p1"), line("o1", 2, "p2", amount="30.00", status="cancelled")],
    )
    got = rows(
        con,
        "SELECT line_no, line_status, line_amount_usd, line_revenue_usd, last_touch "
        "FROM fct_attribution WHERE window_days = 7 AND scope = 'user' ORDER BY line_no",
    )
    assert got == [
        (1, "placed", Decimal("100.0000"), Decimal("100.0000"), 1.0),
        (2, "cancelled", Decimal("30.0000"), Decimal("0.0000"), 1.0),
    ]


def test_later_order_update_replaces_the_line_state():
    returned = line("o1", 1, "p1", status="returned")
    returned["updated_at"] = ORDER_AT + timedelta(days=10)
    con = warehouse([session_event("s1", "u1", 1)], [line("o1", 1, "p1"), returned])
    assert rows(con, "SELECT line_status, line_revenue_usd, n_versions FROM int_order_lines") == [
        ("returned", Decimal("0.0000"), 2)
    ]


def test_rebuilding_the_same_window_gives_identical_tables():
    con = warehouse(
        [session_event("a", "u1", 0), session_event("c", "u1", 6)], [line("o1", 1, "p1")]
    )
    before = rows(con, "SELECT * FROM fct_attribution ORDER BY ALL")
    build(con, date(2026, 1, 1), date(2026, 3, 31))
    assert rows(con, "SELECT * FROM fct_attribution ORDER BY ALL") == before


def test_window_sensitivity_and_lag_distribution():
    con = warehouse(
        [session_event("a", "u1", 0.5), session_event("c", "u1", 6), session_event("d", "u1", 9)],
        [line("o1", 1, "p1"), line("o1", 2, "p2", amount="50.00")],
    )
    got = rows(
        con,
        "SELECT window_days, attributed_lines, line_revenue_usd, last_touch_revenue_usd, "
        "linear_revenue_usd FROM fct_attribution_window_sensitivity WHERE scope = 'user' "
        "ORDER BY window_days",
    )
    assert got == [
        (1, 2, Decimal("150.0000"), Decimal("150.0000"), Decimal("150.0000")),
        (7, 2, Decimal("150.0000"), Decimal("150.0000"), Decimal("150.0000")),
        (14, 2, Decimal("150.0000"), Decimal("150.0000"), Decimal("150.0000")),
        (30, 2, Decimal("150.0000"), Decimal("150.0000"), Decimal("150.0000")),
    ]
    # the last touch is 12 hours before the order in every window: bucket 6-24h
    lag = rows(
        con,
        "SELECT window_days, lag_bucket, attributed_lines FROM fct_attribution_lag "
        "WHERE scope = 'user' ORDER BY window_days",
    )
    assert lag == [(1, "6-24h", 2), (7, "6-24h", 2), (14, "6-24h", 2), (30, "6-24h", 2)]


def test_usd_is_one_without_delivered_rates_and_missing_rates_fail_the_audit():
    con = empty_warehouse()
    insert(con, "interactions", [session_event("s1", "u1", 1)])
    insert(con, "orders", [line("o1", 1, "p1"), line("o2", 1, "p1", currency="EUR")])
    build(con, date(2026, 1, 1), date(2026, 3, 31))
    got = rows(con, "SELECT order_id, line_amount_usd FROM int_order_lines ORDER BY order_id")
    assert got == [("o1", Decimal("100.0000")), ("o2", None)]
    audits = run_audits(con, Settings(), date(2026, 1, 1), date(2026, 3, 31))
    assert audits["order_lines_missing_fx"] == 1


def test_brand_and_category_scopes_with_a_products_catalogue():
    con = empty_warehouse()
    insert(
        con,
        "interactions",
        [
            session_event("s1", "u1", 3, products=["p2"]),  # same brand as p1, other category
            session_event("s2", "u1", 2, products=["p3"]),  # other brand, same category
            session_event("s3", "u1", 1, products=["p9"]),  # not in the catalogue
        ],
    )
    insert(con, "orders", [line("o1", 1, "p1")])
    insert(con, "fx_rates", [fx("USD", date(2026, 1, 1), "1")])
    insert(
        con,
        "products",
        [
            {"product_id": "p1", "brand": "acme", "category": "shoes"},
            {"product_id": "p2", "brand": "acme", "category": "hats"},
            {"product_id": "p3", "brand": "zeta", "category": "shoes"},
        ],
    )
    build(con, date(2026, 1, 1), date(2026, 3, 31))
    assert [r[0] for r in credits(con, 7, "user")] == ["s-s1", "s-s2", "s-s3"]
    assert credits(con, 7, "product") == []
    assert credits(con, 7, "brand") == [("s-s1", 1, 1, 1, 1, 1)]
    assert credits(con, 7, "category") == [("s-s2", 1, 1, 1, 1, 1)]


def test_no_catalogue_means_no_brand_or_category_rows():
    con = warehouse([session_event("s1", "u1", 1, products=["p1"])], [line("o1", 1, "p1")])
    assert rows(con, "SELECT DISTINCT scope FROM fct_attribution ORDER BY 1") == [
        ("product",),
        ("user",),
    ]


def test_long_view_has_one_row_per_model_and_the_same_credits():
    con = warehouse(
        [session_event("a", "u1", 0), session_event("c", "u1", 6)], [line("o1", 1, "p1")]
    )
    got = rows(
        con,
        "SELECT model, sum(credit), sum(attributed_revenue_usd) FROM fct_attribution_long "
        "WHERE window_days = 7 AND scope = 'user' GROUP BY model ORDER BY model",
    )
    assert [(m, round(c, 12), round(r, 8)) for m, c, r in got] == [
        (m, 1.0, 100.0)
        for m in ("first_touch", "last_touch", "linear", "position_based", "time_decay")
    ]


def test_cancelled_and_returned_lines_are_counted_apart():
    con = warehouse(
        [session_event("s1", "u1", 1)],
        [
            line("o1", 1, "p1"),
            line("o1", 2, "p2", amount="30.00", status="cancelled"),
            line("o1", 3, "p3", amount="20.00", status="returned"),
        ],
    )
    got = rows(
        con,
        "SELECT attributed_lines, cancelled_lines, returned_lines, line_revenue_usd, "
        "cancelled_or_returned_amount_usd, last_touch_revenue_usd "
        "FROM fct_attribution_window_sensitivity WHERE window_days = 7 AND scope = 'user'",
    )
    assert got == [(3, 1, 1, Decimal("100.0000"), Decimal("50.0000"), Decimal("100.0000"))]
