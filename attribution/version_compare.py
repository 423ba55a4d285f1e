"""Did the assistant's new model version change conversion, lift or attributed revenue?

A model version is not assigned at random across the period: the new one replaces the old one
from some day on. Comparing "users of v2" with "users of v1" over the whole period therefore
compares late days with early days (season, promotions, the end of the data where orders are
still to come) and, where the rollout differs by marketplace, one market with another. The
``model_version=`` segments of ``fct_conversion_lift`` have exactly that problem: each compares a
version's engaged visitor-days with every non-engaged visitor-day of the period.

This module controls for marketplace and calendar by stratifying on (marketplace, calendar day)
(``attribution.stratified``):

* ``conversion`` / ``revenue_per_unit_usd`` / ``attributed_revenue_per_unit_usd``: engaged
  visitor-days whose first session used the candidate version vs the baseline version, on the
  same day in the same marketplace. Only days when both versions answered inform it (a rollout
  ramp); if the versions never overlapped, the contrast is undefined and the result says so.
* ``lift``: each version's lift over non-engaged visitor-days of the same day and marketplace,
  adjusted for who chooses to use the assistant with the ATT propensity weights of the lift's
  ``adjusted`` method (``attribution.lift.att_weights``: pre-period orders, revenue, visit days,
  tenure, marketplace, channel; holdout users, who cannot engage, left out), then the relative
  change of (1 + lift) from the baseline to the candidate. This uses every day of both versions;
  the non-engaged visitors absorb the calendar. Without the adjustment the lift of a later
  version also moves with the mix of users who engage (it grows as returning buyers accumulate),
  which is not the version's doing.

Units are the visitor-days of ``attribution.lift`` (same index time, same conversion windows), a
window's units limited to those whose whole window lies inside the data. Intervals are 95%
percentile intervals of a bootstrap over users.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

from attribution.config import RULE_MODELS
from attribution.lift import COVARIATES, PRE_DAYS, att_weights, load_units
from attribution.lift_stats import clustered_mean
from attribution.stratified import (
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    StratifiedRatio,
    ratio_of_ratios,
    stratified_ratio,
)
from attribution.warehouse import require_tables

NOT_ENGAGED = "(not engaged)"
CONTRAST_METRICS: tuple[str, ...] = (
    "conversion",
    "revenue_per_unit_usd",
    "attributed_revenue_per_unit_usd",
    "lift",
)


@dataclass(frozen=True)
class VersionComparison:
    """Per-version figures, controlled contrasts of candidate vs baseline, and a plain note."""

    window_days: int
    baseline: str
    candidate: str
    start_date: date
    end_date: date
    by_version: pl.DataFrame
    contrasts: pl.DataFrame
    note: str


def data_range(con: duckdb.DuckDBPyConnection) -> tuple[date, date]:
    """Return the first and last day of loaded visits and sessions."""
    first, last = con.execute(
        "SELECT min(d), max(d) FROM (SELECT visit_date AS d FROM stg_visits "
        "UNION ALL SELECT session_date FROM assistant_sessions)"
    ).fetchall()[0]
    if first is None:
        raise LookupError("the warehouse has no visits or sessions: run `attribution run` first")
    return first, last


def version_units(
    con: duckdb.DuckDBPyConnection, window_days: int = 7, credit_model: str = "last_touch"
) -> pl.DataFrame:
    """Return one row per visitor-day whose ``window_days`` window lies inside the data.

    Columns: user_id, activity_date, marketplace, channel, is_engaged, is_holdout, model_version
    (of the day's first session; ``(not engaged)`` otherwise), the propensity covariates of
    ``attribution.lift.COVARIATES``, converted (0/1, a placed order within the window after the
    index time), revenue_usd (placed revenue in the window), attributed_revenue_usd (revenue
    that ``credit_model`` at user scope and this window credits to the day's sessions).
    """
    if credit_model not in RULE_MODELS:
        raise ValueError(f"credit_model must be one of {', '.join(RULE_MODELS)}")
    require_tables(con, "stg_visits", "assistant_sessions", "int_orders", "fct_attribution")
    start, end = data_range(con)
    units, outcomes = load_units(con, start, end)
    outcomes = outcomes.filter(pl.col("window_days") == window_days)
    if outcomes.is_empty():
        raise ValueError(f"window_days={window_days} is not one of the warehouse's windows")
    attributed = con.sql(
        f"""
        SELECT user_id, cast(session_start AS DATE) AS activity_date,
            sum({credit_model} * cast(line_revenue_usd AS DOUBLE)) AS attributed_revenue_usd
        FROM fct_attribution
        WHERE scope = 'user' AND window_days = $w
        GROUP BY 1, 2
        """,
        params={"w": window_days},
    ).pl()
    return (
        units.join(outcomes, on=["user_id", "activity_date"], how="inner")
        .filter(pl.col("activity_date") + pl.duration(days=window_days) <= pl.lit(end))
        .join(attributed, on=["user_id", "activity_date"], how="left")
        .select(
            "user_id",
            "activity_date",
            "marketplace",
            "channel",
            "is_engaged",
            "is_holdout",
            *COVARIATES,
            pl.when(pl.col("is_engaged"))
            .then(pl.col("model_version").fill_null("(unknown)"))
            .otherwise(pl.lit(NOT_ENGAGED))
            .alias("model_version"),
            pl.col("converted").cast(pl.Int64),
            pl.col("revenue").alias("revenue_usd"),
            pl.col("attributed_revenue_usd").fill_null(0.0),
        )
        .sort("activity_date", "user_id")
    )


def daily_version_mix(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return one row per (session date x model version): sessions, users, share of the day's
    sessions, and ``versions_that_day`` (how many versions answered that day)."""
    require_tables(con, "assistant_sessions")
    return con.sql(
        """
        SELECT session_date AS date, coalesce(model_version, '(unknown)') AS model_version,
            count(*) AS sessions, count(DISTINCT user_id) AS users,
            cast(count(*) AS DOUBLE)
                / nullif(sum(count(*)) OVER (PARTITION BY session_date), 0) AS share_of_sessions,
            count(*) OVER (PARTITION BY session_date) AS versions_that_day
        FROM assistant_sessions GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2 NULLS LAST
        """
    ).pl()


def _versions(units: pl.DataFrame) -> list[str]:
    """Return the engaged model versions in order of first appearance (then by name)."""
    return (
        units.filter(pl.col("is_engaged"))
        .group_by("model_version")
        .agg(pl.col("activity_date").min().alias("first"))
        .sort("first", "model_version")["model_version"]
        .to_list()
    )


def _arrays(units: pl.DataFrame) -> dict[str, np.ndarray]:
    strata = units["marketplace"].fill_null("?") + "|" + units["activity_date"].cast(pl.Utf8)
    return {
        "strata": strata.to_numpy(),
        "clusters": units["user_code"].to_numpy(),
        "version": units["model_version"].to_numpy(),
        "conversion": units["converted"].to_numpy().astype(np.float64),
        "revenue_per_unit_usd": units["revenue_usd"].to_numpy(),
        "attributed_revenue_per_unit_usd": units["attributed_revenue_usd"].to_numpy(),
    }


def _ratio(
    arrays: dict[str, np.ndarray],
    metric: str,
    group1: str,
    group0: str,
    n_users: int,
    replicates: int,
    seed: int,
    weights: np.ndarray | None = None,
) -> StratifiedRatio:
    keep = (arrays["version"] == group1) | (arrays["version"] == group0)
    if weights is not None:
        keep &= weights > 0
    return stratified_ratio(
        arrays[metric][keep],
        arrays["version"][keep] == group1,
        arrays["strata"][keep],
        arrays["clusters"][keep],
        replicates=replicates,
        seed=seed,
        n_clusters=n_users,
        weights=None if weights is None else weights[keep],
    )


def propensity_weights(units: pl.DataFrame) -> np.ndarray:
    """Return ATT weights of ``units`` (engaged 1, comparison p / (1 - p), trimmed 0).

    Holdout users get 0: they could not engage, so they are nobody's counterpart. So do units of
    the first ``PRE_DAYS`` days of data: their pre-period covariates are cut off by the start of
    the data, and an adjustment on incomplete history leaves bias that changes over the period.
    """
    history_from = units["activity_date"].min() + timedelta(days=PRE_DAYS)
    eligible = ~units["is_holdout"].to_numpy() & (units["activity_date"] >= history_from).to_numpy()
    weights = np.zeros(units.height)
    part = units.filter(pl.Series(eligible))
    t = part["is_engaged"].to_numpy()
    if t.sum() >= 2 and (~t).sum() >= 2:
        weights[eligible] = att_weights(part)[1]
    return weights


def _minus_one(x: float | None) -> float | None:
    return None if x is None else x - 1.0


def _version_row(
    units: pl.DataFrame, arrays: dict[str, np.ndarray], version: str, lift: StratifiedRatio | None
) -> dict[str, Any]:
    part = units.filter(pl.col("model_version") == version)
    mask = arrays["version"] == version
    cr, cr_low, cr_high = clustered_mean(arrays["conversion"][mask], arrays["clusters"][mask])
    return {
        "model_version": version,
        "first_date": part["activity_date"].min(),
        "last_date": part["activity_date"].max(),
        "units": part.height,
        "users": part["user_id"].n_unique(),
        "conversion_rate": cr,
        "conversion_rate_ci_low": cr_low,
        "conversion_rate_ci_high": cr_high,
        "revenue_per_unit_usd": float(part["revenue_usd"].mean()) if part.height else None,
        "attributed_revenue_per_unit_usd": (
            float(part["attributed_revenue_usd"].mean()) if part.height else None
        ),
        "lift_vs_same_day": None if lift is None else _minus_one(lift.ratio),
        "lift_ci_low": None if lift is None else _minus_one(lift.ci_low),
        "lift_ci_high": None if lift is None else _minus_one(lift.ci_high),
        # units (this version's and same-day comparison units) that informed the lift
        "lift_units_informative": None if lift is None else lift.n_units_informative,
    }


def _contrast_row(
    metric: str,
    estimate: tuple[float | None, float | None, float | None],
    informative: list[StratifiedRatio],
    method: str,
) -> dict[str, Any]:
    """One contrast; its informative counts are the smallest of the ratios it is built from."""
    value, low, high = estimate
    return {
        "metric": metric,
        "relative_change": _minus_one(value),
        "ci_low": _minus_one(low),
        "ci_high": _minus_one(high),
        "n_strata_informative": min(r.n_strata_informative for r in informative),
        "n_units_informative": min(r.n_units_informative for r in informative),
        "method": method,
    }


def compare_model_versions(
    con: duckdb.DuckDBPyConnection,
    window_days: int = 7,
    baseline: str | None = None,
    candidate: str | None = None,
    *,
    credit_model: str = "last_touch",
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
) -> VersionComparison:
    """Compare two assistant model versions, controlling for marketplace and calendar day.

    ``baseline`` / ``candidate`` default to the first and the last version to appear. Returns
    ``by_version`` (one row per version plus ``(not engaged)``: units, users, conversion rate with
    its interval, revenue and attributed revenue per unit, adjusted lift over same-day non-engaged units
    with its interval) and ``contrasts`` (one row per metric in ``CONTRAST_METRICS``: the
    candidate's relative change vs the baseline with its 95% interval and how many
    marketplace-days informed it; for ``lift``, the smaller count of the two versions' lifts).
    """
    units = version_units(con, window_days, credit_model).with_columns(
        pl.col("user_id").rank("dense").cast(pl.Int64).sub(1).alias("user_code")
    )
    versions = _versions(units)
    if len(versions) < 2 and (baseline is None or candidate is None):
        raise LookupError(
            f"only {len(versions)} model version(s) in the data ({', '.join(versions) or '-'}): "
            "nothing to compare"
        )
    baseline = baseline or versions[0]
    candidate = candidate or versions[-1]
    for name in (baseline, candidate):
        if name not in versions:
            raise LookupError(f"model version {name!r} not found; versions: {', '.join(versions)}")
    if baseline == candidate:
        raise ValueError("baseline and candidate are the same version")
    arrays = _arrays(units)
    n_users = int(units["user_code"].max()) + 1
    weights = propensity_weights(units)
    lifts = {
        v: _ratio(arrays, "conversion", v, NOT_ENGAGED, n_users, replicates, seed, weights)
        for v in versions
    }
    rows = [_version_row(units, arrays, v, lifts[v]) for v in versions]
    rows.append(_version_row(units, arrays, NOT_ENGAGED, None))
    contrasts = []
    same_day = "stratified ratio, candidate vs baseline engaged visitor-days, marketplace x day"
    for metric in CONTRAST_METRICS[:3]:
        ratio = _ratio(arrays, metric, candidate, baseline, n_users, replicates, seed)
        contrasts.append(
            _contrast_row(metric, (ratio.ratio, ratio.ci_low, ratio.ci_high), [ratio], same_day)
        )
    contrasts.append(
        _contrast_row(
            "lift",
            ratio_of_ratios(lifts[candidate], lifts[baseline]),
            [lifts[candidate], lifts[baseline]],
            "(1 + lift) of candidate / (1 + lift) of baseline; each lift vs same-day "
            "non-engaged visitor-days, marketplace x day, propensity-weighted (ATT)",
        )
    )
    contrast_frame = pl.DataFrame(contrasts, infer_schema_length=None)
    start, end = units["activity_date"].min(), units["activity_date"].max()
    return VersionComparison(
        window_days=window_days,
        baseline=baseline,
        candidate=candidate,
        start_date=start,
        end_date=end,
        by_version=pl.DataFrame(rows, infer_schema_length=None),
        contrasts=contrast_frame,
        note=comparison_note(contrast_frame, baseline, candidate, window_days),
    )


def _interval_text(row: dict[str, Any]) -> str:
    return f"{row['relative_change']:+.1%} (95% interval {row['ci_low']:+.1%} to {row['ci_high']:+.1%})"


def comparison_note(
    contrasts: pl.DataFrame, baseline: str, candidate: str, window_days: int
) -> str:
    """Return a plain-language reading of the contrasts (what changed, what cannot be told)."""
    by_metric = {row["metric"]: row for row in contrasts.iter_rows(named=True)}
    parts = []
    conversion = by_metric.get("conversion")
    if conversion is None or conversion["n_strata_informative"] == 0:
        parts.append(
            f"{baseline} and {candidate} never answered on the same day in the same marketplace, "
            "so a same-day comparison of their users is impossible; only the change in lift "
            "below can be read."
        )
    elif conversion["ci_low"] is None:
        parts.append("too few same-day units for an interval on conversion")
    else:
        moved = conversion["ci_low"] > 0 or conversion["ci_high"] < 0
        parts.append(
            f"On the {conversion['n_strata_informative']} marketplace-days when both answered, "
            f"{candidate} users' {window_days}-day conversion differed from {baseline} users' by "
            f"{_interval_text(conversion)}: "
            + ("a real difference." if moved else "no difference that the data can tell apart.")
        )
    lift = by_metric.get("lift")
    if lift is not None and lift["relative_change"] is None:
        parts.append(
            "The change in lift cannot be estimated: one version has no visitor-days after the "
            f"first {PRE_DAYS} days of data, when the adjustment's pre-visit history is complete."
        )
    elif lift is not None and lift["ci_low"] is not None:
        moved = lift["ci_low"] > 0 or lift["ci_high"] < 0
        parts.append(
            f"Against same-day non-users, (1 + lift) changed by {_interval_text(lift)}"
            + (" (a real change)." if moved else " (not distinguishable from no change).")
        )
    parts.append(
        "Both compare who chose to use the assistant, not randomised groups: a version that "
        "attracts different users can look better or worse without being so."
    )
    return " ".join(parts)
