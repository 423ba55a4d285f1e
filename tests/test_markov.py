"""The data-driven model (attribution.markov): hand-computed chains, properties, edge cases."""

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.markov import (
    conversion_probability,
    markov_attribution,
    removal_effects,
    shapley_attribution,
    transition_matrix,
)

EXACT = 1e-12

# --------------------------------------------------------------------------------------------
# hand-computed example (order 1)
# --------------------------------------------------------------------------------------------
# Journeys: [A] -> conversion (value 10), [A, B] -> conversion (value 30), [B] -> null.
# Transition counts: start->A 2, start->B 1; A->conv 1, A->B 1; B->conv 1, B->null 1.
# Probabilities:     start->A 2/3, start->B 1/3; A->conv 1/2, A->B 1/2; B->conv 1/2, B->null 1/2.
# Absorption: h_B = 1/2; h_A = 1/2 + 1/2 h_B = 3/4; P(conv) = h_start = 2/3 * 3/4 + 1/3 * 1/2 = 2/3.
# Remove A (start->A goes to null): P = 1/3 * h_B = 1/6           -> RE_A = 1 - (1/6)/(2/3) = 3/4.
# Remove B (start->B, A->B go to null): h_A = 1/2, P = 2/3 * 1/2 = 1/3 -> RE_B = 1 - (1/3)/(2/3) = 1/2.
# Shares: 3/4 / (5/4) = 3/5 and 2/5. Conversions 2 -> 6/5, 4/5. Value 40 -> 24, 16.
# Shapley (sets {A}: 1 conversion worth 10, {A, B}: 1 conversion worth 30):
#   v(0) = 0, v(A) = 1, v(B) = 0, v(AB) = 2
#   phi_A = 1/2 [(v(A) - v(0)) + (v(AB) - v(B))] = 1/2 [1 + 2] = 3/2, phi_B = 1/2 [0 + 1] = 1/2
#   shares 3/4, 1/4; value game v(A) = 10, v(AB) = 40: phi_A = 1/2 [10 + 40] = 25, phi_B = 15.
HAND = [(["A"], True, 10.0), (["A", "B"], True, 30.0), (["B"], False, 0.0)]


def test_hand_transition_matrix():
    m = transition_matrix(HAND)
    assert m.states == ("start", "A", "B", "conversion", "null")
    assert m.probability("start", "A") == pytest.approx(2 / 3, abs=EXACT)
    assert m.probability("start", "B") == pytest.approx(1 / 3, abs=EXACT)
    assert m.probability("A", "conversion") == pytest.approx(1 / 2, abs=EXACT)
    assert m.probability("A", "B") == pytest.approx(1 / 2, abs=EXACT)
    assert m.probability("B", "conversion") == pytest.approx(1 / 2, abs=EXACT)
    assert m.probability("B", "null") == pytest.approx(1 / 2, abs=EXACT)
    assert m.probability("conversion", "conversion") == 1.0
    assert m.probability("null", "null") == 1.0
    assert m.counts[m.index("start"), m.index("A")] == 2
    assert m.probabilities.sum(axis=1) == pytest.approx([1.0] * 5, abs=EXACT)
    assert m.to_frame().height == 8


def test_hand_conversion_probability_and_removal_effects():
    assert conversion_probability(transition_matrix(HAND)) == pytest.approx(2 / 3, abs=EXACT)
    effects = removal_effects(HAND)
    assert list(effects) == ["A", "B"]
    assert effects["A"] == pytest.approx(3 / 4, abs=EXACT)
    assert effects["B"] == pytest.approx(1 / 2, abs=EXACT)


def test_hand_markov_attribution_is_a_global_allocation():
    got = markov_attribution(HAND)
    assert got["touch_type"].to_list() == ["A", "B"]
    assert got["share"].to_list() == pytest.approx([3 / 5, 2 / 5], abs=EXACT)
    assert got["attributed_conversions"].to_list() == pytest.approx([6 / 5, 4 / 5], abs=EXACT)
    # B gets 16 although the only B journey with value is [A, B]: global allocation
    assert got["attributed_revenue_usd"].to_list() == pytest.approx([24.0, 16.0], abs=EXACT)


