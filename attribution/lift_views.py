"""Readers of the lift tables for analysts, and the arithmetic behind "X% more likely to buy".

``fct_conversion_lift`` holds every (period, segment, method, window) comparison with its interval
and p-values (docs/lift.md); ``fct_lift_balance`` / ``fct_lift_overlap`` hold the diagnostics of
the adjusted method. These functions read them; ``lift_arithmetic`` and ``lift_in_plain_words``
turn a lift into the absolute numbers a reader needs to judge it.
"""

from __future__ import annotations

import duckdb
import polars as pl

from attribution.lift import SMD_BALANCED, att_weights
from attribution.warehouse import require_tables

BH_ALPHA = 0.05  # false discovery rate at which a segment's effect is called significant


def lift_by_window(
    con: duckdb.DuckDBPyConnection, period: str = "all", segment: str = "all"
) -> pl.DataFrame:
    """Return one row per (window, method, experiment): lift with its 95% interval and sizes.

    ``period`` is a period grain of ``fct_conversion_lift`` (``all`` = the whole loaded range).
    """
    require_tables(con, "fct_conversion_lift")
    return con.sql(
        """
        SELECT window_days, method, experiment_id, period_start, period_end, n_engaged,
            n_comparison, cr_engaged, cr_comparison, lift, lift_ci_low AS ci_low,
            lift_ci_high AS ci_high
        FROM fct_conversion_lift
        WHERE period_grain = $grain AND segment = $segment
        ORDER BY window_days NULLS LAST, method NULLS LAST, experiment_id NULLS FIRST,
            period_start NULLS LAST
        """,
        params={"grain": period, "segment": segment},
    ).pl()


def segment_lift(
    con: duckdb.DuckDBPyConnection,
    window_days: int = 7,
    method: str = "adjusted",
    period: str = "all",
) -> pl.DataFrame:
    """Return one row per segment (``dimension=value``) of one method, window and period.

    Columns: dimension, value, n_engaged, n_comparison, cr_engaged, cr_comparison, lift,
    ci_low, ci_high, p_value, p_value_bh (Benjamini-Hochberg over the segments of the same
    period, method and window), significant (p_value_bh < 0.05). With many segments some
    intervals exclude 0 by chance; ``significant`` is the call that controls for that.
    """
    require_tables(con, "fct_conversion_lift")
    frame = con.sql(
        """
        SELECT split_part(segment, '=', 1) AS dimension,
            substr(segment, strpos(segment, '=') + 1) AS value, experiment_id, period_start,
            n_engaged, n_comparison, cr_engaged, cr_comparison, lift,
            lift_ci_low AS ci_low, lift_ci_high AS ci_high, p_value, p_value_bh
        FROM fct_conversion_lift
        WHERE period_grain = $grain AND method = $method AND window_days = $w
            AND segment <> 'all'
        ORDER BY dimension NULLS LAST, lift DESC NULLS LAST, value NULLS LAST
        """,
        params={"grain": period, "method": method, "w": window_days},
    ).pl()
    return frame.with_columns(
        (pl.col("p_value_bh") < BH_ALPHA).fill_null(False).alias("significant")
    )


def balance(
    con: duckdb.DuckDBPyConnection, window_days: int = 7, period: str = "all"
) -> pl.DataFrame:
    """Return the adjusted method's covariate balance: one row per covariate (segment ``all``).

    ``smd_before`` / ``smd_after``: standardised mean difference engaged vs comparison before
    and after propensity weighting; |SMD| < 0.1 counts as balanced.
    """
    require_tables(con, "fct_lift_balance")
    return con.sql(
        """
        SELECT period_start, covariate, smd_before, smd_after, abs(smd_after) < $threshold AS balanced
        FROM fct_lift_balance
        WHERE window_days = $w AND period_grain = $grain AND segment = 'all'
        ORDER BY period_start NULLS LAST, abs(smd_before) DESC NULLS LAST, covariate NULLS LAST
        """,
        params={"w": window_days, "grain": period, "threshold": SMD_BALANCED},
    ).pl()


