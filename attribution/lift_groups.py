"""Every (period, segment) comparison of one grain at once, from per-user sums (pure numpy).

``attribution.lift`` used to build each comparison from masked unit arrays (one pass over every
unit per segment and period). Here each segment dimension is one pass: units are keyed by
(user, period, level), the key order gives the clusters (a user's units of one period and
level), and every statistic of ``lift_stats.weighted_ratio`` / ``weighted_difference`` is a
sum over units or over clusters (``np.bincount``: sequential, so reruns are identical):

* means ``m = sum(w y) / sum(w)`` per side;
* the clustered delta-method variance of ``log(m1 / m0)``: the sum over clusters of
  ``((A1 - m1 B1) / (W1 m1) - (A0 - m0 B0) / (W0 m0))^2`` with ``A = sum(w y)`` and ``B = sum(w)``
  of the cluster's units on each side; of ``m1 - m0`` the same without the division by ``m``.

Treatment-attribute dimensions (model_version, event_type) only exist for engaged units: their
comparison side is every comparison unit of the period, i.e. the comparison side of segment
``all``. Their variance is ``sum over their clusters of (a - b)^2 + sum over the period's
comparison clusters of b^2 - sum over their clusters of b^2``, with ``b`` taken from the user's
cluster of segment ``all`` in the same period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from attribution import lift_stats as ls

Z_95 = ls.Z_95


@dataclass(frozen=True)
class Dimension:
    """One segment dimension: level code per unit (-1: in no segment of it), level names.

    ``levels`` are sorted: segments appear in level order. ``of_treated`` marks a treatment
    attribute (only engaged units carry it; its comparison side is the period's whole one).
    """

    name: str
    codes: np.ndarray
    levels: tuple[str, ...]
    of_treated: bool = False

    def segment(self, level: int) -> str:
        return "all" if self.name == "all" else f"{self.name}={self.levels[level]}"


@dataclass(frozen=True)
class Clusters:
    """Members of one dimension in (user, period, level) order, grouped into clusters."""

    dimension: Dimension
    members: np.ndarray  # unit index of each member, in key order
    cluster: np.ndarray  # cluster number of each member
    cluster_group: np.ndarray  # group (period * n_levels + level) of each cluster
    member_group: np.ndarray  # group of each member
    n_groups: int
    user_period: np.ndarray  # user * n_periods + period of each cluster


def clusters_of(
    dimension: Dimension, user: np.ndarray, period: np.ndarray, n_periods: int
) -> Clusters:
    """Return the clusters of ``dimension``: the units of one user, period and level."""
    n_levels = max(len(dimension.levels), 1)
    members = np.flatnonzero(dimension.codes >= 0)
    user_period = user[members].astype(np.int64) * n_periods + period[members]
    key = user_period * n_levels + dimension.codes[members]
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
        # units come sorted by user and day: keys are nearly sorted, a stable sort is cheap
        order = np.argsort(key, kind="stable")
        members, key = members[order], key[order]
    start = np.empty(len(key), dtype=bool)
    if len(key):
        start[0] = True
        np.not_equal(key[1:], key[:-1], out=start[1:])
    # positions and numbers below 2**31 are kept as int32: half the memory per member
    index = np.int32 if len(dimension.codes) < 2**31 else np.int64
    cluster = (np.cumsum(start) - 1).astype(index)
    first = key[start]
    groups = n_periods * n_levels
    return Clusters(
        dimension=dimension,
        members=members.astype(index),
        cluster=cluster,
        cluster_group=first % groups,
        member_group=(key % groups).astype(np.int64 if groups >= 2**31 else index),
        n_groups=groups,
        user_period=first // n_levels,
    )


@dataclass(frozen=True)
class Side:
    """Sums of one side (engaged or comparison) per group and per cluster."""

    n_raw: np.ndarray  # units, trimmed ones included (a segment needs both sides)
    n_kept: np.ndarray  # units with weight > 0
    users_kept: np.ndarray  # distinct users with a unit of weight > 0
    conversions: np.ndarray  # sum of converted over kept units (unweighted)
    revenue: np.ndarray  # sum of revenue over kept units (unweighted)
    w: np.ndarray  # sum of weights
    wy: np.ndarray  # sum of weight x converted
    wr: np.ndarray  # sum of weight x revenue
    cw: np.ndarray  # per cluster: sum of weights
    cwy: np.ndarray  # per cluster: sum of weight x converted
    cwr: np.ndarray  # per cluster: sum of weight x revenue
    # unit weights only: exact sum of revenue over kept units in 0.0001 USD (NaN where a group's
    # weights are not all 1); None when weighted
    revenue_units: np.ndarray | None = None


# revenue is DECIMAL(18, 4): a unit's revenue x 10,000 is an integer, and float64 sums of integers
# are exact below 2^53 units (USD 9e11 per group)
REVENUE_UNITS_PER_USD = 10_000


def revenue_per_unit_usd(total_units: float, n: float) -> float | None:
    """Return an exact revenue total (0.0001 USD units) over ``n`` units, rounded half away from
    zero to 0.0001 USD: the rule of ``revenue_per_user_*_usd`` in sql/marts/fct_conversion_lift.sql
    (docs/data-contract.md), in integer arithmetic."""
    if not n > 0 or math.isnan(total_units):
        return None
    total, count = int(total_units), int(n)
    per_unit = (2 * abs(total) + count) // (2 * count)
    return (per_unit if total >= 0 else -per_unit) / REVENUE_UNITS_PER_USD


def _sides(
    c: Clusters,
    treated: np.ndarray,
    converted: np.ndarray,
    revenue: np.ndarray,
    weights: np.ndarray | None,
) -> tuple[Side, Side]:
    """Return the (engaged, comparison) sums; ``weights`` None means 1 for every unit.

    Both sides in one pass per sum: bin ``2 k`` holds cluster (or group) k's engaged units,
    ``2 k + 1`` its comparison units.
    """
    m = c.members
    other = (~treated[m]).astype(np.int64)
    in_cluster = c.cluster * 2 + other
    in_group = c.member_group * 2 + other
    n_clusters, n_groups = len(c.cluster_group), c.n_groups
    y, r = converted[m], revenue[m]
    w = None if weights is None else weights[m]

    def per_cluster(values: np.ndarray | None) -> np.ndarray:
        return np.bincount(in_cluster, weights=values, minlength=2 * n_clusters).reshape(-1, 2)

    def per_group(values: np.ndarray | None) -> np.ndarray:
        return np.bincount(in_group, weights=values, minlength=2 * n_groups).reshape(-1, 2)

    cw = per_cluster(w).astype(float)
    cwy = per_cluster(y if w is None else w * y)
    cwr = per_cluster(r if w is None else w * r)
    kept = None if w is None else w > 0
    ck = cw if kept is None else per_cluster(kept.astype(float))
    sums = {
        name: np.stack(
            [
                np.bincount(c.cluster_group, weights=values[:, side], minlength=n_groups)
                for side in (0, 1)
            ],
            axis=1,
        )
        for name, values in (("w", cw), ("wy", cwy), ("wr", cwr), ("users", ck > 0))
    }
    n_raw = per_group(None).astype(float)
    revenue_units = None
    if kept is None:
        n_kept, conversions, revenue_kept = n_raw, sums["wy"], sums["wr"]
        revenue_units = per_group(np.rint(r * REVENUE_UNITS_PER_USD))
    else:
        n_kept = per_group(kept.astype(float))
        conversions = per_group(np.where(kept, y, 0.0))
        revenue_kept = per_group(np.where(kept, r, 0.0))
    return tuple(  # type: ignore[return-value]
        Side(
            n_raw=n_raw[:, side],
            n_kept=n_kept[:, side],
            users_kept=sums["users"][:, side],
            conversions=conversions[:, side],
            revenue=revenue_kept[:, side],
            w=sums["w"][:, side],
            wy=sums["wy"][:, side],
            wr=sums["wr"][:, side],
            cw=cw[:, side],
            cwy=cwy[:, side],
            cwr=cwr[:, side],
            revenue_units=None if revenue_units is None else revenue_units[:, side],
        )
        for side in (0, 1)
    )


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)


@dataclass(frozen=True)
class GroupStats:
    """Both sides of every group of one dimension, and the three clustered variances."""

    clusters: Clusters
    engaged: Side
    comparison: Side  # for treatment attributes: the period's segment-all comparison side
    var_conversion: np.ndarray  # of log(cr1 / cr0)
    var_revenue: np.ndarray  # of log(rpu1 / rpu0)
    var_difference: np.ndarray  # of rpu1 - rpu0


def _influence(
    cw: np.ndarray, cs: np.ndarray, g: np.ndarray, w: np.ndarray, s: np.ndarray, ratio: bool
) -> np.ndarray:
    """Return each cluster's summed influence on one side: (S - m W) / (W_g [m_g])."""
    mean = _safe_div(s, w)
    inverse = _safe_div(np.ones_like(w), w * mean if ratio else w)
    return (cs - mean[g] * cw) * inverse[g]


def group_stats(
    c: Clusters,
    treated: np.ndarray,
    converted: np.ndarray,
    revenue: np.ndarray,
    weights: np.ndarray | None,
    whole: GroupStats | None = None,
) -> GroupStats:
    """Return every group's sums and variances (``weights`` None: 1 for every unit);
    ``whole`` (segment ``all`` of the same grain and weights) is required for
    treatment-attribute dimensions."""
    engaged, comparison = _sides(c, treated, converted, revenue, weights)
    g = c.cluster_group
    if not c.dimension.of_treated:
        variances = []
        for column, ratio in (("cwy", True), ("cwr", True), ("cwr", False)):
            s1, s0 = ("wy", "wy") if column == "cwy" else ("wr", "wr")
            a = _influence(
                engaged.cw, getattr(engaged, column), g, engaged.w, getattr(engaged, s1), ratio
            )
            b = _influence(
                comparison.cw,
                getattr(comparison, column),
                g,
                comparison.w,
                getattr(comparison, s0),
                ratio,
            )
            variances.append(np.bincount(g, weights=(a - b) ** 2, minlength=c.n_groups))
        # per-cluster sums are kept only where treatment attributes will need them: the
        # comparison side of segment all (computed without ``whole``)
        kept = comparison if whole is None else _group_sums_only(comparison)
        return GroupStats(c, _group_sums_only(engaged), kept, *variances)
    if whole is None:
        raise ValueError(f"dimension {c.dimension.name} needs the segment-all statistics")
    n_levels = max(len(c.dimension.levels), 1)
    period_of_group = np.arange(c.n_groups) // n_levels
    base = whole.comparison
    comparison = Side(
        **{
            name: getattr(base, name)[period_of_group]
            for name in ("n_raw", "n_kept", "users_kept", "conversions", "revenue", "w", "wy", "wr")
        },
        cw=np.zeros(0),
        cwy=np.zeros(0),
        cwr=np.zeros(0),
        revenue_units=None if base.revenue_units is None else base.revenue_units[period_of_group],
    )
    # the user's cluster of segment all in the same period (it exists: the unit is in it)
    at = np.searchsorted(whole.clusters.user_period, c.user_period)
    whole_g = whole.clusters.cluster_group
    variances = []
    for column, ratio in (("cwy", True), ("cwr", True), ("cwr", False)):
        s = "wy" if column == "cwy" else "wr"
        a = _influence(
            engaged.cw, getattr(engaged, column), g, engaged.w, getattr(engaged, s), ratio
        )
        b_whole = _influence(
            base.cw, getattr(base, column), whole_g, base.w, getattr(base, s), ratio
        )
        b = b_whole[at]
        b_period = np.bincount(whole_g, weights=b_whole**2, minlength=whole.clusters.n_groups)
        inside = np.bincount(g, weights=(a - b) ** 2 - b**2, minlength=c.n_groups)
        variances.append(inside + b_period[period_of_group])
    return GroupStats(c, _group_sums_only(engaged), comparison, *variances)


def _group_sums_only(side: Side) -> Side:
    """Return ``side`` without its per-cluster sums (rows need only the per-group ones)."""
    empty = np.zeros(0)
    return replace(side, cw=empty, cwy=empty, cwr=empty)


def _ratio(w1: float, w0: float, s1: float, s0: float, variance: float) -> ls.RatioEstimate:
    if w1 <= 0 or w0 <= 0:
        return ls.RatioEstimate(None, None, None, None, None, None, None)
    return ls.ratio_from_means(s1 / w1, s0 / w0, math.sqrt(variance) if variance >= 0 else 0.0)


def comparison_row(stats: GroupStats, group: int) -> dict[str, Any]:
    """Return the lift columns of one group, as ``attribution.lift`` writes them."""
    e, c = stats.engaged, stats.comparison
    w1, w0 = float(e.w[group]), float(c.w[group])
    conv = _ratio(
        w1, w0, float(e.wy[group]), float(c.wy[group]), float(stats.var_conversion[group])
    )
    rev = _ratio(w1, w0, float(e.wr[group]), float(c.wr[group]), float(stats.var_revenue[group]))
    n1, n0 = int(e.n_kept[group]), int(c.n_kept[group])
    diff = diff_se = None
    if w1 > 0 and w0 > 0:
        diff = float(e.wr[group]) / w1 - float(c.wr[group]) / w0
        diff_se = math.sqrt(max(float(stats.var_difference[group]), 0.0))
    return {
        "n_engaged": n1,
        "n_comparison": n0,
        "n_engaged_users": int(e.users_kept[group]),
        "n_comparison_users": int(c.users_kept[group]),
        "conversions_engaged": round(float(e.conversions[group])),
        "conversions_comparison": round(float(c.conversions[group])),
        "cr_engaged": conv.m1,
        "cr_comparison": conv.m0,
        "lift": conv.lift,
        "lift_ci_low": conv.ci_low,
        "lift_ci_high": conv.ci_high,
        "p_value": conv.p_value,
        "revenue_engaged_usd": float(e.revenue[group]),
        "revenue_comparison_usd": float(c.revenue[group]),
        "revenue_per_user_engaged_usd": _revenue_per_user(e, group, rev.m1),
        "revenue_per_user_comparison_usd": _revenue_per_user(c, group, rev.m0),
        "revenue_lift": rev.lift,
        "revenue_lift_ci_low": rev.ci_low,
        "revenue_lift_ci_high": rev.ci_high,
        "incremental_conversions": n1 * (conv.m1 - conv.m0) if conv.m1 is not None else None,
        "incremental_revenue_usd": n1 * diff if diff is not None else None,
        "incremental_revenue_ci_low": n1 * (diff - Z_95 * diff_se) if diff is not None else None,
        "incremental_revenue_ci_high": n1 * (diff + Z_95 * diff_se) if diff is not None else None,
    }


def _revenue_per_user(side: Side, group: int, weighted_mean: float | None) -> float | None:
    """Unit weights: the SQL model's exact rule (``revenue_per_unit_usd``); weighted: the mean
    (rounded to 0.0001 USD by the DECIMAL column it is written to)."""
    if side.revenue_units is None or math.isnan(side.revenue_units[group]):
        return weighted_mean
    return revenue_per_unit_usd(float(side.revenue_units[group]), float(side.n_kept[group]))


def has_both_sides(stats: GroupStats, group: int) -> bool:
    """A segment is compared when it has engaged and comparison units (trimmed ones count)."""
    return stats.engaged.n_raw[group] > 0 and stats.comparison.n_raw[group] > 0


@dataclass(frozen=True)
class Cuped:
    """CUPED per group: theta, and the lift of the arm means of y - theta (x - mean x)."""

    theta: np.ndarray
    m1: np.ndarray
    m0: np.ndarray
    variance: np.ndarray  # of log(m1 / m0), one unit per cluster (unclustered)


def cuped(c: Clusters, treated: np.ndarray, y: np.ndarray, x: np.ndarray) -> Cuped:
    """Return ``lift_stats.cuped_ratio`` of every group (units are their own clusters)."""
    g, m = c.member_group, c.members
    t, y, x = treated[m], y[m].astype(float), x[m].astype(float)

    def per_group(values: np.ndarray) -> np.ndarray:
        return np.bincount(g, weights=values, minlength=c.n_groups)

    n = per_group(np.ones(len(m)))
    dx = x - _safe_div(per_group(x), n)[g]
    dy = y - _safe_div(per_group(y), n)[g]
    var = _safe_div(per_group(dx * dx), n)
    theta = np.where((n >= 2) & (var > 0), _safe_div(per_group(dx * dy), n * var), 0.0)
    adjusted = y - theta[g] * dx
    n1, n0 = per_group(t.astype(float)), per_group((~t).astype(float))
    m1 = _safe_div(per_group(np.where(t, adjusted, 0.0)), n1)
    m0 = _safe_div(per_group(np.where(t, 0.0, adjusted)), n0)
    influence = np.where(
        t,
        _safe_div(adjusted - m1[g], (n1 * m1)[g]),
        -_safe_div(adjusted - m0[g], (n0 * m0)[g]),
    )
    return Cuped(theta, m1, m0, per_group(influence**2))


def cuped_row(stats: Cuped, group: int) -> dict[str, Any]:
    """Return the CUPED columns of one group."""
    est = ls.ratio_from_means(
        float(stats.m1[group]), float(stats.m0[group]), math.sqrt(float(stats.variance[group]))
    )
    return {
        "cuped_theta": float(stats.theta[group]),
        "lift_cuped": est.lift,
        "lift_cuped_ci_low": est.ci_low,
        "lift_cuped_ci_high": est.ci_high,
    }
