"""Hand-computed checks of the stratified (Mantel-Haenszel) ratio and its clustered bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.lift_stats import clustered_mean
from attribution.stats import Z_95
from attribution.stratified import (
    cluster_replicate_weights,
    ratio_of_ratios,
    stratified_ratio,
)

# Two strata, one unit per cluster.
#   A: group 1 y = 1, 0        (n1 = 2, t1 = 1)   group 0 y = 0, 0, 1, 0  (n0 = 4, t0 = 1)   N = 6
#   B: group 1 y = 1, 1, 0     (n1 = 3, t1 = 2)   group 0 y = 1, 0, 0     (n0 = 3, t0 = 1)   N = 6
# numerator   = sum t1 n0 / N = 1*4/6 + 2*3/6 = 2/3 + 1   = 5/3
# denominator = sum t0 n1 / N = 1*2/6 + 1*3/6 = 1/3 + 1/2 = 5/6
# ratio = (5/3) / (5/6) = 2 (the crude ratio would be (3/5) / (2/7) = 2.1)
Y = np.array([1, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0], dtype=float)
GROUP = np.array([1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0], dtype=bool)
STRATA = np.array(["A"] * 6 + ["B"] * 6)
CLUSTERS = np.arange(12)


def test_two_strata_hand_computed():
    got = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=50)
    assert got.ratio == pytest.approx(2.0)
    assert got.n_strata_informative == 2
    assert got.n_units_informative == 12
    assert len(got.replicates) == 50


def test_a_stratum_with_one_group_gets_no_weight_and_is_not_informative():
    # stratum C holds only group 1, with outcomes that would move any pooled ratio
    y = np.concatenate([Y, [1.0, 1.0, 1.0]])
    group = np.concatenate([GROUP, [True, True, True]])
    strata = np.concatenate([STRATA, ["C"] * 3])
    got = stratified_ratio(y, group, strata, np.arange(15), replicates=0)
    assert got.ratio == pytest.approx(2.0)
    assert got.n_strata_informative == 2
    assert got.n_units_informative == 12


def test_no_informative_stratum_gives_no_ratio():
    # A holds only group 1, B only group 0: nothing compares like with like
    y = np.array([1.0, 0.0, 1.0, 1.0])
    group = np.array([True, True, False, False])
    got = stratified_ratio(y, group, np.array(["A", "A", "B", "B"]), np.arange(4))
    assert got.ratio is None
    assert (got.ci_low, got.ci_high) == (None, None)
    assert got.n_strata_informative == 0
    assert got.n_units_informative == 0
    assert np.isnan(got.replicates).all()


def test_a_group_0_without_outcomes_gives_no_ratio():
    y = np.array([1.0, 0.0, 0.0, 0.0])
    group = np.array([True, True, False, False])
    got = stratified_ratio(y, group, np.array(["A"] * 4), np.arange(4), replicates=0)
    assert got.ratio is None
    assert got.n_strata_informative == 1


def test_no_units_gives_no_ratio():
    empty = np.array([])
    got = stratified_ratio(empty, empty.astype(bool), empty, empty)
    assert got.ratio is None and got.n_strata_informative == 0 and len(got.replicates) == 0


def test_a_weight_of_two_is_the_same_as_duplicating_the_unit():
    # unit 0 (stratum A, group 1, y = 1) counted twice: A's group 1 becomes y = 1, 1, 0
    # numerator = 2*4/7 + 1 = 15/7; denominator = 1*3/7 + 1/2 = 13/14; ratio = 30/13
    weights = np.ones(12)
    weights[0] = 2.0
    weighted = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, weights=weights, replicates=60)
    duplicated = stratified_ratio(
        np.concatenate([Y, Y[:1]]),
        np.concatenate([GROUP, GROUP[:1]]),
        np.concatenate([STRATA, STRATA[:1]]),
        np.concatenate([CLUSTERS, CLUSTERS[:1]]),  # the copy belongs to the same user
        replicates=60,
    )
    assert weighted.ratio == pytest.approx(30 / 13)
    assert duplicated.ratio == pytest.approx(30 / 13)
    assert weighted.n_units_informative == duplicated.n_units_informative == 13
    np.testing.assert_allclose(weighted.replicates, duplicated.replicates)


def test_weights_of_zero_drop_units():
    # zero weight on all of stratum B leaves stratum A alone: (1*4/6) / (1*2/6) = 2
    weights = np.array([1.0] * 6 + [0.0] * 6)
    got = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, weights=weights, replicates=0)
    assert got.ratio == pytest.approx(2.0)
    assert got.n_strata_informative == 1
    assert got.n_units_informative == 6


def test_same_seed_same_replicates_other_seed_other_replicates():
    first = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=100, seed=7)
    again = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=100, seed=7)
    other = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=100, seed=8)
    np.testing.assert_array_equal(first.replicates, again.replicates)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert not np.array_equal(first.replicates, other.replicates, equal_nan=True)


def test_replicate_weights_depend_only_on_seed_and_cluster_count():
    a = list(cluster_replicate_weights(5, 3, seed=1))
    b = list(cluster_replicate_weights(5, 3, seed=1))
    assert len(a) == 3 and all(w.shape == (5,) for w in a)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert all((w >= 0).all() and (w == np.round(w)).all() for w in a)


def test_clustering_resamples_whole_users():
    # One user per (stratum, group): user 0 = A's group 1, 1 = A's group 0, 2 = B's group 1,
    # 3 = B's group 0. Resampling whole users scales a (stratum, group) cell by one weight w, and
    # the stratum's ratio does not depend on the weights: A: (w0 * 4 w1) / (w1 * 2 w0) = 2,
    # B: (2 w2 * 3 w3) / (w3 * 3 w2) = 2. Every replicate is 2 (or undefined), unlike a
    # resampling of single visitor-days.
    users = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    by_user = stratified_ratio(Y, GROUP, STRATA, users, replicates=200)
    finite = by_user.replicates[np.isfinite(by_user.replicates)]
    np.testing.assert_allclose(finite, 2.0)
    assert by_user.ci_low == pytest.approx(2.0) and by_user.ci_high == pytest.approx(2.0)
    by_unit = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=200)
    assert by_unit.ci_high - by_unit.ci_low > 1.0


def test_ratio_of_a_ratio_with_itself_is_exactly_one():
    got = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=100, n_clusters=12)
    assert ratio_of_ratios(got, got) == (1.0, 1.0, 1.0)


def test_shared_cluster_codes_pair_the_replicates():
    # Two subsets of the same 24 users. The second doubles every group-1 outcome, so its ratio is
    # twice the first's in every replicate that resamples the same users: a zero-width interval.
    # Unpaired (codes not shared) the interval of the quotient is wide.
    users = np.arange(12)
    first = stratified_ratio(Y, GROUP, STRATA, users, replicates=200, n_clusters=24)
    second = stratified_ratio(
        np.where(GROUP, 2 * Y, Y), GROUP, STRATA, users, replicates=200, n_clusters=24
    )
    value, low, high = ratio_of_ratios(second, first)
    assert value == pytest.approx(2.0)
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0)

    unpaired = stratified_ratio(
        np.where(GROUP, 2 * Y, Y), GROUP, STRATA, users + 12, replicates=200, n_clusters=24
    )
    _, low, high = ratio_of_ratios(unpaired, first)
    assert high - low > 1.0


def test_ratio_of_ratios_needs_the_same_replicate_count():
    a = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=30)
    b = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=40)
    with pytest.raises(ValueError, match="replicate counts"):
        ratio_of_ratios(a, b)


def test_ratio_of_ratios_is_undefined_without_both_ratios():
    a = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=30)
    none = stratified_ratio(Y, np.ones(12, dtype=bool), STRATA, CLUSTERS, replicates=30)
    assert none.ratio is None
    assert ratio_of_ratios(a, none) == (None, None, None)
    assert ratio_of_ratios(none, a) == (None, None, None)


def test_too_few_informative_replicates_give_no_interval():
    got = stratified_ratio(Y, GROUP, STRATA, CLUSTERS, replicates=10)
    assert got.ratio == pytest.approx(2.0)
    assert (got.ci_low, got.ci_high) == (None, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"y": Y[:-1]},
        {"group": GROUP[:-1]},
        {"strata": STRATA[:-1]},
        {"clusters": CLUSTERS[:-1]},
        {"weights": np.ones(11)},
    ],
)
def test_arrays_of_different_lengths_are_refused(kwargs):
    arguments = {"y": Y, "group": GROUP, "strata": STRATA, "clusters": CLUSTERS, **kwargs}
    with pytest.raises(ValueError, match="length"):
        stratified_ratio(**arguments)


def test_shared_cluster_codes_must_lie_in_range():
    with pytest.raises(ValueError, match="n_clusters"):
        stratified_ratio(Y, GROUP, STRATA, CLUSTERS, n_clusters=11)
    with pytest.raises(ValueError, match="n_clusters"):
        stratified_ratio(Y, GROUP, STRATA, CLUSTERS - 1, n_clusters=12)


@settings(max_examples=60, deadline=None)
@given(
    ones=st.lists(st.integers(0, 20), min_size=1, max_size=4),
    zeros=st.lists(st.integers(1, 20), min_size=1, max_size=4),
    copies=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=6),
    lonely=st.lists(st.integers(0, 50), max_size=3),
)
def test_equal_group_means_in_every_stratum_give_the_ratio_of_the_means(
    ones, zeros, copies, lonely
):
    """Stratum s holds k1_s copies of the group-1 values and k0_s copies of the group-0 values
    (so the same two means everywhere), plus a stratum of group 1 alone that must not count."""
    y, group, strata = [], [], []
    for s, (k1, k0) in enumerate(copies):
        for values, is_one, k in ((ones, True, k1), (zeros, False, k0)):
            y += values * k
            group += [is_one] * (len(values) * k)
            strata += [s] * (len(values) * k)
    y += lonely
    group += [True] * len(lonely)
    strata += [-1] * len(lonely)
    got = stratified_ratio(
        np.array(y, dtype=float), np.array(group), np.array(strata), np.arange(len(y)), replicates=0
    )
    want = float(np.mean(ones)) / float(np.mean(zeros))
    assert got.ratio == pytest.approx(want)
    assert got.n_strata_informative == len(copies)


def test_planted_risk_ratio_is_recovered_despite_confounding():
    """60 strata with base rates 2%..20%; group 1 is most common where the base rate is high,
    so the crude ratio is biased upwards. Users have 2 units each (same stratum and group)."""
    rng = np.random.default_rng(2026)
    true_ratio = 1.5
    y, group, strata, clusters = [], [], [], []
    user = 0
    for s in range(60):
        base = 0.02 + 0.18 * s / 59
        share = 0.15 + 0.7 * s / 59  # confounding: more of group 1 in high-base strata
        for _ in range(150):
            is_one = bool(rng.random() < share)
            p = base * (true_ratio if is_one else 1.0)
            for _ in range(2):
                y.append(float(rng.random() < p))
                group.append(is_one)
                strata.append(s)
                clusters.append(user)
            user += 1
    y_, group_ = np.array(y), np.array(group)
    got = stratified_ratio(y_, group_, np.array(strata), np.array(clusters), replicates=300)
    crude = y_[group_].mean() / y_[~group_].mean()
    assert got.ci_low < true_ratio < got.ci_high
    assert got.ratio == pytest.approx(true_ratio, abs=0.15)
    assert crude > got.ci_high  # the unstratified ratio is off
    assert got.n_strata_informative == 60


def test_clustered_mean_hand_computed():
    # y = 1, 0, 1, 1 in clusters a, a, b, c: mean 0.75, deviations 0.25, -0.75, 0.25, 0.25
    # cluster sums: a -0.5, b 0.25, c 0.25; SE = sqrt(0.25 + 0.0625 + 0.0625) / 4
    mean, low, high = clustered_mean(np.array([1, 0, 1, 1]), np.array(["a", "a", "b", "c"]))
    se = math.sqrt(0.375) / 4
    assert mean == pytest.approx(0.75)
    assert low == pytest.approx(0.75 - Z_95 * se)
    assert high == pytest.approx(0.75 + Z_95 * se)


def test_clustered_mean_with_one_unit_per_cluster_uses_the_population_sd():
    y = np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])  # mean 5, population sd 2
    mean, low, high = clustered_mean(y, np.arange(8))
    assert mean == 5.0
    assert (high - low) / 2 == pytest.approx(Z_95 * 2 / math.sqrt(8))


def test_clustered_mean_of_nothing_is_none():
    assert clustered_mean(np.array([]), np.array([])) == (None, None, None)