def test_hand_shapley():
    got = shapley_attribution(HAND)
    assert got["touch_type"].to_list() == ["A", "B"]
    assert got["shapley_conversions"].to_list() == pytest.approx([3 / 2, 1 / 2], abs=EXACT)
    assert got["shapley_share"].to_list() == pytest.approx([3 / 4, 1 / 4], abs=EXACT)
    assert got["shapley_revenue_usd"].to_list() == pytest.approx([25.0, 15.0], abs=EXACT)


def test_hand_three_players_shapley():
    # sets: {A}: 1 conv, {A,B}: 2 conv, {A,B,C}: 3 conv (value 1 each); v(S) by subsets:
    # v(A)=1, v(AB)=3, v(ABC)=6, others 0 except v(AC)=1. Shapley weights n=3: |S|=0: 1/3,
    # |S|=1: 1/6, |S|=2: 1/3.
    # phi_C = 1/3 (v(C)-0) + 1/6 (v(AC)-v(A)) + 1/6 (v(BC)-v(B)) + 1/3 (v(ABC)-v(AB)) = 1
    # phi_B = 1/3*0 + 1/6 (v(AB)-v(A)) + 1/6 (v(BC)-v(C)) + 1/3 (v(ABC)-v(AC)) = 1/3 + 5/3 = 2
    # phi_A = 6 - 1 - 2 = 3  (= 1 + 2/2 + 3/3: each journey split over its distinct touch types)
    paths = [
        {"path": ["A"], "converted": True, "value_usd": 1.0},
        {"path": ["B", "A"], "converted": True, "value_usd": 2.0, "count": 2},
        {"path": ["C", "A", "B", "C"], "converted": True, "value_usd": 3.0, "count": 3},
        {"path": ["C"], "converted": False, "value_usd": 0.0, "count": 7},
    ]
    got = shapley_attribution(paths)
    assert got["shapley_conversions"].to_list() == pytest.approx([3.0, 2.0, 1.0], abs=EXACT)
    assert got["shapley_revenue_usd"].to_list() == pytest.approx([3.0, 2.0, 1.0], abs=EXACT)
    assert got["shapley_share"].to_list() == pytest.approx([0.5, 1 / 3, 1 / 6], abs=EXACT)


# --------------------------------------------------------------------------------------------
# order 2
# --------------------------------------------------------------------------------------------
# Journeys: [A, B] -> conv, [B, A] -> null, [A, A] -> conv.
# Order 2 states: (A,), (B,), (A,A), (A,B), (B,A). Walks:
#   start -> (A,) -> (A,B) -> conv;  start -> (B,) -> (B,A) -> null;  start -> (A,) -> (A,A) -> conv
# P(conv) = P(start->(A,)) = 2/3 (both (A,) walks convert).
# Remove A: every state with A goes; only start->(B,)->(B,A) remains and (B,A) is removed: P = 0,
#   RE_A = 1. Remove B: (A,)->(A,B) goes to null, (A,)->(A,A) (1/2) converts: P = 2/3 * 1/2 = 1/3,
#   RE_B = 1/2.
# Order 1 on the same journeys: A: ->B 1, ->null 1, ->A 1, ->conv 1; B: ->conv 1, ->A 1.
#   h_A = (h_B + h_A + 1)/4, h_B = (1 + h_A)/2 -> h_A = 3/5, h_B = 4/5, P = 2/3*3/5 + 1/3*4/5 = 2/3.
#   Remove A: P = 1/3 * 1/2 = 1/6 -> RE_A = 3/4. Remove B: h_A = (h_A + 1)/4 = 1/3,
#   P = 2/9 -> RE_B = 2/3.
ORDER2 = [(["A", "B"], True, 5.0), (["B", "A"], False, 0.0), (["A", "A"], True, 7.0)]


