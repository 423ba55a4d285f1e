"""Hand-computed checks of the lift estimators (attribution.lift_stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from attribution import lift_stats as ls
from attribution.stats import ratio_lift_interval


def test_weighted_ratio_reduces_to_the_binomial_delta_method():
    y = np.array([1] * 60 + [0] * 940 + [1] * 40 + [0] * 960, dtype=float)
    t = np.array([True] * 1000 + [False] * 1000)
    got = ls.weighted_ratio(y, t, clusters=np.arange(2000))
    want = ratio_lift_interval(60, 1000, 40, 1000)
    assert (got.lift, got.ci_low, got.ci_high) == pytest.approx(
        (want.lift, want.ci_low, want.ci_high)
    )
    z = math.log(1.5) / math.sqrt(0.94 / 60 + 0.96 / 40)
    assert got.p_value == pytest.approx(2 * sps.norm.sf(z))


def test_clustering_widens_the_interval_for_repeated_users():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=float)
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    independent = ls.weighted_ratio(y, t)
    clustered = ls.weighted_ratio(y, t, clusters=np.array([1, 1, 2, 2, 3, 4, 5, 6]))
    # treated influence: (y - 0.5) / (4 * 0.5) = +-0.25; user 1 sums to 0.5, user 2 to -0.5
    # comparison: -(y - 0.25) / (4 * 0.25) = -0.75, 0.25, 0.25, 0.25
    assert clustered.se_log == pytest.approx(math.sqrt(0.5 + 0.5625 + 3 * 0.0625))
    assert independent.se_log == pytest.approx(math.sqrt(4 * 0.0625 + 0.5625 + 3 * 0.0625))
    assert clustered.se_log > independent.se_log


def test_weighted_ratio_uses_weights_for_the_comparison_mean():
    y = np.array([1, 0, 1, 0, 0], dtype=float)
    t = np.array([True, True, False, False, False])
    w = np.array([1, 1, 3, 1, 0], dtype=float)
    got = ls.weighted_ratio(y, t, w)
    assert got.m1 == 0.5 and got.m0 == pytest.approx(0.75)
    assert got.lift == pytest.approx(0.5 / 0.75 - 1)


def test_srm_chi_square_hand_computed():
    # 4 vs 4 against a 5% holdout design: expected 7.6 / 0.4
    chi2 = (4 - 7.6) ** 2 / 7.6 + (4 - 0.4) ** 2 / 0.4
    assert ls.srm_p_value(4, 4, 0.05) == pytest.approx(sps.chi2.sf(chi2, 1))
    assert ls.srm_p_value(4, 4, 0.05) < 0.001
    assert ls.srm_p_value(500, 500, 0.5) == pytest.approx(1.0)
    # 950 / 50 is exactly the design
    assert ls.srm_p_value(950, 50, 0.05) == pytest.approx(1.0)
    assert ls.srm_p_value(0, 0, 0.05) is None


def test_cuped_theta_hand_computed():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=float)
    x = np.array([1, 0, 0, 0, 0, 1, 0, 0], dtype=float)
    # cov(y, x) = 0.25 / 8, var(x) = 0.25 * 0.75
    assert ls.cuped_theta(y, x) == pytest.approx((0.25 / 8) / 0.1875)
    assert ls.cuped_theta(y, np.zeros(8)) == 0.0
    theta, est = ls.cuped_ratio(y, x, np.array([True] * 4 + [False] * 4))
    adjusted = y - theta * (x - 0.25)
    assert est.lift == pytest.approx(adjusted[:4].mean() / adjusted[4:].mean() - 1)


def test_cuped_keeps_the_point_and_narrows_the_interval_with_a_predictive_covariate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000)
    t = rng.random(4000) < 0.5
    y = 10 + 2 * x + 0.5 * t + rng.normal(size=4000)
    plain = ls.weighted_ratio(y, t)
    _, cuped = ls.cuped_ratio(y, x, t)
    assert cuped.se_log < plain.se_log / 1.5
    assert abs(cuped.lift - plain.lift) < 0.05


def test_benjamini_hochberg_hand_computed():
    p = [0.01, 0.04, 0.03, 0.20, None]
    # sorted 0.01, 0.03, 0.04, 0.20 (m = 4): 0.04, 0.06, 0.0533, 0.20 -> step-up minimum
    got = ls.benjamini_hochberg(p)
    assert got[:4] == pytest.approx([0.04, 0.0533333, 0.0533333, 0.2])
    assert got[4] is None
    assert ls.benjamini_hochberg([0.9, 0.95]) == pytest.approx([0.95, 0.95])


def test_logistic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 2))
    p = 1 / (1 + np.exp(-(-0.5 + 1.0 * x[:, 0] - 2.0 * x[:, 1])))
    t = rng.random(20000) < p
    beta = ls.fit_logistic(x, t)
    assert beta == pytest.approx([-0.5, 1.0, -2.0], abs=0.08)


def test_smd_before_and_after_weighting():
    x = np.array([1.0, 2.0, 3.0, 1.0, 1.0, 3.0])
    t = np.array([True, True, True, False, False, False])
    pooled = math.sqrt((x[:3].var(ddof=1) + x[3:].var(ddof=1)) / 2)
    assert ls.smd(x, t) == pytest.approx((2.0 - 5 / 3) / pooled)
    w = np.array([1, 1, 1, 1, 1, 1.0])
    w[3:] = [0.5, 0.5, 1.0]
    assert ls.smd(x, t, w) == pytest.approx(0.0)


def test_cuped_means_of_opposite_signs_give_a_lift_without_an_interval():
    # a tiny group: the CUPED adjustment pushes the holdout mean below zero
    est = ls.ratio_from_means(0.2, -0.05, 0.3)
    assert est.lift == pytest.approx(-5.0)
    assert (est.ci_low, est.ci_high, est.p_value) == (None, None, None)


def test_smd_of_a_column_constant_up_to_rounding_is_zero() -> None:
    """A covariate equal on every unit has SMD 0, not the quotient of two rounding errors (the
    blockwise sums gave -1.88 here, i.e. 'not balanced'); the other column is unaffected."""
    rng = np.random.default_rng(0)
    n = 200_001
    x = np.column_stack([np.full(n, -0.36514837167011077), rng.normal(size=n)])
    treated = rng.random(n) < 0.3
    weights = np.where(treated, 1.0, rng.random(n) * 3)
    for w in (None, weights):
        constant, varying = ls.smd_columns(x, treated, w)
        assert constant == 0.0
        assert varying == pytest.approx(ls.smd(x[:, 1], treated, w), rel=1e-9)
    assert ls.smd_of(0.5, -0.5, 0.0, 1e-30) is None  # separated sides: undefined


def test_an_interval_too_wide_for_a_double_has_no_upper_bound() -> None:
    """Tiny means with a huge log-scale standard error: the upper bound is unbounded (None),
    not an OverflowError that stops the lift stage (found by a property test)."""
    est = ls.ratio_from_means(2e-300, 1e-300, 500.0)
    assert est.lift == pytest.approx(1.0)
    assert est.ci_high is None
    assert est.ci_low == pytest.approx(math.exp(math.log(2) - ls.Z_95 * 500.0) - 1)
    assert est.p_value == pytest.approx(ls.two_sided_p(math.log(2) / 500.0))
