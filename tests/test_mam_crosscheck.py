"""Cross-check against the peer implementation ``mam`` (marketing-attribution-models) on random
journeys (seeded; a few hundred journeys over 3-5 touch types).

Rule models: the journeys are written into a tiny warehouse (tests/tables.py) as one user per
journey, one session per touch, one hour apart, the last touch exactly at the order time (the
window's inclusive end); the product's SQL models run and the credits of ``fct_attribution`` (scope
user, 30 days) times ``line_revenue_usd`` are summed per touch type. ``mam`` gets the same sessions
in its "session" format (one row per touch, its time, the user as journey id). mam's journeys end at
their last touch and its time decay counts hours to that last touch; because the order is placed at
the last touch's time, that is exactly the product's age (order time - session start), so time decay
is compared too. The journeys that ``journeys_for_window`` reads back from the warehouse must be the
generated ones.

Markov: ``mam`` does not simulate: ``MarkovModel`` inverts (I - Q) with ``numpy.linalg.inv`` (the
fundamental matrix) and redirects a removed channel's incoming counts to (null), like
``removal_effects``. Both therefore solve the same linear system; the only differences are
floating-point rounding, of the order of cond(I - Q) x machine epsilon, i.e. ~1e-15 for these
small, well-conditioned chains: a tolerance of 1e-12 leaves three orders of magnitude of room. By
default mam drops repeated touches (``transition_to_same_state=False``); a self-loop only rescales
the rest of its row, so removal effects are the same either way, and both settings are checked.

Allocation: the product reports a global allocation (total value x share). mam's ``run_markov``
spreads each journey's value over that journey's own touches in proportion to their shares: its
per-touch-type totals differ; both are checked against an independent computation and both sum to
the total value.

Not cross-checked: mam's Shapley model (``run_shapley``) uses a different characteristic function
(per converting channel combination, the conversions or conversion rate of journeys with *exactly*
that set, rescaled to that combination's value), so it is not the simplified Shapley value of Zhao
et al. that the product computes; only the totals would agree.
"""

import math
import random
from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest
from mam import MAM
from tables import T0, build, empty_warehouse, insert, rows

from attribution.config import Settings
from attribution.journeys import journeys_for_window
from attribution.markov import markov_attribution, removal_effects

TOUCH_TYPES = ("help_me_decide", "comparison", "product_question", "product_click", "query")
START, END = date(2026, 3, 1), date(2026, 3, 31)
WINDOW = 30
RULE_TOLERANCE = 1e-9  # sums of a few hundred float products in a different order
MARKOV_TOLERANCE = 1e-12  # both solve (I - Q) h = r exactly; see the module docstring


def random_journeys(seed, n_touch_types, n_journeys):
    """Return [(path, converted, value_usd)]: conversion likelier with the first touch type."""
    rng = random.Random(seed)
    touches = TOUCH_TYPES[:n_touch_types]
    journeys = []
    for _ in range(n_journeys):
        path = [rng.choice(touches) for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 5]))]
        p = 0.2 + 0.3 * (touches[0] in path) + 0.1 * (path[-1] == touches[1])
        converted = rng.random() < p
        value = rng.randint(500, 20_000) / 100 if converted else 0.0
        journeys.append((path, converted, value))
    return journeys


JOURNEYS = random_journeys(seed=20260310, n_touch_types=4, n_journeys=300)


def touch_time(path, k):
    """The k-th touch of a path: one hour apart, the last one exactly at T0 (the order time)."""
    return T0 - timedelta(hours=len(path) - 1 - k)


@pytest.fixture(scope="module")
def con():
    con = empty_warehouse()
    events, lines = [], []
    for i, (path, converted, value) in enumerate(JOURNEYS):
        user = f"u{i:03d}"
        for k, touch in enumerate(path):
            events.append(
                {
                    "event_id": f"e{i:03d}-{k}",
                    "user_id": user,
                    "ts": touch_time(path, k),
                    "session_id": f"s{i:03d}-{k}",
                    "marketplace": "US",
                    "channel": "web",
                    "event_type": touch,
                    "product_ids": None,
                    "model_version": "v1",
                }
            )
        if converted:
            lines.append(
                {
                    "order_id": f"o{i:03d}",
                    "line_no": 1,
                    "user_id": user,
                    "ts": T0,
                    "marketplace": "US",
                    "product_id": "p1",
                    "quantity": 1,
                    "amount": Decimal(f"{value:.2f}"),
                    "currency": "USD",
                }
            )
    insert(con, "interactions", events)
    insert(con, "orders", lines)
    insert(con, "fx_rates", [{"date": date(2026, 1, 1), "currency": "USD", "rate_to_usd": 1}])
    build(con, START, END, Settings(windows_days=(WINDOW,)))
    return con


def mam_sessions():
    """The journeys in mam's "session" format: one row per touch; the value on the last one."""
    records = []
    for i, (path, converted, value) in enumerate(JOURNEYS):
        for k, touch in enumerate(path):
            records.append(
                {
                    "user": f"u{i:03d}",
                    "ts": touch_time(path, k),
                    "touch": touch,
                    "converted": converted,
                    "value": value if k == len(path) - 1 else 0.0,
                }
            )
    frame = pl.DataFrame(records)
    return MAM(
        frame,
        "session",
        channels_colname="touch",
        journey_with_conv_colname="converted",
        datetime_colname="ts",
        user_id_colname="user",
        conversion_value_colname="value",
    )