def test_order_two_hand_example():
    m = transition_matrix(ORDER2, order=2)
    assert m.states == (
        "start",
        ("A",),
        ("B",),
        ("A", "A"),
        ("A", "B"),
        ("B", "A"),
        "conversion",
        "null",
    )
    assert m.probability(("A",), ("A", "B")) == pytest.approx(1 / 2, abs=EXACT)
    assert m.probability(("B", "A"), "null") == 1.0
    assert conversion_probability(m) == pytest.approx(2 / 3, abs=EXACT)
    effects = removal_effects(ORDER2, order=2)
    assert effects["A"] == pytest.approx(1.0, abs=EXACT)
    assert effects["B"] == pytest.approx(1 / 2, abs=EXACT)
    got = markov_attribution(ORDER2, order=2)
    assert got["share"].to_list() == pytest.approx([2 / 3, 1 / 3], abs=EXACT)
    assert got["attributed_revenue_usd"].to_list() == pytest.approx([8.0, 4.0], abs=EXACT)


def test_order_one_on_the_order_two_example():
    assert conversion_probability(transition_matrix(ORDER2)) == pytest.approx(2 / 3, abs=EXACT)
    effects = removal_effects(ORDER2)
    assert effects["A"] == pytest.approx(3 / 4, abs=EXACT)
    assert effects["B"] == pytest.approx(2 / 3, abs=EXACT)


# --------------------------------------------------------------------------------------------
# edge cases
# --------------------------------------------------------------------------------------------


def test_empty_input():
    assert removal_effects([]) == {}
    assert conversion_probability(transition_matrix([])) == 0.0
    assert transition_matrix([]).states == ("start", "conversion", "null")
    empty = pl.DataFrame(
        schema={"path": pl.List(pl.String), "converted": pl.Boolean, "value_usd": pl.Float64}
    )
    for frame in (markov_attribution([]), markov_attribution(empty)):
        assert frame.height == 0
        assert frame.columns == [
            "touch_type",
            "removal_effect",
            "share",
            "attributed_conversions",
            "attributed_revenue_usd",
        ]
    assert shapley_attribution(empty).height == 0


def test_no_converting_journey_attributes_nothing():
    paths = [(["A", "B"], False, 0.0), (["B"], False, 0.0)]
    assert conversion_probability(transition_matrix(paths)) == 0.0
    assert removal_effects(paths) == {"A": 0.0, "B": 0.0}
    got = markov_attribution(paths)
    assert got["share"].to_list() == [0.0, 0.0]
    assert got["attributed_revenue_usd"].to_list() == [0.0, 0.0]
    shap = shapley_attribution(paths)
    assert shap["shapley_share"].to_list() == [0.0, 0.0]
    assert shap["shapley_revenue_usd"].to_list() == [0.0, 0.0]


def test_touch_type_only_in_non_converting_journeys_gets_nothing():
    # C -> null only: C's state cannot reach conversion, removing it changes nothing
    paths = [*HAND, (["C"], False, 0.0), (["C", "C"], False, 0.0)]
    effects = removal_effects(paths)
    assert effects["C"] == 0.0
    got = markov_attribution(paths)
    assert got.filter(pl.col("touch_type") == "C")["attributed_revenue_usd"].item() == 0.0
    assert got["share"].sum() == pytest.approx(1.0, abs=EXACT)
    assert shapley_attribution(paths).filter(pl.col("touch_type") == "C")[
        "shapley_revenue_usd"
    ].item() == pytest.approx(0.0, abs=0)


