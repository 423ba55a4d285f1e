"""Journeys from a hand-written warehouse (attribution.journeys) and the per-touch-type table."""

from datetime import date, timedelta
from decimal import Decimal
from functools import partial

import polars as pl
import pytest
from tables import T0, build, empty_warehouse, insert, rows

import attribution.journeys as journeys_module
from attribution.config import Settings
from attribution.journeys import (
    data_driven_by_touch_type,
    journeys_for_window,
    write_attribution_by_touch_type,
)
from attribution.markov import shapley_attribution

START, END = date(2026, 3, 1), date(2026, 3, 31)
SETTINGS = Settings(windows_days=(1, 7))
EXACT = 1e-12


def session(sid, user, at, touch, channel="web", model_version="v1"):
    return {
        "event_id": sid,
        "user_id": user,
        "ts": at,
        "session_id": f"s-{sid}",
        "marketplace": "US",
        "channel": channel,
        "event_type": touch,
        "product_ids": None,
        "model_version": model_version,
    }


def line(order_id, line_no, user, at, amount, status="placed"):
    return {
        "order_id": order_id,
        "line_no": line_no,
        "user_id": user,
        "ts": at,
        "marketplace": "US",
        "product_id": "p1",
        "quantity": 1,
        "amount": Decimal(amount),
        "currency": "USD",
        "status": status,
    }


# u1: query 3 days before o1 (T0), then a tie 12 hours before: s-b (comparison), s-b2 (click).
#     o1 line 1 placed (100), line 2 cancelled (50).
# u2: no order; help_me_decide T0-10d, query T0-3d (gap exactly 7 days), query T0+4d+1h (gap > 7d).
# u3: query on Feb 25, order o3 on Feb 27 (before the output window): the session is neither.
# u4: an order in March without any session: not a journey.
# u5: review_summary 1 day before a cancelled line: not converting.
EVENTS = [
    session("a", "u1", T0 - timedelta(days=3), "query", channel="app"),
    session("b", "u1", T0 - timedelta(hours=12), "comparison", model_version=None),
    session("b2", "u1", T0 - timedelta(hours=12), "product_click", channel="voice"),
    session("c", "u2", T0 - timedelta(days=10), "help_me_decide"),
    session("d", "u2", T0 - timedelta(days=3), "query"),
    session("e", "u2", T0 + timedelta(days=4, hours=1), "query"),
    session("f", "u3", T0 - timedelta(days=13), "query"),
    session("g", "u5", T0 - timedelta(days=1), "review_summary"),
]
LINES = [
    line("o1", 1, "u1", T0, "100.00"),
    line("o1", 2, "u1", T0, "50.00", status="cancelled"),
    line("o3", 1, "u3", T0 - timedelta(days=11), "30.00"),
    line("o4", 1, "u4", T0, "20.00"),
    line("o5", 1, "u5", T0, "40.00", status="cancelled"),
]


@pytest.fixture(scope="module")
def con():
    con = empty_warehouse()
    insert(con, "interactions", EVENTS)
    insert(con, "orders", LINES)
    insert(con, "fx_rates", [{"date": date(2026, 1, 1), "currency": "USD", "rate_to_usd": 1}])
    build(con, date(2026, 2, 1), END, SETTINGS)
    return con


def as_tuples(frame):
    return [(r[0], tuple(r[1]), r[2], r[3]) for r in frame.iter_rows()]


def test_journeys_at_seven_days(con):
    got = journeys_for_window(con, 7, START, END)
    assert got.columns == ["journey_id", "path", "converted", "value_usd"]
    assert as_tuples(got) == [
        # the tie at T0-12h is broken by session_id: s-b before s-b2
        ("line:o1:1", ("query", "comparison", "product_click"), True, 100.0),
        # gap of exactly 7 days continues the journey; 7 days + 1 hour starts a new one
        ("user:u2:1", ("help_me_decide", "query"), False, 0.0),
        ("user:u2:2", ("query",), False, 0.0),
        # eligible only for a cancelled line: not a conversion
        ("user:u5:1", ("review_summary",), False, 0.0),
    ]


def test_journeys_at_one_day(con):
    got = journeys_for_window(con, 1, START, END)
    assert as_tuples(got) == [
        ("line:o1:1", ("comparison", "product_click"), True, 100.0),
        ("user:u1:1", ("query",), False, 0.0),  # 3 days before the order: outside 1 day
        ("user:u2:1", ("help_me_decide",), False, 0.0),
        ("user:u2:2", ("query",), False, 0.0),
        ("user:u2:3", ("query",), False, 0.0),
        ("user:u5:1", ("review_summary",), False, 0.0),
    ]


