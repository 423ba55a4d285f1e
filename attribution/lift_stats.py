"""Estimators behind ``fct_conversion_lift`` (pure numpy/scipy, no I/O).

Every lift is a ratio of two (weighted) means ``m1 / m0 - 1``. Its 95% interval is a delta-method
interval on ``log(m1 / m0)`` whose variance is the sum over clusters (users) of the squared,
summed influence values, so that several visitor-days of one user count as one correlated unit.
With one unit per cluster and unit weights this is exactly the binomial formula
``(1 - p1) / x1 + (1 - p0) / x0`` used by the SQL model (``attribution.stats``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from attribution.stats import Z_95


@dataclass(frozen=True)
class RatioEstimate:
    """m1 / m0 - 1 with its 95% interval and two-sided p-value (None where undefined)."""

    m1: float | None
    m0: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    se_log: float | None


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def two_sided_p(z: float) -> float:
    """Two-sided normal p-value of a z statistic."""
    return float(math.erfc(abs(z) / math.sqrt(2)))


@dataclass(frozen=True)
class ClusterIndex:
    """Dense codes (0..n-1, in the order of np.unique) of the cluster of each unit.

    Build it once per comparison (``ClusterIndex.of``) and pass it wherever ``clusters`` are
    taken: the sums per cluster are then a ``bincount`` instead of a sort each time.
    """

    codes: np.ndarray
    n: int

    @classmethod
    def of(cls, clusters: np.ndarray) -> ClusterIndex:
        clusters = np.asarray(clusters)
        if len(clusters) == 0:
            return cls(np.zeros(0, dtype=np.int64), 0)
        if clusters.dtype.kind in "iu" and bool(np.all(clusters[1:] >= clusters[:-1])):
            # sorted integer ids (units sorted by user): codes in one pass, no sort
            change = np.empty(len(clusters), dtype=bool)
            change[0] = True
            np.not_equal(clusters[1:], clusters[:-1], out=change[1:])
            codes = np.cumsum(change) - 1
        else:
            _, codes = np.unique(clusters, return_inverse=True)
        return cls(codes.astype(np.int64), int(codes.max()) + 1)

    def distinct(self, mask: np.ndarray) -> int:
        """Return how many clusters have at least one unit in ``mask``."""
        return int(np.count_nonzero(np.bincount(self.codes[mask], minlength=self.n)))

    def sums(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes, weights=values, minlength=self.n)


def cluster_sums(values: np.ndarray, clusters: np.ndarray | ClusterIndex) -> np.ndarray:
    """Return the sum of ``values`` per distinct cluster id (order of np.unique)."""
    if isinstance(clusters, ClusterIndex):
        return clusters.sums(values)
    _, inverse = np.unique(clusters, return_inverse=True)
    return np.bincount(inverse, weights=values)


def weighted_ratio(
    y: np.ndarray,
    treated: np.ndarray,
    weights: np.ndarray | None = None,
    clusters: np.ndarray | ClusterIndex | None = None,
) -> RatioEstimate:
    """Ratio of the weighted mean of ``y`` among treated to that among the others.

    Variance of log(ratio): sum over clusters of (sum of influence values)^2, influence
    ``w (y - m1) / (W1 m1)`` for treated units and ``-w (y - m0) / (W0 m0)`` for the others
    (propensity weights are treated as known).
    """
    y = np.asarray(y, dtype=float)
    t = np.asarray(treated, dtype=bool)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    w1, w0 = w[t].sum(), w[~t].sum()
    if w1 <= 0 or w0 <= 0:
        return RatioEstimate(None, None, None, None, None, None, None)
    m1 = float((w[t] * y[t]).sum() / w1)
    m0 = float((w[~t] * y[~t]).sum() / w0)
    if m0 == 0 or m1 == 0:
        return ratio_from_means(m1, m0, math.nan)
    influence = np.where(t, w * (y - m1) / (w1 * m1), -w * (y - m0) / (w0 * m0))
    per_cluster = influence if clusters is None else cluster_sums(influence, clusters)
    return ratio_from_means(m1, m0, math.sqrt(float((per_cluster**2).sum())))


def ratio_from_means(m1: float, m0: float, se_log: float) -> RatioEstimate:
    """Return the lift m1 / m0 - 1 with its delta-method interval from the standard error of
    log(m1 / m0) (not used when either mean is 0: no lift, or no interval)."""
    if m0 == 0:
        return RatioEstimate(m1, m0, None, None, None, None, None)
    lift = m1 / m0 - 1
    if m1 / m0 <= 0:
        # no log-scale interval: a zero mean, or CUPED-adjusted means of opposite signs
        return RatioEstimate(m1, m0, lift, None, None, None, None)
    log_ratio = math.log(m1 / m0)
    if se_log == 0:
        return RatioEstimate(m1, m0, lift, lift, lift, None, 0.0)
    p = two_sided_p(log_ratio / se_log)
    return RatioEstimate(
        m1,
        m0,
        lift,
        _ratio_bound(log_ratio - Z_95 * se_log),
        _ratio_bound(log_ratio + Z_95 * se_log),
        p,
        se_log,
    )


def _ratio_bound(log_bound: float) -> float | None:
    """Return exp(log_bound) - 1, None when it overflows a double (an interval so wide, from
    tiny means, that its upper end is unbounded)."""
    return math.exp(log_bound) - 1 if log_bound < _MAX_LOG else None


_MAX_LOG = math.log(sys.float_info.max)


def weighted_difference(
    y: np.ndarray,
    treated: np.ndarray,
    weights: np.ndarray | None = None,
    clusters: np.ndarray | ClusterIndex | None = None,
) -> tuple[float | None, float | None]:
    """Return (m1 - m0, its standard error) with the same clustered influence values."""
    y = np.asarray(y, dtype=float)
    t = np.asarray(treated, dtype=bool)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    w1, w0 = w[t].sum(), w[~t].sum()
    if w1 <= 0 or w0 <= 0:
        return None, None
    m1 = (w[t] * y[t]).sum() / w1
    m0 = (w[~t] * y[~t]).sum() / w0
    influence = np.where(t, w * (y - m1) / w1, -w * (y - m0) / w0)
    per_cluster = influence if clusters is None else cluster_sums(influence, clusters)
    return float(m1 - m0), float(math.sqrt((per_cluster**2).sum()))


# rows per block of the blockwise matrix products: temporaries of a few MB whatever the rows
BLOCK_ROWS = 1 << 16


def row_blocks(n: int) -> list[slice]:
    """Return consecutive row slices of at most ``BLOCK_ROWS`` rows covering ``n`` rows."""
    return [slice(i, min(i + BLOCK_ROWS, n)) for i in range(0, n, BLOCK_ROWS)]


def fit_logistic(
    x: np.ndarray, t: np.ndarray, ridge: float = 1e-6, max_iter: int = 50
) -> np.ndarray:
    """Return logistic-regression coefficients (first = intercept) fitted by Newton-Raphson.

    ``x`` has no intercept column; a tiny ridge penalty keeps separated or constant columns
    finite. Gradient and Hessian are summed block by block over rows, so memory stays that of
    ``x`` itself.
    """
    k = x.shape[1]
    beta = np.zeros(k + 1)
    y = np.asarray(t, dtype=float)
    penalty = ridge * np.eye(k + 1)
    penalty[0, 0] = 0.0
    for _ in range(max_iter):
        grad = -(penalty @ beta)
        hess = penalty.copy()
        for rows in row_blocks(len(x)):
            xb = x[rows]
            p = predict_logistic(beta, xb)
            residual = y[rows] - p
            v = p * (1 - p)
            xv = xb * v[:, None]
            grad[0] += residual.sum()
            grad[1:] += xb.T @ residual
            hess[0, 0] += v.sum()
            column = xv.sum(axis=0)
            hess[0, 1:] += column
            hess[1:, 0] += column
            hess[1:, 1:] += xv.T @ xb
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def predict_logistic(beta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Return fitted probabilities for covariates ``x`` (no intercept column)."""
    eta = np.clip(beta[0] + x @ beta[1:], -30, 30)
    return 1 / (1 + np.exp(-eta))