def test_memoryless_chain_credits_a_non_converting_lead_in():
    # Documented limit: [C, A] -> null, but A converts elsewhere; the chain forgets the walk's
    # history, so start -> C -> A can convert and C gets a positive removal effect.
    # Counts: start->A 1, start->C 1; A->conv 1, A->null 1; C->A 1.
    # P = 1/2 * 1/2 + 1/2 * 1/2 = 1/2; without C: 1/4 -> RE_C = 1/2; without A: 0 -> RE_A = 1.
    paths = [(["A"], True, 1.0), (["C", "A"], False, 0.0)]
    effects = removal_effects(paths)
    assert effects["C"] == pytest.approx(1 / 2, abs=EXACT)
    assert effects["A"] == pytest.approx(1.0, abs=EXACT)
    # Shapley has no such effect: C is in no converting journey
    assert shapley_attribution(paths)["shapley_share"].to_list() == [1.0, 0.0]


def test_single_touch_type_gets_everything():
    paths = [(["A"], True, 12.5), (["A", "A"], False, 0.0), (["A", "A", "A"], True, 7.5)]
    assert conversion_probability(transition_matrix(paths)) == pytest.approx(2 / 3, abs=EXACT)
    assert removal_effects(paths) == {"A": 1.0}
    got = markov_attribution(paths).row(0, named=True)
    assert got["share"] == 1.0
    assert got["attributed_conversions"] == 2.0
    assert got["attributed_revenue_usd"] == 20.0
    assert shapley_attribution(paths).row(0) == ("A", 2.0, 1.0, 20.0)


def test_frame_and_sequence_inputs_agree_and_extra_columns_are_ignored():
    frame = pl.DataFrame(
        {
            "journey_id": ["j1", "j2", "j3"],
            "path": [p for p, _, _ in HAND],
            "converted": [c for _, c, _ in HAND],
            "value_usd": [v for _, _, v in HAND],
        }
    )
    assert markov_attribution(frame).equals(markov_attribution(HAND))
    assert shapley_attribution(frame).equals(shapley_attribution(HAND))


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ([([], True, 1.0)], "non-empty list"),
        (["A"], "a journey is"),
        ([(["A", ""], True, 1.0)], "non-empty strings"),
        ([(["A", 3], True, 1.0)], "non-empty strings"),
        ([(["null"], True, 1.0)], "reserved"),
        ([(["A"], False, 2.0)], "did not convert"),
        ([(["A"], True, -1.0)], ">= 0"),
        ([(["A"], True, math.nan)], "finite"),
        ([(["A"], True, 1.0, 0)], "count"),
    ],
)
def test_invalid_journeys_are_rejected(paths, message):
    with pytest.raises(ValueError, match=message):
        markov_attribution(paths)


def test_invalid_order_and_missing_columns_are_rejected():
    with pytest.raises(ValueError, match="order"):
        removal_effects(HAND, order=0)
    with pytest.raises(ValueError, match="columns"):
        markov_attribution(pl.DataFrame({"path": [["A"]]}))


def test_shapley_refuses_too_many_touch_types():
    paths = [([f"t{i}" for i in range(11)], True, 1.0)]
    with pytest.raises(ValueError, match="max_touch_types=10"):
        shapley_attribution(paths)
    assert shapley_attribution(paths, max_touch_types=11)["shapley_share"].sum() == pytest.approx(
        1.0, abs=EXACT
    )
    # touch types seen only in non-converting journeys do not count towards the limit
    wide = [(["A"], True, 1.0), *[([f"n{i}"], False, 0.0) for i in range(20)]]
    assert shapley_attribution(wide).height == 21


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

TOUCHES = ("A", "B", "C", "D", "E")


@st.composite
def journey(draw):
    path = draw(st.lists(st.sampled_from(TOUCHES), min_size=1, max_size=5))
    converted = draw(st.booleans())
    value = draw(st.integers(0, 50_000)) / 100 if converted else 0.0
    count = draw(st.integers(1, 3))
    return {"path": path, "converted": converted, "value_usd": value, "count": count}


journeys = st.lists(journey(), min_size=0, max_size=25)


def _totals(paths):
    conversions = math.fsum(j["count"] for j in paths if j["converted"])
    value = math.fsum(j["value_usd"] for j in paths if j["converted"])
    return conversions, value


