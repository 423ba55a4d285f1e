"""Hand-computed checks of the credit readers (attribution.credit_views) on tiny tables."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date

import duckdb
import polars as pl
import pytest

from attribution import credit_views as cv
from attribution.config import RULE_MODELS
from attribution.warehouse import connect

D10, D11, D12, D13 = (date(2026, 3, d) for d in (10, 11, 12, 13))

# Journeys (line_no 1 of each order), user scope, window 7. Credits per touch in touch order:
#                  touches  first     last      linear         time_decay       position_based
# o1 90 placed  03-10  3    1,0,0     0,0,1     1/3,1/3,1/3    .2,.3,.5         .4,.2,.4
# o2 30 placed  03-11  1    1         1         1              1                1
# o3 40 placed  03-12  2    1,0       0,1       .5,.5          .25,.75          .5,.5
# o4 20 placed  03-12  2    1,0       0,1       .5,.5          .25,.75          .5,.5
# o5  0 cancel  03-13  4    1,0,0,0   0,0,0,1   .25 x 4        .1,.2,.3,.4      .4,.1,.1,.4
# Window 1 holds o2 only; scope product holds o1 with one touch.
THIRD = 1 / 3
JOURNEYS = {
    "o1": (
        D10,
        "90",
        "placed",
        [(1, 0, THIRD, 0.2, 0.4), (0, 0, THIRD, 0.3, 0.2), (0, 1, THIRD, 0.5, 0.4)],
    ),
    "o2": (D11, "30", "placed", [(1, 1, 1, 1, 1)]),
    "o3": (D12, "40", "placed", [(1, 0, 0.5, 0.25, 0.5), (0, 1, 0.5, 0.75, 0.5)]),
    "o4": (D12, "20", "placed", [(1, 0, 0.5, 0.25, 0.5), (0, 1, 0.5, 0.75, 0.5)]),
    "o5": (
        D13,
        "0",
        "cancelled",
        [
            (1, 0, 0.25, 0.1, 0.4),
            (0, 0, 0.25, 0.2, 0.1),
            (0, 0, 0.25, 0.3, 0.1),
            (0, 1, 0.25, 0.4, 0.4),
        ],
    ),
}

FCT_ATTRIBUTION = """
CREATE TABLE fct_attribution (
    order_id VARCHAR, line_no INTEGER, order_date DATE, user_id VARCHAR, window_days INTEGER,
    scope VARCHAR, session_id VARCHAR, session_start TIMESTAMP, touch_rank BIGINT,
    n_touches BIGINT, line_status VARCHAR, line_revenue_usd DECIMAL(18, 4),
    first_touch DOUBLE, last_touch DOUBLE, linear DOUBLE, time_decay DOUBLE,
    position_based DOUBLE
)
"""


def insert_journey(con, order_id, window_days, scope, journey) -> None:
    order_date, revenue, status, credits = journey
    for rank, credit in enumerate(credits, start=1):
        con.execute(
            "INSERT INTO fct_attribution VALUES "
            "(?, 1, ?, 'u1', ?, ?, ?, ?::DATE - INTERVAL 1 DAY, ?, ?, ?, ?::DECIMAL(18, 4), "
            "?, ?, ?, ?, ?)",
            [
                order_id,
                order_date,
                window_days,
                scope,
                f"s-{order_id}-{rank}",
                order_date,
                rank,
                len(credits),
                status,
                revenue,
                *credit,
            ],
        )


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(":memory:")
    connection.execute(FCT_ATTRIBUTION)
    for order_id, journey in JOURNEYS.items():
        insert_journey(connection, order_id, 7, "user", journey)
    insert_journey(connection, "o2", 1, "user", JOURNEYS["o2"])
    insert_journey(connection, "o1", 7, "product", (D10, "90", "placed", [(1, 1, 1, 1, 1)]))
    yield connection
    connection.close()


def cell(frame: pl.DataFrame, column: str, **keys) -> float:
    """Return the one value of ``column`` in the row matching ``keys``."""
    rows = frame.filter(*(pl.col(k) == v for k, v in keys.items()))
    assert rows.height == 1, keys
    return rows[column].item()


# --- credit_by_position ----------------------------------------------------------------------


def test_one_three_touch_line_by_position(con):
    got = cv.credit_by_position(con, start=D10, end=D10)  # o1 only
    assert got.columns == [
        "window_days",
        "model",
        "position",
        "touches",
        "credited_lines",
        "attributed_revenue_usd",
        "share_of_model",
    ]
    assert got.filter(pl.col("model") == "linear")["position"].to_list() == [
        "first",
        "middle",
        "last",
    ]
    want = {  # model: (first, middle, last) share of the line's credit
        "first_touch": (1, 0, 0),
        "last_touch": (0, 0, 1),
        "linear": (THIRD, THIRD, THIRD),
        "time_decay": (0.2, 0.3, 0.5),
        "position_based": (0.4, 0.2, 0.4),
    }
    for model, shares in want.items():
        for position, share in zip(("first", "middle", "last"), shares, strict=True):
            keys = {"window_days": 7, "model": model, "position": position}
            assert cell(got, "touches", **keys) == 1
            assert cell(got, "credited_lines", **keys) == pytest.approx(share)
            assert cell(got, "attributed_revenue_usd", **keys) == pytest.approx(
                90 * share, abs=1e-4
            )
            assert cell(got, "share_of_model", **keys) == pytest.approx(share, abs=1e-6)


def test_every_line_by_position(con):
    got = cv.credit_by_position(con).filter(pl.col("window_days") == 7)
    # only: o2; first: o1 o3 o4 o5; middle: o1 o5 o5; last: o1 o3 o4 o5
    touches = got.filter(pl.col("model") == "linear").select("position", "touches").rows()
    assert touches == [("only", 1), ("first", 4), ("middle", 3), ("last", 4)]
    # position based: first = .4*90 + .5*40 + .5*20 = 66, middle = .2*90 = 18, last = 66
    revenue = got.filter(pl.col("model") == "position_based")["attributed_revenue_usd"]
    assert revenue.to_list() == pytest.approx([30, 66, 18, 66], abs=1e-4)
    # time decay: first = .2*90 + .25*60 = 33, middle = .3*90 = 27, last = .5*90 + .75*60 = 90
    revenue = got.filter(pl.col("model") == "time_decay")["attributed_revenue_usd"]
    assert revenue.to_list() == pytest.approx([30, 33, 27, 90], abs=1e-4)
    per_model = got.group_by("model").agg(
        pl.col("credited_lines").sum(),
        pl.col("attributed_revenue_usd").sum(),
        pl.col("share_of_model").sum(),
    )
    for model, lines, revenue, share in per_model.rows():
        assert lines == pytest.approx(5), model  # five lines, each credited 1 in all
        assert revenue == pytest.approx(180, abs=1e-4), model  # placed revenue 90+30+40+20
        assert share == pytest.approx(1.0), model


def test_scope_and_window_are_kept_apart(con):
    product = cv.credit_by_position(con, scope="product")
    assert set(product["position"]) == {"only"} and set(product["window_days"]) == {7}
    assert product.filter(pl.col("model") == "linear")["attributed_revenue_usd"].item() == 90
    one_day = cv.credit_by_position(con).filter(pl.col("window_days") == 1)
    assert one_day.height == len(RULE_MODELS)
    assert (one_day["attributed_revenue_usd"] == 30).all()


def test_no_lines_in_the_dates_gives_an_empty_frame(con):
    assert cv.credit_by_position(con, start=date(2027, 1, 1)).is_empty()


# --- credit_moved ----------------------------------------------------------------------------


def test_credit_moved_from_linear_to_position_based(con):
    moved = cv.credit_moved(cv.credit_by_position(con), "linear", "position_based")
    seven = moved.filter(pl.col("window_days") == 7)
    # linear: only 30, first 1/3*90 + .5*60 = 60, middle 1/3*90 = 30, last 60
    want = {"only": 0.0, "first": 6.0, "middle": -12.0, "last": 6.0}
    for position, usd in want.items():
        assert cell(seven, "moved_usd", position=position) == pytest.approx(usd, abs=1e-4)
        assert cell(seven, "moved_share", position=position) == pytest.approx(usd / 180, abs=1e-6)
    assert cell(seven, "linear_usd", position="middle") == pytest.approx(30, abs=1e-4)
    assert cell(seven, "position_based_usd", position="middle") == pytest.approx(18, abs=1e-4)


@pytest.mark.parametrize(
    ("source", "target"), [("first_touch", "last_touch"), ("linear", "time_decay")]
)
def test_moved_revenue_sums_to_zero_per_window(con, source, target):
    moved = cv.credit_moved(cv.credit_by_position(con), source, target)
    totals = moved.group_by("window_days").agg(
        pl.col("moved_usd").sum(), pl.col("moved_share").sum()
    )
    assert sorted(totals["window_days"]) == [1, 7]
    for _, usd, share in totals.rows():
        assert usd == pytest.approx(0, abs=1e-4)
        assert share == pytest.approx(0, abs=1e-6)


def test_credit_moved_from_first_to_last_touch(con):
    moved = cv.credit_moved(cv.credit_by_position(con), "first_touch", "last_touch")
    seven = moved.filter(pl.col("window_days") == 7)
    assert cell(seven, "moved_usd", position="first") == pytest.approx(-150)
    assert cell(seven, "moved_usd", position="last") == pytest.approx(150)
    assert cell(seven, "moved_usd", position="middle") == 0


def test_credit_moved_refuses_an_unknown_model(con):
    with pytest.raises(ValueError, match="markov"):
        cv.credit_moved(cv.credit_by_position(con), "linear", "markov")


# --- orders_to_explain -----------------------------------------------------------------------


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_orders_to_explain_one_per_journey_length(con):
    # placed orders with >= 2 touches: o3, o4 (2 touches), o1 (3); o5 (4) is cancelled
    two_touches = min(["o3", "o4"], key=md5)
    assert cv.orders_to_explain(con) == [two_touches, "o1"]
    assert cv.orders_to_explain(con, n=1) == [two_touches]
    assert cv.orders_to_explain(con, min_touches=3) == ["o1"]
    assert cv.orders_to_explain(con, window_days=1) == []  # o2 has a single touch


def test_orders_to_explain_is_the_same_on_every_call(con):
    first = cv.orders_to_explain(con, n=5)
    con.execute("CREATE TABLE shuffled AS SELECT * FROM fct_attribution ORDER BY random()")
    con.execute("DROP TABLE fct_attribution")
    con.execute("ALTER TABLE shuffled RENAME TO fct_attribution")
    assert cv.orders_to_explain(con, n=5) == first


# --- lag_distribution ------------------------------------------------------------------------


def test_lag_shares_sum_to_one_per_window(con):
    con.execute(
        "CREATE TABLE fct_attribution_lag (order_date DATE, window_days INTEGER, scope VARCHAR, "
        "lag_bucket_order INTEGER, lag_bucket VARCHAR, attributed_lines BIGINT, "
        "line_revenue_usd DECIMAL(18, 4))"
    )
    con.execute(
        """
        INSERT INTO fct_attribution_lag VALUES
            ('2026-03-12', 7, 'user', 2, '1-6h', 4, 60),
            ('2026-03-11', 7, 'user', 3, '6-24h', 1, 10),
            ('2026-03-10', 7, 'user', 1, '0-1h', 2, 90),
            ('2026-03-11', 7, 'user', 1, '0-1h', 1, 30),
            ('2026-03-11', 1, 'user', 1, '0-1h', 2, 30),
            ('2026-03-11', 7, 'product', 1, '0-1h', 5, 500)
        """
    )
    got = cv.lag_distribution(con)
    # window 7: 0-1h 3 lines, 1-6h 4, 6-24h 1 (of 8); window 1: 0-1h 2 lines (of 2)
    assert got.select("window_days", "lag_bucket", "attributed_lines").rows() == [
        (1, "0-1h", 2),
        (7, "0-1h", 3),
        (7, "1-6h", 4),
        (7, "6-24h", 1),
    ]
    assert got["line_revenue_usd"].to_list() == [30, 120, 60, 10]
    assert got["share_of_lines"].to_list() == pytest.approx([1, 3 / 8, 4 / 8, 1 / 8])
    assert got["cumulative_share"].to_list() == pytest.approx([1, 3 / 8, 7 / 8, 1])
    assert cv.lag_distribution(con, scope="product")["attributed_lines"].to_list() == [5]


# --- window_sensitivity ----------------------------------------------------------------------


@pytest.fixture
def sensitivity(con):
    revenue_columns = ", ".join(f"{m}_revenue_usd DECIMAL(18, 4)" for m in RULE_MODELS)
    con.execute(
        "CREATE TABLE fct_attribution_window_sensitivity (order_date DATE, window_days INTEGER, "
        f"scope VARCHAR, attributed_lines HUGEINT, line_revenue_usd DECIMAL(18, 4), {revenue_columns})"
    )
    # the models' revenues on 03-10 differ only to tell the columns apart
    con.execute(
        """
        INSERT INTO fct_attribution_window_sensitivity VALUES
            ('2026-03-10', 7, 'user', 1, 90, 90, 80, 70, 60, 50),
            ('2026-03-12', 7, 'user', 2, 60, 60, 60, 60, 60, 60),
            ('2026-03-11', 1, 'user', 1, 30, 30, 30, 30, 30, 30),
            ('2026-03-10', 7, 'product', 1, 90, 90, 90, 90, 90, 90)
        """
    )
    con.execute(
        "CREATE TABLE int_order_lines (order_id VARCHAR, order_at TIMESTAMP, "
        "line_revenue_usd DECIMAL(18, 4))"
    )
    # every line ordered: 240 of placed revenue; o6 was bought without the assistant
    con.execute(
        """
        INSERT INTO int_order_lines VALUES
            ('o1', '2026-03-10 23:30:00', 90), ('o2', '2026-03-11 08:00:00', 30),
            ('o3', '2026-03-12 09:00:00', 40), ('o4', '2026-03-12 10:00:00', 20),
            ('o6', '2026-03-12 11:00:00', 60), ('o5', '2026-03-13 12:00:00', 0)
        """
    )
    return con


def test_share_of_revenue_is_attributed_over_all_placed_revenue(sensitivity):
    got = cv.window_sensitivity(sensitivity)
    assert got.height == 2 * len(RULE_MODELS)
    assert set(got["revenue_usd"]) == {240.0}
    seven = got.filter(pl.col("window_days") == 7)
    assert set(seven["attributed_lines"]) == {3}
    assert set(seven["attributed_line_revenue_usd"]) == {150.0}
    want = {
        "first_touch": 150,
        "last_touch": 140,
        "linear": 130,
        "time_decay": 120,
        "position_based": 110,
    }
    for model, usd in want.items():
        assert cell(seven, "attributed_revenue_usd", model=model) == usd
        assert cell(seven, "share_of_revenue", model=model) == pytest.approx(usd / 240)
    one = got.filter(pl.col("window_days") == 1)
    assert one["share_of_revenue"].to_list() == pytest.approx([30 / 240] * len(RULE_MODELS))


def test_window_sensitivity_within_dates(sensitivity):
    got = cv.window_sensitivity(sensitivity, start=D10, end=D10)
    assert set(got["window_days"]) == {7}  # window 1 credited nothing on 03-10
    assert set(got["revenue_usd"]) == {90.0}
    assert cell(got, "share_of_revenue", model="last_touch") == pytest.approx(80 / 90)
    product = cv.window_sensitivity(sensitivity, scope="product")
    assert set(product["attributed_revenue_usd"]) == {90.0}


# --- data_driven_by_touch_type and missing tables ---------------------------------------------


def test_data_driven_by_touch_type_filters_a_window(con):
    con.execute(
        "CREATE TABLE fct_attribution_by_touch_type AS SELECT * FROM (VALUES "
        "(7, 'query', 0.6::DOUBLE), (1, 'query', 1.0), (7, 'comparison', 0.4)) "
        "t(window_days, touch_type, share)"
    )
    assert cv.data_driven_by_touch_type(con).select("window_days", "touch_type").rows() == [
        (1, "query"),
        (7, "comparison"),
        (7, "query"),
    ]
    assert cv.data_driven_by_touch_type(con, 7)["share"].to_list() == [0.4, 0.6]


@pytest.mark.parametrize(
    ("reader", "table"),
    [
        (cv.credit_by_position, "fct_attribution"),
        (cv.orders_to_explain, "fct_attribution"),
        (cv.window_sensitivity, "fct_attribution_window_sensitivity"),
        (cv.lag_distribution, "fct_attribution_lag"),
        (cv.data_driven_by_touch_type, "fct_attribution_by_touch_type"),
    ],
)
def test_a_missing_table_says_to_run_the_pipeline(reader, table):
    with pytest.raises(LookupError, match=rf"no {table}: run `attribution run`"):
        reader(duckdb.connect())