def test_other_touch_columns(con):
    by_channel = journeys_for_window(con, 7, START, END, touch_column="channel")
    assert by_channel["path"][0].to_list() == ["app", "web", "voice"]
    by_version = journeys_for_window(con, 7, START, END, touch_column="model_version")
    assert by_version["path"][0].to_list() == ["v1", "unknown", "v1"]


@pytest.mark.parametrize("bad", ["event_type", "touch_type; DROP TABLE fct_attribution", ""])
def test_touch_column_is_checked_against_the_allow_list(con, bad):
    with pytest.raises(ValueError, match="touch_column"):
        journeys_for_window(con, 7, START, END, touch_column=bad)
    with pytest.raises(ValueError, match="touch_column"):
        data_driven_by_touch_type(con, SETTINGS, START, END, touch_column=bad)


def test_window_must_be_whole_days(con):
    with pytest.raises(ValueError, match="window_days"):
        journeys_for_window(con, 0, START, END)


def test_data_driven_by_touch_type_hand_computed(con):
    got = data_driven_by_touch_type(con, SETTINGS, START, END)
    assert got.columns == list(journeys_module.BY_TOUCH_TYPE_SCHEMA)
    seven = {
        r["touch_type"]: r for r in got.filter(pl.col("window_days") == 7).iter_rows(named=True)
    }
    # Journeys at 7 days: [q, c, pc] -> conv, [hmd, q] -> null, [q] -> null, [rs] -> null.
    # start -> q 2/4, hmd 1/4, rs 1/4; q -> c 1/3, null 2/3; c -> pc -> conv; hmd -> q.
    # h_q = 1/3, h_hmd = 1/3, P = 2/4 * 1/3 + 1/4 * 1/3 = 1/4. Removing q, c or pc: P = 0 (RE 1);
    # hmd: P = 1/6, RE = 1/3; rs: RE 0. Sum 10/3: shares 3/10, 3/10, 3/10, 1/10, 0.
    assert sorted(seven) == [
        "comparison",
        "help_me_decide",
        "product_click",
        "query",
        "review_summary",
    ]
    expected_share = {
        "comparison": 0.3,
        "help_me_decide": 0.1,
        "product_click": 0.3,
        "query": 0.3,
        "review_summary": 0.0,
    }
    for touch, share in expected_share.items():
        row = seven[touch]
        assert row["share"] == pytest.approx(share, abs=EXACT)
        assert row["attributed_revenue_usd"] == pytest.approx(100 * share, abs=1e-4)
        assert row["n_converting_journeys"] == 1
        assert row["n_journeys"] == 4
    assert seven["help_me_decide"]["removal_effect"] == pytest.approx(1 / 3, abs=EXACT)
    # Shapley: the one converting set {q, c, pc} splits 100 equally
    assert seven["query"]["shapley_revenue_usd"] == pytest.approx(33.3333, abs=1e-9)
    assert seven["help_me_decide"]["shapley_share"] == 0.0
    # rule models from fct_attribution (the cancelled line adds 0)
    assert seven["query"]["first_touch_revenue_usd"] == 100.0
    assert seven["product_click"]["last_touch_revenue_usd"] == 100.0
    assert seven["comparison"]["linear_revenue_usd"] == pytest.approx(33.3333, abs=1e-9)
    assert seven["comparison"]["position_based_revenue_usd"] == pytest.approx(20.0, abs=1e-9)
    assert seven["help_me_decide"]["first_touch_revenue_usd"] == 0.0
    assert seven["review_summary"]["linear_revenue_usd"] == 0.0
    one = got.filter(pl.col("window_days") == 1)
    assert one["n_journeys"].to_list() == [6] * one.height
    shares = dict(zip(one["touch_type"], one["share"], strict=True))
    assert shares["comparison"] == pytest.approx(0.5, abs=EXACT)
    assert shares["query"] == 0.0


