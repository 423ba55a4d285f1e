"""attribution.lift_groups against the per-comparison estimators of attribution.lift_stats.

Every (period, segment) row computed at once from per-user sums must equal the row computed the
slow way: mask the units of the segment and period, then ``weighted_ratio`` /
``weighted_difference`` with clusters = users.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution import lift_groups as lg
from attribution import lift_stats as ls


def _units(seed: int, n: int = 400, n_users: int = 90, n_periods: int = 3):
    rng = np.random.default_rng(seed)
    user = np.sort(rng.integers(0, n_users, n))
    period = rng.integers(0, n_periods, n)
    # units come sorted by user, then day: the period is monotone within a user
    order = np.lexsort((period, user))
    user, period = user[order], period[order]
    treated = rng.random(n) < 0.35
    converted = (rng.random(n) < np.where(treated, 0.3, 0.2)).astype(float)
    revenue = np.round(converted * rng.gamma(2.0, 20.0, n), 4)  # DECIMAL(18, 4) amounts
    weights = np.where(treated, 1.0, rng.gamma(1.0, 0.5, n))
    weights[rng.random(n) < 0.1] = 0.0  # trimmed or holdout
    market = rng.integers(-1, 3, n)  # -1: unknown marketplace, in no marketplace segment
    version = np.where(treated, rng.integers(-1, 2, n), -1)  # only engaged units carry one
    dims = [
        lg.Dimension("marketplace", market, ("DE", "FR", "US")),
        lg.Dimension("model_version", version, ("v1", "v2"), of_treated=True),
    ]
    return user, period, n_periods, treated, converted, revenue, weights, dims


def _exact_mean(amounts: np.ndarray) -> float:
    total = sum((Decimal(str(a)) for a in amounts.tolist()), Decimal(0))
    return float((total / len(amounts)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def _slow_row(mask, treated, converted, revenue, weights, user):
    t, w = treated[mask], weights[mask]
    y, r, u = converted[mask], revenue[mask], user[mask]
    index = ls.ClusterIndex.of(u)
    conv = ls.weighted_ratio(y, t, w, index)
    rev = ls.weighted_ratio(r, t, w, index)
    diff, diff_se = ls.weighted_difference(r, t, w, index)
    kept = w > 0
    if np.all(w == 1):  # unit weights: the exact quotient, half away from zero (as SQL)
        rpu1, rpu0 = (_exact_mean(r[side]) for side in (t, ~t))
    else:
        rpu1, rpu0 = rev.m1, rev.m0
    return {
        "n_engaged": int((t & kept).sum()),
        "n_comparison": int((~t & kept).sum()),
        "n_engaged_users": len(set(u[t & kept].tolist())),
        "n_comparison_users": len(set(u[~t & kept].tolist())),
        "conversions_engaged": int(y[t & kept].sum()),
        "conversions_comparison": int(y[~t & kept].sum()),
        "cr_engaged": conv.m1,
        "cr_comparison": conv.m0,
        "lift": conv.lift,
        "lift_ci_low": conv.ci_low,
        "lift_ci_high": conv.ci_high,
        "p_value": conv.p_value,
        "revenue_engaged_usd": float(r[t & kept].sum()),
        "revenue_comparison_usd": float(r[~t & kept].sum()),
        "revenue_per_user_engaged_usd": rpu1,
        "revenue_per_user_comparison_usd": rpu0,
        "revenue_lift": rev.lift,
        "revenue_lift_ci_low": rev.ci_low,
        "revenue_lift_ci_high": rev.ci_high,
        "incremental_revenue_usd": None if diff is None else int((t & kept).sum()) * diff,
        "incremental_revenue_ci_high": None
        if diff is None
        else int((t & kept).sum()) * (diff + ls.Z_95 * diff_se),
    }


def _assert_rows_equal(fast: dict, slow: dict) -> None:
    for column, want in slow.items():
        got = fast[column]
        if want is None:
            assert got is None, column
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), column


def _check(seed: int, unit_weights: bool = False) -> int:
    user, period, n_periods, treated, converted, revenue, weights, dims = _units(seed)
    given_weights = None if unit_weights else weights
    if unit_weights:
        weights = np.ones(len(user))  # what ``None`` stands for
    everyone = lg.Dimension("all", np.zeros(len(user), dtype=np.int64), ("all",))
    whole = lg.group_stats(
        lg.clusters_of(everyone, user, period, n_periods),
        treated,
        converted,
        revenue,
        given_weights,
    )
    compared = 0
    for dim in [everyone, *dims]:
        stats = (
            whole
            if dim is everyone
            else lg.group_stats(
                lg.clusters_of(dim, user, period, n_periods),
                treated,
                converted,
                revenue,
                given_weights,
                whole,
            )
        )
        for p in range(n_periods):
            for level in range(len(dim.levels)):
                in_segment = dim.codes == level
                if dim.of_treated:
                    in_segment = in_segment | ~treated  # every comparison unit of the period
                mask = (period == p) & in_segment
                group = p * len(dim.levels) + level
                both = treated[mask].any() and (~treated[mask]).any()
                assert lg.has_both_sides(stats, group) == both
                if both:
                    fast = lg.comparison_row(stats, group)
                    _assert_rows_equal(
                        fast, _slow_row(mask, treated, converted, revenue, weights, user)
                    )
                    compared += 1
    return compared


@pytest.mark.parametrize("unit_weights", [False, True])
def test_every_segment_and_period_equals_the_masked_computation(unit_weights):
    # 3 periods x (all + 3 marketplaces + 2 versions)
    assert _check(seed=7, unit_weights=unit_weights) == 18


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_grouped_rows_equal_masked_rows_for_any_data(seed):
    _check(seed)
    _check(seed, unit_weights=True)


def test_a_user_with_units_on_both_sides_is_one_cluster():
    # one period; user 0: an engaged unit (bought) and a comparison unit (did not buy)
    user = np.array([0, 0, 1, 2, 3])
    period = np.zeros(5, dtype=np.int64)
    treated = np.array([True, False, True, False, False])
    converted = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
    revenue = converted * 10
    everyone = lg.Dimension("all", np.zeros(5, dtype=np.int64), ("all",))
    stats = lg.group_stats(
        lg.clusters_of(everyone, user, period, 1), treated, converted, revenue, np.ones(5)
    )
    row = lg.comparison_row(stats, 0)
    # m1 = 1/2, m0 = 1/3; user 0: (1 - 0.5) / (2 * 0.5) - (0 - 1/3) / (3 * 1/3) = 0.5 + 1/3
    # user 1: (0 - 0.5) / 1 = -0.5; users 2 and 3: -(1 - 1/3) / 1 = -2/3, -(0 - 1/3) = 1/3
    se = math.sqrt((0.5 + 1 / 3) ** 2 + 0.25 + (2 / 3) ** 2 + (1 / 3) ** 2)
    assert row["lift"] == pytest.approx(0.5)
    assert row["lift_ci_high"] == pytest.approx(math.exp(math.log(1.5) + ls.Z_95 * se) - 1)
    assert (row["n_engaged_users"], row["n_comparison_users"]) == (2, 3)


def test_treatment_attribute_needs_the_segment_all_statistics():
    user = np.array([0, 1])
    period = np.zeros(2, dtype=np.int64)
    version = lg.Dimension("model_version", np.array([0, -1]), ("v1",), of_treated=True)
    with pytest.raises(ValueError, match="segment-all"):
        lg.group_stats(
            lg.clusters_of(version, user, period, 1),
            np.array([True, False]),
            np.zeros(2),
            np.zeros(2),
            np.ones(2),
        )


def test_cuped_of_every_group_equals_cuped_ratio():
    user, period, n_periods, treated, converted, _, _, dims = _units(seed=3)
    user = np.arange(len(user))  # experiment units: one per user
    pre = (np.random.default_rng(4).random(len(user)) < 0.3).astype(float)
    market = dims[0]
    clusters = lg.clusters_of(market, user, period, n_periods)
    got = lg.cuped(clusters, treated, converted, pre)
    for p in range(n_periods):
        for level in range(len(market.levels)):
            mask = (period == p) & (market.codes == level)
            theta, want = ls.cuped_ratio(converted[mask], pre[mask], treated[mask])
            row = lg.cuped_row(got, p * len(market.levels) + level)
            _assert_rows_equal(
                row,
                {
                    "cuped_theta": theta,
                    "lift_cuped": want.lift,
                    "lift_cuped_ci_low": want.ci_low,
                    "lift_cuped_ci_high": want.ci_high,
                },
            )