def smd(x: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    """Standardised mean difference of one covariate: (mean_t - mean_c) / sqrt((v_t + v_c) / 2).

    The denominator always uses the unweighted variances, so before/after values compare.
    """
    x = np.asarray(x, dtype=float)
    t = np.asarray(treated, dtype=bool)
    if t.sum() < 2 or (~t).sum() < 2:
        return None
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    mean_t = np.average(x[t], weights=w[t])
    mean_c = np.average(x[~t], weights=w[~t])
    return smd_of(float(mean_t), float(mean_c), x[t].var(ddof=1), x[~t].var(ddof=1))


def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """Return CUPED's theta = cov(y, x) / var(x) over all units (0 if x is constant)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    var = x.var()
    if len(x) < 2 or var == 0:
        return 0.0
    return float(((x - x.mean()) * (y - y.mean())).mean() / var)


def cuped_ratio(y: np.ndarray, x: np.ndarray, treated: np.ndarray) -> tuple[float, RatioEstimate]:
    """Return (theta, ratio of arm means of y - theta (x - mean x)) with its interval."""
    theta = cuped_theta(y, x)
    x = np.asarray(x, dtype=float)
    adjusted = np.asarray(y, dtype=float) - theta * (x - x.mean())
    return theta, weighted_ratio(adjusted, treated)


def srm_p_value(n_treatment: int, n_holdout: int, expected_holdout_share: float) -> float | None:
    """Chi-square (1 df) p-value of the arm counts against the expected holdout share."""
    total = n_treatment + n_holdout
    if total == 0 or not 0 < expected_holdout_share < 1:
        return None
    expected_h = total * expected_holdout_share
    expected_t = total - expected_h
    chi2 = (n_treatment - expected_t) ** 2 / expected_t + (n_holdout - expected_h) ** 2 / expected_h
    return float(sps.chi2.sf(chi2, 1))


def benjamini_hochberg(p_values: list[float | None]) -> list[float | None]:
    """Return Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1); None stays."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    out: list[float | None] = [None] * len(p_values)
    m = len(present)
    if m == 0:
        return out
    present.sort()
    running = 1.0
    for rank in range(m, 0, -1):
        p, i = present[rank - 1]
        running = min(running, p * m / rank)
        out[i] = running
    return out