def test_rule_totals_equal_fct_attribution(con):
    got = data_driven_by_touch_type(con, SETTINGS, START, END)
    for model in journeys_module.RULE_MODELS:
        expected = rows(
            con,
            f"SELECT window_days, round(sum({model} * cast(line_revenue_usd AS DOUBLE)), 4) "
            "FROM fct_attribution WHERE scope = 'user' AND order_date >= DATE '2026-03-01' "
            "GROUP BY 1 ORDER BY 1",
        )
        total = got.group_by("window_days").agg(pl.col(f"{model}_revenue_usd").sum())
        assert [w for w, _ in expected] == [1, 7]
        # each touch type is rounded to 4 places: the sum may differ by 0.5e-4 per touch type
        assert sorted(total.rows()) == [(w, pytest.approx(v, abs=5e-4)) for w, v in expected]


def test_shapley_is_null_when_there_are_too_many_touch_types(con, monkeypatch):
    monkeypatch.setattr(
        journeys_module, "shapley_attribution", partial(shapley_attribution, max_touch_types=2)
    )
    got = data_driven_by_touch_type(con, SETTINGS, START, END)
    seven = got.filter(pl.col("window_days") == 7)
    assert seven["shapley_share"].null_count() == seven.height  # 3 converting touch types
    assert seven["share"].null_count() == 0
    one = got.filter(pl.col("window_days") == 1)
    assert one["shapley_share"].null_count() == 0  # 2 converting touch types


def test_write_is_deterministic(con):
    first = write_attribution_by_touch_type(con, SETTINGS, START, END)
    before = rows(con, "SELECT * FROM fct_attribution_by_touch_type")
    second = write_attribution_by_touch_type(con, SETTINGS, START, END)
    after = rows(con, "SELECT * FROM fct_attribution_by_touch_type")
    assert first == second == len(after) == 10  # 5 touch types x 2 windows
    assert before == after
    assert [r[:2] for r in after] == [(START, END)] * 10
    keys = [(r[2], r[5]) for r in after]
    assert keys == sorted(keys)


def test_empty_warehouse_gives_no_rows():
    con = empty_warehouse()
    build(con, START, END, SETTINGS)
    assert journeys_for_window(con, 7, START, END).height == 0
    assert data_driven_by_touch_type(con, SETTINGS, START, END).height == 0


def test_aggregated_journeys_give_the_same_model_as_one_row_per_journey(tmp_path):
    """The pipeline feeds the models distinct paths with counts: same answer as raw journeys."""
    from attribution.build_window import data_date_range
    from attribution.generate import generate_landing
    from attribution.journeys import aggregated_journeys_for_window, journeys_for_window
    from attribution.markov import markov_attribution, shapley_attribution
    from attribution.pipeline import run_pipeline
    from attribution.warehouse import connect

    generate_landing(tmp_path / "landing", users=600, days=20, seed=3)
    run_pipeline(
        Settings(),
        landing_dir=tmp_path / "landing",
        warehouse_path=tmp_path / "w.duckdb",
        expectations=False,
    )
    con = connect(tmp_path / "w.duckdb", read_only=True)
    start, end = data_date_range(con)
    raw = journeys_for_window(con, 7, start, end)
    grouped = aggregated_journeys_for_window(con, 7, start, end)
    con.close()
    assert grouped["count"].sum() == raw.height
    assert grouped.height < raw.height
    for model in (markov_attribution, shapley_attribution):
        a, b = model(raw), model(grouped)
        assert a["touch_type"].to_list() == b["touch_type"].to_list()
        for column in a.columns[1:]:
            assert a[column].to_list() == pytest.approx(b[column].to_list(), rel=1e-12, abs=1e-9)


def test_pipeline_uses_the_data_driven_settings(tmp_path):
    from attribution.generate import generate_landing
    from attribution.pipeline import run_pipeline
    from attribution.warehouse import connect

    generate_landing(tmp_path / "landing", users=300, days=10, seed=5)
    run_pipeline(
        Settings(data_driven_touch_column="channel", data_driven_order=2),
        landing_dir=tmp_path / "landing",
        warehouse_path=tmp_path / "w.duckdb",
        expectations=False,
    )
    con = connect(tmp_path / "w.duckdb", read_only=True)
    got = rows(con, "SELECT DISTINCT touch_column, markov_order FROM fct_attribution_by_touch_type")
    touches = {
        r[0] for r in rows(con, "SELECT DISTINCT touch_type FROM fct_attribution_by_touch_type")
    }
    con.close()
    assert got == [("channel", 2)]
    assert touches <= {"app", "web", "voice"}
