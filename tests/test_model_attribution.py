"""fct_attribution on hand-computed tables: every rule model, windows, scopes, FX, statuses."""

from datetime import date, timedelta
from decimal import Decimal

import duckdb
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from tables import T0, build, empty_warehouse, insert, rows

from attribution.config import Settings
from attribution.warehouse import bound_parameters, model_parameters, run_audits

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


# The ledger's definition written the plain way: one window function per (line, window, scope)
# partition over every eligible (line, session) row, summing the decay weights in touch order.
# fct_attribution computes the same figures from one sorted list per line; both must agree to the
# bit (EXCEPT ALL both ways), ties in session_start, window boundaries and every scope included.
REFERENCE_LEDGER = """
with lines as (
    select l.*, p.brand as product_brand, p.category as product_category
    from int_order_lines as l
    left join stg_products as p on p.product_id = l.product_id
    where l.order_date between $start_date and $end_date
),

touches as (
    select
        l.order_id, l.line_no, l.order_at, l.order_date, l.user_id, l.marketplace, l.product_id,
        l.line_status, w.window_days, sc.scope, s.session_id, s.session_start, s.touch_type,
        s.channel, s.model_version, l.line_amount_usd, l.line_revenue_usd,
        date_diff('microsecond', s.session_start, l.order_at) as age_us
    from lines as l
    inner join assistant_sessions as s
        on s.user_id = l.user_id and s.session_start <= l.order_at
    inner join cfg_windows as w
        on date_diff('microsecond', s.session_start, l.order_at)
            <= cast(w.window_days as bigint) * 86400000000
    inner join (values ('user'), ('product'), ('brand'), ('category')) as sc (scope)
        on sc.scope = 'user' or exists (
            select 1
            from int_session_products as sp
            left join stg_products as p on p.product_id = sp.product_id
            where sp.session_id = s.session_id and sp.user_id = s.user_id
                and case sc.scope
                    when 'product' then sp.product_id = l.product_id
                    when 'brand' then p.brand = l.product_brand
                    else p.category = l.product_category
                end
        )
),

ranked as (
    select
        *,
        count(*) over touch as n_touches,
        row_number() over touch as touch_rank,
        power(
            2e0, -(cast(age_us - min(age_us) over touch as double) / 86400e6) / $half_life_days
        ) as decay_weight
    from touches
    window touch as (
        partition by order_id, line_no, window_days, scope
        order by session_start, session_id
        rows between unbounded preceding and unbounded following
    )
)

select
    order_id, line_no, order_at, order_date, user_id, marketplace, product_id, line_status,
    window_days, scope, session_id, session_start, touch_type, channel, model_version,
    age_us / 3.6e9 as session_age_hours, n_touches, touch_rank, line_amount_usd, line_revenue_usd,
    case when touch_rank = 1 then 1e0 else 0e0 end as first_touch,
    case when touch_rank = n_touches then 1e0 else 0e0 end as last_touch,
    1e0 / n_touches as linear,
    decay_weight / sum(decay_weight) over (
        partition by order_id, line_no, window_days, scope
        order by session_start, session_id
        rows between unbounded preceding and unbounded following
    ) as time_decay,
    case
        when n_touches = 1 then 1e0
        when n_touches = 2 then 0.5e0
        when touch_rank = 1 or touch_rank = n_touches then 0.4e0
        else 0.2e0 / (n_touches - 2)
    end as position_based
from ranked
"""

CATALOGUE = [
    {"product_id": "p1", "brand": "acme", "category": "shoes"},
    {"product_id": "p2", "brand": "acme", "category": "hats"},
    {"product_id": "p3", "brand": "zeta", "category": "shoes"},
]


@st.composite
def journeys(draw):
    """One to three buyers, up to 14 sessions each (some at equal times, some exactly 1 or 7
    days before an order), up to 3 orders of products in and out of the catalogue."""
    events, orders = [], []
    for u in range(draw(st.integers(1, 3))):
        order_at = [
            T0 + timedelta(hours=draw(st.integers(0, 240))) for _ in range(draw(st.integers(1, 3)))
        ]
        for i in range(draw(st.integers(0, 14))):
            ts = draw(
                st.one_of(
                    st.sampled_from([at - timedelta(days=d) for at in order_at for d in (1, 7)]),
                    st.integers(0, 45 * 24).map(lambda h: T0 + timedelta(hours=240 - h)),
                )
            )
            events.append(
                {
                    "event_id": f"e{u}-{i}",
                    "user_id": f"u{u}",
                    "ts": ts,
                    "session_id": f"g{u}-{i}",
                    "marketplace": "US",
                    "channel": "web",
                    "event_type": "query",
                    "product_ids": draw(
                        st.lists(st.sampled_from(["p1", "p2", "p3", "p9"]), max_size=2)
                    ),
                    "model_version": "v1",
                }
            )
        for j, at in enumerate(order_at):
            orders.append(line(f"o{u}-{j}", 1, draw(st.sampled_from(["p1", "p2", "p3", "p9"]))))
            orders[-1].update(user_id=f"u{u}", ts=at)
    return events, orders


@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journeys(), st.sampled_from([0.5, 7.0, 11.3]))
def test_ledger_equals_the_plain_window_definition_to_the_bit(journey, half_life):
    events, lines = journey
    con = empty_warehouse()
    insert(con, "interactions", events)
    insert(con, "orders", lines)
    insert(con, "fx_rates", [fx("USD", date(2026, 1, 1), "1")])
    insert(con, "products", CATALOGUE)
    config = Settings(half_life_days=half_life)
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    build(con, start, end, config)
    parameters = model_parameters(config, start, end)
    con.execute(
        f"CREATE TEMP TABLE reference AS {REFERENCE_LEDGER}",
        bound_parameters(REFERENCE_LEDGER, parameters),
    )
    assert [r[:2] for r in rows(con, "DESCRIBE fct_attribution")] == [
        r[:2] for r in rows(con, "DESCRIBE reference")
    ]
    for a, b in (("fct_attribution", "reference"), ("reference", "fct_attribution")):
        assert rows(con, f"SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}") == []


def test_a_failing_audit_is_named_and_keeps_its_error_type() -> None:
    """At 5x L an audit ran out of DuckDB memory and the run record said only that: the error
    now names the audit, with DuckDB's exception type kept for callers."""
    con = duckdb.connect()  # no fct_attribution: the first audit cannot run
    with pytest.raises(duckdb.CatalogException, match=r"audit attribution_credits_sum_to_one"):
        run_audits(con, Settings(), date(2026, 1, 1), date(2026, 1, 31))