def clustered_mean(
    y: np.ndarray, clusters: np.ndarray
) -> tuple[float | None, float | None, float | None]:
    """Return (mean of ``y``, 95% interval) with a cluster-robust standard error.

    SE = sqrt(sum over clusters of (sum of (y - mean))^2) / n: the several units of one cluster
    (visitor-days of one user) are not treated as independent.
    """
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return None, None, None
    mean = float(y.mean())
    se = math.sqrt(float((cluster_sums(y - mean, clusters) ** 2).sum())) / len(y)
    return mean, mean - Z_95 * se, mean + Z_95 * se


def smd_columns(
    x: np.ndarray,
    treated: np.ndarray,
    weights: np.ndarray | None = None,
    keep: np.ndarray | None = None,
) -> list:
    """Return ``smd`` of every column of ``x`` over the rows where ``keep`` (default all), None
    where undefined. No copy of ``x``: sums are matrix-vector products and, for the variances,
    blocks of rows."""
    t = np.asarray(treated, dtype=bool)
    kept = np.ones(len(t), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    in_t, in_c = (t & kept).astype(float), (~t & kept).astype(float)
    n_t, n_c = in_t.sum(), in_c.sum()
    if n_t < 2 or n_c < 2:
        return [None] * x.shape[1]
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=float)
    mean_t = ((w * in_t) @ x) / (w * in_t).sum()
    mean_c = ((w * in_c) @ x) / (w * in_c).sum()
    # unweighted variances of each side (ddof 1), two passes
    plain_t, plain_c = (in_t @ x) / n_t, (in_c @ x) / n_c
    squares_t, squares_c = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for rows in row_blocks(len(x)):
        squares_t += in_t[rows] @ (x[rows] - plain_t) ** 2
        squares_c += in_c[rows] @ (x[rows] - plain_c) ** 2
    var_t, var_c = squares_t / (n_t - 1), squares_c / (n_c - 1)
    return [
        smd_of(mt, mc, vt, vc)
        for mt, mc, vt, vc in zip(
            mean_t.tolist(), mean_c.tolist(), var_t.tolist(), var_c.tolist(), strict=True
        )
    ]


# a pooled SD at or below this (on standardised covariates) is a column constant on both sides
# up to rounding: its blockwise variance is rounding noise, and a mean difference divided by it
# would be an arbitrary number (e.g. -1.76 for a column equal on every unit)
DEGENERATE_SD = 1e-9


def smd_of(mt: float, mc: float, vt: float, vc: float) -> float | None:
    """Return the standardised mean difference from the side means and variances (ddof 1);
    a column constant on both sides up to rounding gives 0.0 (same means) or None."""
    pooled = math.sqrt(max(vt + vc, 0.0) / 2)
    if pooled <= DEGENERATE_SD:
        return 0.0 if abs(mt - mc) <= DEGENERATE_SD else None
    return float((mt - mc) / pooled)
