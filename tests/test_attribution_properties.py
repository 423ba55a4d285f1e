"""Property tests: on random sessions and orders every audit holds (credits sum to 1, no session
after the order or outside the window, no revenue beyond the line, no double counting)."""

import itertools
from datetime import date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tables import build, empty_warehouse, insert, rows

from attribution.config import Settings
from attribution.warehouse import run_audits

START = datetime(2026, 3, 1)
minutes = st.integers(min_value=0, max_value=40 * 24 * 60)


@st.composite
def histories(draw):
    n_users = draw(st.integers(1, 3))
    events, orders = [], []
    for u in range(n_users):
        for i, minute in enumerate(draw(st.lists(minutes, max_size=12))):
            events.append(
                {
                    "event_id": f"e{u}-{i}",
                    "user_id": f"u{u}",
                    "ts": START + timedelta(minutes=minute),
                    # some given ids, so that equal start times make separate touches
                    "session_id": draw(st.sampled_from([None, f"g{u}-{i}"])),
                    "marketplace": "US",
                    "channel": "web",
                    "event_type": draw(st.sampled_from(["query", "comparison", "help_me_decide"])),
                    "product_ids": draw(st.lists(st.sampled_from(["p1", "p2", "p3"]), max_size=2)),
                }
            )
        for j, minute in enumerate(draw(st.lists(minutes, max_size=4))):
            orders.append(
                {
                    "order_id": f"o{u}-{j}",
                    "line_no": 1,
                    "user_id": f"u{u}",
                    "ts": START + timedelta(minutes=minute),
                    "marketplace": "US",
                    "product_id": draw(st.sampled_from(["p1", "p2", "p3"])),
                    "quantity": 1,
                    "amount": Decimal(draw(st.integers(0, 10_000))) / 100,
                    "currency": "USD",
                    "status": draw(st.sampled_from(["placed", "placed", "returned"])),
                }
            )
    return events, orders


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.floats(min_value=0.01, max_value=30))
def test_audits_hold_on_random_histories(history, half_life):
    events, orders = history
    con = empty_warehouse()
    insert(con, "interactions", events)
    insert(con, "orders", orders)
    insert(con, "fx_rates", [{"date": date(2026, 1, 1), "currency": "USD", "rate_to_usd": 1}])
    config = Settings(half_life_days=half_life)
    build(con, date(2026, 2, 1), date(2026, 4, 30), config)
    assert set(run_audits(con, config, date(2026, 2, 1), date(2026, 4, 30)).values()) <= {0}
    # no double counting: each (line, window, scope, session) appears once
    dupes = rows(
        con,
        "SELECT count(*) FROM (SELECT order_id, line_no, window_days, scope, session_id "
        "FROM fct_attribution GROUP BY ALL HAVING count(*) > 1)",
    )
    assert dupes == [(0,)]
    # attributed lines per scope never shrink as the window grows (also an audit)
    per_window = rows(
        con,
        "SELECT scope, window_days, count(DISTINCT (order_id, line_no)) FROM fct_attribution "
        "GROUP BY ALL ORDER BY scope, window_days",
    )
    for (s1, _, n1), (s2, _, n2) in itertools.pairwise(per_window):
        if s1 == s2:
            assert n2 >= n1
