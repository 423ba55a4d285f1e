"""assistant_sessions: the 30-minute rule, given session ids, touch types (hand-computed)."""

from datetime import date, timedelta

import pytest
from tables import T0, build, empty_warehouse, insert, rows

DAY = date(2026, 3, 10)


def event(event_id, user, minutes, event_type="query", session_id=None, **extra):
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": T0 + timedelta(minutes=minutes),
        "session_id": session_id,
        "marketplace": extra.get("marketplace", "US"),
        "channel": extra.get("channel", "web"),
        "event_type": event_type,
        "product_ids": extra.get("product_ids"),
        "model_version": extra.get("model_version", "v1"),
    }


def sessions(con):
    return rows(
        con,
        "SELECT session_id, user_id, n_events, touch_type FROM assistant_sessions "
        "ORDER BY user_id, session_start, session_id",
    )


def test_exactly_thirty_minutes_apart_is_one_session():
    con = empty_warehouse()
    insert(con, "interactions", [event("e1", "u1", 0), event("e2", "u1", 30)])
    build(con, DAY, DAY)
    assert sessions(con) == [("s-e1", "u1", 2, "query")]


def test_just_over_thirty_minutes_starts_a_new_session():
    con = empty_warehouse()
    later = event("e2", "u1", 30)
    later["ts"] += timedelta(microseconds=1)
    insert(con, "interactions", [event("e1", "u1", 0), later])
    build(con, DAY, DAY)
    assert sessions(con) == [("s-e1", "u1", 1, "query"), ("s-e2", "u1", 1, "query")]


def test_unordered_input_and_several_users():
    con = empty_warehouse()
    # u1: 0, 20, 45 (one session: gaps 20 and 25); 100 (new). u2: 10, 50 (gap 40: two sessions)
    insert(
        con,
        "interactions",
        [
            event("e4", "u1", 100),
            event("b2", "u2", 50),
            event("e3", "u1", 45, "help_me_decide"),
            event("e1", "u1", 0),
            event("b1", "u2", 10, "comparison"),
            event("e2", "u1", 20, "product_click"),
        ],
    )
    build(con, DAY, DAY)
    assert sessions(con) == [
        ("s-e1", "u1", 3, "help_me_decide"),
        ("s-e4", "u1", 1, "query"),
        ("s-b1", "u2", 1, "comparison"),
        ("s-b2", "u2", 1, "query"),
    ]


def test_ties_in_ts_are_ordered_by_event_id():
    con = empty_warehouse()
    insert(con, "interactions", [event("z", "u1", 0), event("a", "u1", 0)])
    build(con, DAY, DAY)
    assert sessions(con) == [("s-a", "u1", 2, "query")]


def test_given_session_id_wins_over_the_rule():
    con = empty_warehouse()
    # 90 minutes apart but one app session id; a web event between them has no id
    insert(
        con,
        "interactions",
        [
            event("e1", "u1", 0, session_id="app-1", channel="app"),
            event("e2", "u1", 90, session_id="app-1", channel="app"),
            event("w1", "u1", 45),
        ],
    )
    build(con, DAY, DAY)
    assert sorted(sessions(con)) == [("app-1", "u1", 2, "query"), ("s-w1", "u1", 1, "query")]


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["query", "review_summary"], "review_summary"),
        (["product_click", "review_summary", "query"], "product_click"),
        (["query", "product_question", "product_click"], "product_question"),
        (["comparison", "product_question"], "comparison"),
        (["comparison", "help_me_decide", "query"], "help_me_decide"),
    ],
)
def test_touch_type_is_the_deepest_event(types, expected):
    con = empty_warehouse()
    insert(con, "interactions", [event(f"e{i}", "u1", i, t) for i, t in enumerate(types)])
    build(con, DAY, DAY)
    assert sessions(con)[0][3] == expected


def test_session_crossing_midnight_belongs_to_its_start_day_and_rerun_is_identical():
    con = empty_warehouse()
    late = T0.replace(hour=23, minute=50)
    insert(
        con,
        "interactions",
        [
            {**event("e1", "u1", 0), "ts": late},
            {**event("e2", "u1", 0), "ts": late + timedelta(minutes=20)},
        ],
    )
    build(con, DAY, DAY + timedelta(days=1))
    first = rows(con, "SELECT * FROM assistant_sessions ORDER BY session_id")
    assert [(r[0], r[4]) for r in first] == [("s-e1", DAY)]
    build(con, DAY, DAY + timedelta(days=1))
    assert rows(con, "SELECT * FROM assistant_sessions ORDER BY session_id") == first
