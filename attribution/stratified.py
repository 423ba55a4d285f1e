"""Stratified (Mantel-Haenszel) ratios of two groups, with a user-clustered bootstrap interval.

Used to compare groups that are not spread evenly over time or place (an assistant model version
that replaced another mid-period): each unit belongs to a stratum (e.g. marketplace x calendar
day), and only strata that hold both groups inform the comparison.

For stratum ``s`` with group sizes ``n1_s``, ``n0_s`` (``N_s = n1_s + n0_s``) and outcome totals
``t1_s``, ``t0_s``::

    ratio = sum_s(t1_s * n0_s / N_s) / sum_s(t0_s * n1_s / N_s)

For a 0/1 outcome this is the Mantel-Haenszel risk ratio; for a money outcome it is the ratio of
the two groups' mean outcomes standardised to the same strata weights ``n1_s n0_s / N_s``.
Strata where one group is absent get weight 0.

The interval is a percentile bootstrap that resamples clusters (users) with Poisson(1) weights, so
that the several visitor-days of one user are not treated as independent. Replicate weights depend
only on ``(seed, number of clusters, replicate)``: two calls with the same seed and the same
cluster codes use the same replicates, which keeps the covariance of two ratios when their
quotient is taken (``ratio_of_ratios``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_REPLICATES = 400
DEFAULT_SEED = 20260101


@dataclass(frozen=True)
class StratifiedRatio:
    """A stratified ratio, its 95% bootstrap interval and what informed it."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    n_strata_informative: int
    n_units_informative: int
    replicates: np.ndarray  # the bootstrap estimates (NaN where a replicate had no information)


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Return dense integer codes of ``values`` and how many distinct values there are."""
    uniques, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), len(uniques)


def _ratio(
    y: np.ndarray, group: np.ndarray, strata: np.ndarray, n_strata: int, w: np.ndarray
) -> float:
    """Return the stratified ratio under unit weights ``w`` (NaN if undefined)."""
    g1, g0 = w * group, w * ~group
    n1 = np.bincount(strata, weights=g1, minlength=n_strata)
    n0 = np.bincount(strata, weights=g0, minlength=n_strata)
    t1 = np.bincount(strata, weights=g1 * y, minlength=n_strata)
    t0 = np.bincount(strata, weights=g0 * y, minlength=n_strata)
    total = n1 + n0
    ok = (n1 > 0) & (n0 > 0)
    numerator = float(np.sum(t1[ok] * n0[ok] / total[ok]))
    denominator = float(np.sum(t0[ok] * n1[ok] / total[ok]))
    if not ok.any() or denominator <= 0:
        return float("nan")
    return numerator / denominator


def cluster_replicate_weights(
    n_clusters: int, replicates: int, seed: int = DEFAULT_SEED
) -> Iterator[np.ndarray]:
    """Yield ``replicates`` arrays of Poisson(1) weights, one weight per cluster, reproducibly."""
    rng = np.random.default_rng([seed, n_clusters])
    for _ in range(replicates):
        yield rng.poisson(1.0, n_clusters).astype(np.float64)


def _finite(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _percentiles(replicates: np.ndarray) -> tuple[float | None, float | None]:
    valid = replicates[np.isfinite(replicates)]
    if len(valid) < 20:  # too few informative replicates for a 95% percentile interval
        return None, None
    low, high = np.percentile(valid, [2.5, 97.5])
    return float(low), float(high)


def stratified_ratio(
    y: np.ndarray,
    group: np.ndarray,
    strata: np.ndarray,
    clusters: np.ndarray,
    *,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    n_clusters: int | None = None,
    weights: np.ndarray | None = None,
) -> StratifiedRatio:
    """Return the stratified ratio of group 1 over group 0 with its clustered bootstrap interval.

    ``y`` is the outcome (0/1 or money), ``group`` a boolean array (True = group 1), ``strata``
    and ``clusters`` any arrays of labels (e.g. "DE|2026-09-14" and user ids). With
    ``n_clusters``, ``clusters`` are integer codes in ``[0, n_clusters)`` shared with other calls:
    ratios of different subsets of the same users then use the same replicates (see
    ``ratio_of_ratios``). ``weights`` are fixed unit weights (e.g. propensity weights, treated as
    known) multiplied into every replicate's cluster weights. Raises ``ValueError`` if the
    arrays differ in length.
    """
    y = np.asarray(y, dtype=np.float64)
    group = np.asarray(group, dtype=bool)
    if not (len(y) == len(group) == len(strata) == len(clusters)):
        raise ValueError("y, group, strata and clusters must have the same length")
    strata_codes, n_strata = _codes(np.asarray(strata))
    if n_clusters is None:
        cluster_codes, n_clusters = _codes(np.asarray(clusters))
    else:
        cluster_codes = np.asarray(clusters, dtype=np.int64)
        if len(cluster_codes) and (cluster_codes.min() < 0 or cluster_codes.max() >= n_clusters):
            raise ValueError("cluster codes must lie in [0, n_clusters)")
    unit = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(unit) != len(y):
        raise ValueError("weights must have the same length as y")
    n1 = np.bincount(strata_codes, weights=unit * group, minlength=n_strata)
    n0 = np.bincount(strata_codes, weights=unit * ~group, minlength=n_strata)
    informative = (n1 > 0) & (n0 > 0)
    estimate = _ratio(y, group, strata_codes, n_strata, unit) if len(y) else float("nan")
    draws = np.array(
        [
            _ratio(y, group, strata_codes, n_strata, unit * replicate[cluster_codes])
            for replicate in cluster_replicate_weights(n_clusters, replicates, seed)
        ]
        if len(y)
        else [],
        dtype=np.float64,
    )
    low, high = _percentiles(draws)
    return StratifiedRatio(
        ratio=_finite(estimate),
        ci_low=low,
        ci_high=high,
        n_strata_informative=int(informative.sum()),
        n_units_informative=int((n1 + n0)[informative].sum()),
        replicates=draws,
    )


def ratio_of_ratios(
    numerator: StratifiedRatio, denominator: StratifiedRatio
) -> tuple[float | None, float | None, float | None]:
    """Return (numerator.ratio / denominator.ratio, 95% interval) from paired replicates.

    Both ratios must come from ``stratified_ratio`` with the same seed, replicate count and
    shared cluster codes (its ``n_clusters``), so that replicate ``b`` of each used the same
    resampled users.
    """
    if len(numerator.replicates) != len(denominator.replicates):
        raise ValueError("the two ratios were bootstrapped with different replicate counts")
    if numerator.ratio is None or denominator.ratio is None or denominator.ratio == 0:
        return None, None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = numerator.replicates / denominator.replicates
    low, high = _percentiles(draws)
    return numerator.ratio / denominator.ratio, low, high