def mam_totals(result):
    return {str(k): v for k, v in result.to_polars().select("channels", "attribution").rows()}


def product_totals(con, model):
    return dict(
        rows(
            con,
            f"SELECT touch_type, sum({model} * cast(line_revenue_usd AS DOUBLE)) "
            "FROM fct_attribution WHERE scope = 'user' AND window_days = $w "
            "GROUP BY 1 ORDER BY 1".replace("$w", str(WINDOW)),
        )
    )


def max_difference(a, b):
    assert set(a) == set(b), (sorted(a), sorted(b))
    return max(abs(a[key] - b[key]) for key in a)


def test_warehouse_gives_back_the_generated_journeys(con):
    got = journeys_for_window(con, WINDOW, START, END)
    expected = sorted(
        (f"line:o{i:03d}:1" if c else f"user:u{i:03d}:1", tuple(p), c, v)
        for i, (p, c, v) in enumerate(JOURNEYS)
    )
    actual = sorted((r[0], tuple(r[1]), r[2], r[3]) for r in got.iter_rows())
    assert actual == expected


@pytest.mark.parametrize(
    ("model", "run"),
    [
        ("first_touch", lambda m: m.run_first_click()),
        ("last_touch", lambda m: m.run_last_click()),
        ("linear", lambda m: m.run_linear()),
        ("position_based", lambda m: m.run_position_based()),
        ("time_decay", lambda m: m.run_time_decay(half_life_hours=7 * 24.0)),
    ],
)
def test_rule_models_match_mam(con, model, run):
    theirs = mam_totals(run(mam_sessions()))
    ours = product_totals(con, model)
    # mam lists a touch type that only appears in non-converting journeys with 0 (first/last
    # touch) or omits it; the product has no row for it. Compare on the union, missing = 0.
    keys = set(theirs) | set(ours)
    theirs = {k: theirs.get(k, 0.0) for k in keys}
    ours = {k: ours.get(k, 0.0) for k in keys}
    assert max_difference(theirs, ours) <= RULE_TOLERANCE
    total = math.fsum(v for _, c, v in JOURNEYS if c)
    assert math.fsum(ours.values()) == pytest.approx(total, abs=1e-6)


@pytest.mark.parametrize("same_state", [False, True])
def test_markov_removal_effects_match_mam_on_warehouse_journeys(con, same_state):
    journeys = journeys_for_window(con, WINDOW, START, END)
    result = mam_sessions().run_markov(transition_to_same_state=same_state)
    theirs = result.metadata["removal_effect"]["removal_effect"].to_dict()
    assert max_difference(removal_effects(journeys), theirs) <= MARKOV_TOLERANCE


def journey_frame(journeys):
    """The journeys in mam's "journey" format (path strings, times unused here)."""
    return pl.DataFrame(
        {
            "journey_id": [f"j{i}" for i in range(len(journeys))],
            "path": [" > ".join(p) for p, _, _ in journeys],
            "time_till_end": [" > ".join("0" for _ in p) for p, _, _ in journeys],
            "converted": [c for _, c, _ in journeys],
            "value": [v for _, _, v in journeys],
        }
    )


@pytest.mark.parametrize(("seed", "n_touch_types"), [(1, 3), (2, 4), (3, 5)])
@pytest.mark.parametrize("same_state", [False, True])
def test_markov_matches_mam_on_random_paths(seed, n_touch_types, same_state):
    journeys = random_journeys(seed, n_touch_types, n_journeys=400)
    mam = MAM(
        journey_frame(journeys), "journey", "path", "converted", conversion_value_colname="value"
    )
    result = mam.run_markov(transition_to_same_state=same_state)
    theirs_effects = result.metadata["removal_effect"]["removal_effect"].to_dict()
    ours = markov_attribution(journeys)
    ours_effects = dict(zip(ours["touch_type"], ours["removal_effect"], strict=True))
    assert max_difference(ours_effects, theirs_effects) <= MARKOV_TOLERANCE

    total = math.fsum(v for _, c, v in journeys if c)
    # global allocation (the product): total value x share, from mam's removal effects
    their_sum = math.fsum(theirs_effects.values())
    global_from_mam = {t: total * e / their_sum for t, e in theirs_effects.items()}
    ours_global = dict(zip(ours["touch_type"], ours["attributed_revenue_usd"], strict=True))
    assert max_difference(ours_global, global_from_mam) <= MARKOV_TOLERANCE * total

    # mam's per-journey allocation: each journey's value over its own touches by share
    shares = dict(zip(ours["touch_type"], ours["share"], strict=True))
    per_journey = dict.fromkeys(shares, 0.0)
    for path, converted, value in journeys:
        if converted:
            weight = math.fsum(shares[t] for t in path)
            for t in path:
                per_journey[t] += value * shares[t] / weight
    theirs_alloc = mam_totals(result)
    assert max_difference(per_journey, theirs_alloc) <= 1e-9
    # both allocate the whole value, differently
    assert math.fsum(theirs_alloc.values()) == pytest.approx(total, abs=1e-6)
    assert math.fsum(ours_global.values()) == pytest.approx(total, abs=1e-6)
    assert max_difference(ours_global, theirs_alloc) > 0.01