@settings(max_examples=60, deadline=None)
@given(journeys, st.integers(1, 3))
def test_markov_shares_effects_and_totals(paths, order):
    got = markov_attribution(paths, order=order)
    conversions, value = _totals(paths)
    assert got["touch_type"].to_list() == sorted({t for j in paths for t in j["path"]})
    assert all(0.0 <= e <= 1.0 for e in got["removal_effect"])
    if conversions > 0:
        assert math.fsum(got["share"]) == pytest.approx(1.0, abs=1e-12)
        assert math.fsum(got["attributed_conversions"]) == pytest.approx(conversions, rel=1e-12)
        assert math.fsum(got["attributed_revenue_usd"]) == pytest.approx(value, abs=1e-9)
    else:
        assert all(s == 0.0 for s in got["share"])


@settings(max_examples=40, deadline=None)
@given(journeys, st.randoms(use_true_random=False), st.integers(1, 2))
def test_permuting_journeys_changes_nothing(paths, rnd, order):
    shuffled = list(paths)
    rnd.shuffle(shuffled)
    assert markov_attribution(shuffled, order=order).equals(markov_attribution(paths, order=order))
    assert shapley_attribution(shuffled).equals(shapley_attribution(paths))


@settings(max_examples=40, deadline=None)
@given(journeys)
def test_counts_are_the_same_as_repeated_journeys(paths):
    expanded = [
        {**j, "count": 1, "value_usd": j["value_usd"] / j["count"]}
        for j in paths
        for _ in range(j["count"])
    ]
    a, b = markov_attribution(paths), markov_attribution(expanded)
    for column in ("removal_effect", "share", "attributed_revenue_usd"):
        assert a[column].to_list() == pytest.approx(b[column].to_list(), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(journeys)
def test_shapley_efficiency_and_closed_form(paths):
    got = shapley_attribution(paths)
    conversions, value = _totals(paths)
    if conversions > 0:
        assert math.fsum(got["shapley_share"]) == pytest.approx(1.0, abs=1e-12)
    assert math.fsum(got["shapley_conversions"]) == pytest.approx(conversions, abs=1e-9)
    assert math.fsum(got["shapley_revenue_usd"]) == pytest.approx(value, abs=1e-9)
    # v is a sum of unanimity games: each converting journey splits equally over its distinct set
    expected = dict.fromkeys(got["touch_type"], 0.0)
    for j in paths:
        if j["converted"]:
            distinct = set(j["path"])
            for t in distinct:
                expected[t] += j["value_usd"] / len(distinct)
    assert got["shapley_revenue_usd"].to_list() == pytest.approx(list(expected.values()), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(journeys.filter(lambda p: len(p) > 0))
def test_full_order_chain_reproduces_the_observed_rates(paths):
    # with order >= the longest path every state is a whole prefix: the chain is the data itself
    order = max(len(j["path"]) for j in paths)
    n = math.fsum(j["count"] for j in paths)
    conversions, _ = _totals(paths)
    m = transition_matrix(paths, order=order)
    assert conversion_probability(m) == pytest.approx(conversions / n, abs=1e-12)
    if conversions > 0:
        effects = removal_effects(paths, order=order)
        for t, effect in effects.items():
            without = math.fsum(j["count"] for j in paths if j["converted"] and t not in j["path"])
            assert effect == pytest.approx(1 - without / conversions, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(journeys)
def test_repeated_touches_do_not_change_order_one_effects(paths):
    # a self-loop only rescales the rest of its row: dropping A -> A changes no absorption
    collapsed = [
        {**j, "path": [t for i, t in enumerate(j["path"]) if i == 0 or j["path"][i - 1] != t]}
        for j in paths
    ]
    a, b = removal_effects(paths), removal_effects(collapsed)
    assert list(a) == list(b)
    assert list(a.values()) == pytest.approx(list(b.values()), abs=1e-12)