def overlap(
    con: duckdb.DuckDBPyConnection, window_days: int = 7, period: str = "all"
) -> pl.DataFrame:
    """Return the adjusted method's overlap diagnostics per period: propensity ranges of each
    group, share of units trimmed (propensity outside [0.01, 0.99]), largest comparison weight
    and the comparison group's effective sample size."""
    require_tables(con, "fct_lift_overlap")
    return con.sql(
        """
        SELECT * EXCLUDE (period_grain, window_days, segment, method) FROM fct_lift_overlap
        WHERE window_days = $w AND period_grain = $grain AND segment = 'all'
        ORDER BY period_start NULLS LAST
        """,
        params={"w": window_days, "grain": period},
    ).pl()


def propensity_scores(units: pl.DataFrame) -> pl.DataFrame:
    """Return ``units`` (visitor-days with the lift's covariates, e.g. from
    ``attribution.version_compare.version_units``) with ``propensity`` and ``att_weight``.

    The same propensity model as the lift's ``adjusted`` method over the whole range (holdout
    users, who cannot engage, are left out). ``att_weight`` is 0 for trimmed units.
    """
    part = units.filter(~pl.col("is_holdout"))
    t = part["is_engaged"].to_numpy()
    if t.sum() < 2 or (~t).sum() < 2:
        raise ValueError("need at least two engaged and two comparison visitor-days")
    p, weights, _, _ = att_weights(part)
    return part.with_columns(
        pl.Series("propensity", p, dtype=pl.Float64),
        pl.Series("att_weight", weights, dtype=pl.Float64),
    )


def lift_arithmetic(lifts: pl.DataFrame) -> pl.DataFrame:
    """Add the absolute side of each lift row (rows with cr_engaged, cr_comparison, lift).

    * ``difference_points``: cr_engaged - cr_comparison, in percentage points;
    * ``extra_buyers_per_1000``: extra buyers per 1,000 engaged units if the lift were causal;
    * ``units_per_extra_buyer``: engaged units per extra buyer (1 / difference).
    """
    diff = pl.col("cr_engaged") - pl.col("cr_comparison")
    return lifts.with_columns(
        (100 * diff).alias("difference_points"),
        (1000 * diff).alias("extra_buyers_per_1000"),
        pl.when(diff > 0).then(1 / diff).otherwise(None).alias("units_per_extra_buyer"),
    )


def _row_for(lifts: pl.DataFrame, method: str) -> dict | None:
    rows = lifts.filter(pl.col("method") == method).head(1).to_dicts()
    return rows[0] if rows else None


def lift_in_plain_words(lifts: pl.DataFrame, window_days: int) -> list[str]:
    """Return sentences that say what the pooled lifts (``Marts.lift``) really mean.

    One per available method, then how much of the observed lift is who uses the assistant
    rather than what it does (1 - adjusted / observed), when both exist.
    """
    sentences = []
    meaning = {
        "observed": "users of the assistant vs visitors who did not use it the same day",
        "adjusted": "the same, after weighting non-users to look like users before the visit",
        "experiment": "randomised: users offered the assistant vs a held-out group (intent to treat)",
    }
    rows = {m: _row_for(lift_arithmetic(lifts), m) for m in meaning}
    for method, row in rows.items():
        if row is None or row["lift"] is None:
            continue
        interval = (
            f" (95% interval {row['ci_low']:+.1%} to {row['ci_high']:+.1%})"
            if row["ci_low"] is not None and row["ci_high"] is not None
            else ""
        )
        sentences.append(
            f"{method}: {row['cr_engaged']:.1%} vs {row['cr_comparison']:.1%} bought within "
            f"{window_days} days: {abs(row['lift']):.1%} "
            f"{'more' if row['lift'] >= 0 else 'less'} likely{interval} ({meaning[method]}). "
            f"In absolute terms {row['difference_points']:+.1f} percentage points: "
            f"{row['extra_buyers_per_1000']:+.0f} buyers per 1,000 users."
        )
    observed, adjusted = rows["observed"], rows["adjusted"]
    if observed and adjusted and observed["lift"] and adjusted["lift"] is not None:
        share = 1 - adjusted["lift"] / observed["lift"]
        sentences.append(
            f"{share:.0%} of the observed lift is explained by who chooses to use the assistant "
            "(people who were already more likely to buy), not by what it does."
        )
    return sentences
