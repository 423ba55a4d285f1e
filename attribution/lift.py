"""Conversion lift by method (observed, adjusted, experiment), period, window and segment.

The SQL model ``fct_conversion_lift`` writes the daily ``observed`` rows for segments ``all``,
``marketplace=`` and ``channel=``. This module (pipeline stage ``lift``) adds every other row:
``observed`` for the other segments and for week/month/all periods, ``adjusted`` (propensity
weighting, ATT) and ``experiment`` (intent-to-treat per experiment, CUPED, SRM), then fills
p-values and Benjamini-Hochberg adjusted p-values for every row, and writes the diagnostics
tables ``fct_lift_balance`` and ``fct_lift_overlap``. See docs/lift.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

from attribution import lift_stats as ls
from attribution.config import Settings
from attribution.warehouse import atomic, table_exists, write_config_tables

GRAINS: tuple[str, ...] = ("day", "week", "month", "year", "all")
SQL_SEGMENT_PREFIXES: tuple[str, ...] = ("marketplace=", "channel=")
# rows written by sql/marts/fct_conversion_lift.sql (the Python stage leaves them alone)
_SQL_OWNED = (
    "method = 'observed' AND period_grain = 'day' AND experiment_id IS NULL AND "
    "(segment = 'all' OR segment LIKE 'marketplace=%' OR segment LIKE 'channel=%')"
)
PRE_DAYS = 28
BUYER_LOOKBACK_DAYS = 365
TRIM_LOW, TRIM_HIGH = 0.01, 0.99
SMD_BALANCED = 0.1
SRM_FLAG_P = 0.001
# Design holdout share per experiment for the sample-ratio test. Override per warehouse with an
# optional table cfg_experiments(experiment_id VARCHAR, expected_holdout_share DOUBLE).
DEFAULT_EXPECTED_HOLDOUT_SHARE = 0.05
EXPECTED_HOLDOUT_SHARE: dict[str, float] = {
    "exp_assistant_holdout": 0.05,
    "hillstrom_mens": 0.5,
    "hillstrom_womens": 0.5,
}
COVARIATES: tuple[str, ...] = (
    "pre_orders_28",
    "pre_revenue_28",
    "pre_visit_days_28",
    "tenure_days",
)

_ORDERS = """orders as (
    -- revenue stays DECIMAL until summed: exact sums, identical on every rerun
    select user_id, order_at, order_revenue_usd as revenue
    from int_orders where is_placed
)"""


def _pre_period_sql(units: str, key: str, index: str) -> str:
    """Return a query over ``units`` (alias u): orders and revenue in the 28 days before ``index``
    and orders in the 365 days before it, per (user_id, key). Names are constants of this module."""
    return f"""
    select u.user_id, u.{key},
        count(o.order_at) filter (where o.order_at >= u.{index} - interval 28 day) as pre_orders_28,
        cast(coalesce(
            sum(o.revenue) filter (where o.order_at >= u.{index} - interval 28 day), 0
        ) as double) as pre_revenue_28,
        count(o.order_at) as orders_365
    from {units} as u
    left join orders as o on o.user_id = u.user_id and o.order_at < u.{index}
        and o.order_at >= u.{index} - interval 365 day
    group by u.user_id, u.{key}"""


def _window_outcomes_sql(key: str, index: str) -> str:
    """Return a query over ``units`` (alias u): per (user_id, key, window) whether a placed order
    falls in [index, index + window days] and its revenue. Names are constants of this module."""
    return f"""
    select u.user_id, u.{key}, w.window_days,
        max(case when o.order_at is null then 0 else 1 end) as converted,
        cast(coalesce(sum(o.revenue), 0) as double) as revenue
    from units as u
    cross join cfg_windows as w
    left join orders as o on o.user_id = u.user_id and o.order_at >= u.{index}
        and date_diff('microsecond', u.{index}, o.order_at)
            <= cast(w.window_days as bigint) * 86400000000
    group by u.user_id, u.{key}, w.window_days"""


_ACTIVITY = f"""
activity as (
    select user_id, visit_date as activity_date, visit_at as activity_at, marketplace, channel,
        0 as is_session
    from stg_visits
    union all
    select user_id, session_date, session_start, marketplace, channel, 1
    from assistant_sessions
),
first_seen as (
    select user_id, min(activity_at) as first_at,
        arg_min(marketplace, activity_at) as first_marketplace,
        arg_min(channel, activity_at) as first_channel
    from activity group by user_id
),
{_ORDERS}"""

UNITS_SQL = f"""
with {_ACTIVITY},
activity_ranked as (
    select *, row_number() over (
        partition by user_id, activity_date order by activity_at, is_session, marketplace, channel
    ) as activity_seq
    from activity
    where activity_date between $start_date and $end_date
),
visitor_days as (
    select user_id, activity_date, min(activity_at) as index_at,
        max(is_session) = 1 as is_engaged,
        max(case when activity_seq = 1 then marketplace end) as marketplace,
        max(case when activity_seq = 1 then channel end) as channel
    from activity_ranked group by user_id, activity_date
),
session_days as (
    select user_id, session_date,
        arg_min(model_version, session_start) as model_version,
        case min(case touch_type when 'help_me_decide' then 1 when 'comparison' then 2
            when 'product_question' then 3 when 'product_click' then 4
            when 'review_summary' then 5 else 6 end)
            when 1 then 'help_me_decide' when 2 then 'comparison' when 3 then 'product_question'
            when 4 then 'product_click' when 5 then 'review_summary' else 'query' end as event_type
    from assistant_sessions group by user_id, session_date
),
pre_orders as ({_pre_period_sql("visitor_days", "activity_date", "index_at")}
),
pre_visits as (
    select v.user_id, v.activity_date, count(distinct a.activity_date) as pre_visit_days_28
    from visitor_days as v
    left join activity as a on a.user_id = v.user_id
        and a.activity_date between v.activity_date - 28 and v.activity_date - 1
    group by v.user_id, v.activity_date
)
select v.user_id, v.activity_date, v.index_at, v.is_engaged, v.marketplace, v.channel,
    s.model_version, s.event_type,
    cast(p.pre_orders_28 as double) as pre_orders_28, p.pre_revenue_28,
    cast(q.pre_visit_days_28 as double) as pre_visit_days_28,
    cast(date_diff('day', f.first_at, v.index_at) as double) as tenure_days,
    p.orders_365 > 0 as is_returning_buyer,
    coalesce(h.is_holdout, false) as is_holdout
from visitor_days as v
join pre_orders as p using (user_id, activity_date)
join pre_visits as q using (user_id, activity_date)
join first_seen as f using (user_id)
left join session_days as s on s.user_id = v.user_id and s.session_date = v.activity_date
    and v.is_engaged
-- users in a holdout arm cannot see the assistant: no propensity to engage (excluded from adjusted)
left join (
    select user_id, bool_or(arm = 'holdout') as is_holdout
    from stg_assignments group by user_id
) as h on h.user_id = v.user_id
"""

UNIT_OUTCOMES_SQL = f"""
with units as (select user_id, activity_date, index_at from _lift_units),
{_ORDERS}
{_window_outcomes_sql("activity_date", "index_at")}
"""

EXPERIMENT_SQL = f"""
with {_ACTIVITY},
units as (
    select a.user_id, a.experiment_id, a.arm, a.assigned_at,
        cast(a.assigned_at as date) as assigned_date
    from stg_assignments as a
    where a.arm in ('treatment', 'holdout')
        and cast(a.assigned_at as date) between $start_date and $end_date
),
pre as ({_pre_period_sql("units", "experiment_id", "assigned_at")}
),
outcome as ({_window_outcomes_sql("experiment_id", "assigned_at")}
)
select u.user_id, u.experiment_id, u.arm = 'treatment' as is_treatment, u.assigned_date,
    o.window_days, o.converted, o.revenue,
    cast(p.pre_orders_28 > 0 as integer) as pre_converted_28, p.pre_revenue_28,
    p.orders_365 > 0 as is_returning_buyer, f.first_marketplace as marketplace,
    f.first_channel as channel
from units as u
join pre as p using (user_id, experiment_id)
join outcome as o using (user_id, experiment_id)
left join first_seen as f using (user_id)
"""

LIFT_COLUMNS: dict[str, pl.DataType] = {
    "period_start": pl.Date,
    "period_end": pl.Date,
    "period_grain": pl.Utf8,
    "segment": pl.Utf8,
    "method": pl.Utf8,
    "experiment_id": pl.Utf8,
    "window_days": pl.Int32,
    "n_engaged": pl.Int64,
    "n_comparison": pl.Int64,
    "conversions_engaged": pl.Int64,
    "conversions_comparison": pl.Int64,
    "cr_engaged": pl.Float64,
    "cr_comparison": pl.Float64,
    "lift": pl.Float64,
    "lift_ci_low": pl.Float64,
    "lift_ci_high": pl.Float64,
    "revenue_engaged_usd": pl.Float64,
    "revenue_comparison_usd": pl.Float64,
    "revenue_per_user_engaged_usd": pl.Float64,
    "revenue_per_user_comparison_usd": pl.Float64,
    "srm_p_value": pl.Float64,
    "ci_method": pl.Utf8,
    "p_value": pl.Float64,
    "p_value_bh": pl.Float64,
    "incremental_conversions": pl.Float64,
    "incremental_revenue_usd": pl.Float64,
    "incremental_revenue_ci_low": pl.Float64,
    "incremental_revenue_ci_high": pl.Float64,
    "revenue_lift": pl.Float64,
    "revenue_lift_ci_low": pl.Float64,
    "revenue_lift_ci_high": pl.Float64,
    "cuped_theta": pl.Float64,
    "lift_cuped": pl.Float64,
    "lift_cuped_ci_low": pl.Float64,
    "lift_cuped_ci_high": pl.Float64,
    "srm_flag": pl.Boolean,
    "n_days": pl.Int32,
    # distinct users behind n_engaged / n_comparison (the privacy floor counts users, not units)
    "n_engaged_users": pl.Int64,
    "n_comparison_users": pl.Int64,
}


# --- periods -------------------------------------------------------------------------------


def period_bounds(day: date, grain: str, start: date, end: date) -> tuple[date, date]:
    """Return (period_start, period_end) of the period of ``grain`` holding ``day``.

    Weeks are ISO weeks (Monday to Sunday); months and years are calendar months and years;
    ``all`` is the whole window [start, end].
    """
    if grain == "day":
        return day, day
    if grain == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    if grain == "month":
        first = day.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        return first, nxt - timedelta(days=1)
    if grain == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    if grain == "all":
        return start, end
    raise ValueError(f"unknown period grain {grain!r}")


def _with_periods(frame: pl.DataFrame, day_col: str, grain: str, start: date) -> pl.DataFrame:
    day = pl.col(day_col)
    if grain == "day":
        return frame.with_columns(day.alias("period_start"), day.alias("period_end"))
    if grain == "week":
        monday = day.dt.truncate("1w")
        return frame.with_columns(
            monday.alias("period_start"), monday.dt.offset_by("6d").alias("period_end")
        )
    if grain == "month":
        return frame.with_columns(
            day.dt.month_start().alias("period_start"), day.dt.month_end().alias("period_end")
        )
    if grain == "year":
        return frame.with_columns(
            pl.date(day.dt.year(), 1, 1).alias("period_start"),
            pl.date(day.dt.year(), 12, 31).alias("period_end"),
        )
    if grain != "all":
        raise ValueError(f"unknown period grain {grain!r}")
    return frame.with_columns(
        pl.lit(start).alias("period_start"), pl.col(day_col).max().alias("period_end")
    )


# --- one comparison ------------------------------------------------------------------------


@dataclass
class Comparison:
    """Arrays of one (period, window, segment) comparison."""

    treated: np.ndarray
    converted: np.ndarray
    revenue: np.ndarray
    users: np.ndarray | None
    weights: np.ndarray | None = None


def _comparison_row(c: Comparison, clustered: bool) -> dict[str, Any]:
    t = c.treated
    index = ls.ClusterIndex.of(c.users) if c.users is not None else None
    clusters = index if clustered else None
    conv = ls.weighted_ratio(c.converted, t, c.weights, clusters)
    rev = ls.weighted_ratio(c.revenue, t, c.weights, clusters)
    diff, diff_se = ls.weighted_difference(c.revenue, t, c.weights, clusters)
    # trimmed units (weight 0) are left out of every count
    kept = np.ones(len(t), dtype=bool) if c.weights is None else c.weights > 0
    n1, n0 = int((t & kept).sum()), int((~t & kept).sum())
    row: dict[str, Any] = {
        "n_engaged": n1,
        "n_comparison": n0,
        "n_engaged_users": _distinct(index, t & kept, n1),
        "n_comparison_users": _distinct(index, ~t & kept, n0),
        "conversions_engaged": int(c.converted[t & kept].sum()),
        "conversions_comparison": int(c.converted[~t & kept].sum()),
        "cr_engaged": conv.m1,
        "cr_comparison": conv.m0,
        "lift": conv.lift,
        "lift_ci_low": conv.ci_low,
        "lift_ci_high": conv.ci_high,
        "p_value": conv.p_value,
        "revenue_engaged_usd": float(c.revenue[t & kept].sum()),
        "revenue_comparison_usd": float(c.revenue[~t & kept].sum()),
        "revenue_per_user_engaged_usd": rev.m1,
        "revenue_per_user_comparison_usd": rev.m0,
        "revenue_lift": rev.lift,
        "revenue_lift_ci_low": rev.ci_low,
        "revenue_lift_ci_high": rev.ci_high,
        "incremental_conversions": n1 * (conv.m1 - conv.m0) if conv.m1 is not None else None,
        "incremental_revenue_usd": n1 * diff if diff is not None else None,
        "incremental_revenue_ci_low": n1 * (diff - ls.Z_95 * diff_se) if diff is not None else None,
        "incremental_revenue_ci_high": n1 * (diff + ls.Z_95 * diff_se)
        if diff is not None
        else None,
    }
    return row


def _distinct(users: ls.ClusterIndex | None, mask: np.ndarray, n_units: int) -> int | None:
    """Return the number of distinct users among the masked units (None if users are unknown)."""
    if users is None:
        return None
    return users.distinct(mask) if n_units else 0


# --- propensity ----------------------------------------------------------------------------


def design_matrix(frame: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Return the propensity covariates (log1p of counts/money/tenure, one-hot marketplace and
    channel with the most frequent level dropped) and their names."""
    cols, names = [], []
    for name in COVARIATES:
        cols.append(np.log1p(np.maximum(frame[name].to_numpy().astype(float), 0)))
        names.append(name)
    for dim in ("marketplace", "channel"):
        values = frame[dim].fill_null("unknown")
        # levels in sorted order with their counts (hash counts; a few levels, sorted in Python)
        counted = dict(values.value_counts().iter_rows())
        levels = sorted(counted)
        base = max(levels, key=lambda level: counted[level])  # first most frequent, as argmax
        for level in levels:
            if level != base:
                cols.append((values == level).cast(pl.Float64).to_numpy())
                names.append(f"{dim}={level}")
    x = np.column_stack(cols) if cols else np.zeros((frame.height, 0))
    return x, names


def att_weights(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Return (propensity, ATT weights, design matrix, names) for a period's visitor-days.

    Engaged units weigh 1, comparison units p / (1 - p). Units with p outside [0.01, 0.99] get
    weight 0 (trimmed: no comparable counterpart).
    """
    x, names = design_matrix(frame)
    t = frame["is_engaged"].to_numpy()
    # standardise for a well-conditioned Newton fit (coefficients are not reported)
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    z = (x - mean) / sd
    beta = ls.fit_logistic(z, t)
    p = ls.predict_logistic(beta, z)
    weights = np.where(t, 1.0, p / (1 - p))
    weights[(p < TRIM_LOW) | (p > TRIM_HIGH)] = 0.0
    return p, weights, x, names


# --- the table -----------------------------------------------------------------------------


def load_units(
    con: duckdb.DuckDBPyConnection, start: date, end: date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (visitor-day units with covariates, their outcomes per window)."""
    params = {"start_date": start, "end_date": end}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _lift_units AS {UNITS_SQL}", params)
    units = con.sql("SELECT * FROM _lift_units").pl()
    outcomes = con.sql(UNIT_OUTCOMES_SQL).pl()
    con.execute("DROP TABLE IF EXISTS _lift_units")
    return units, outcomes


def load_experiment_units(con: duckdb.DuckDBPyConnection, start: date, end: date) -> pl.DataFrame:
    """Return one row per (assigned user, experiment, window) with outcome and pre-period."""
    if not table_exists(con, "stg_assignments"):
        return pl.DataFrame()
    return con.sql(EXPERIMENT_SQL, params={"start_date": start, "end_date": end}).pl()


def _segments(frame: pl.DataFrame, *, experiment: bool) -> list[tuple[str, pl.Expr, bool]]:
    """Return (segment name, filter, treatment-attribute?) for every segment present.

    Treatment-attribute segments (model_version, event_type) only exist for engaged units: their
    comparison group is every comparison unit of the period.
    """
    out: list[tuple[str, pl.Expr, bool]] = [("all", pl.lit(True), False)]
    dims = ["marketplace", "channel"]
    for dim in dims:
        for value in sorted(v for v in frame[dim].unique().to_list() if v is not None):
            out.append((f"{dim}={value}", pl.col(dim) == value, False))
    if not experiment:
        for dim in ("model_version", "event_type"):
            for value in sorted(v for v in frame[dim].unique().to_list() if v is not None):
                out.append((f"{dim}={value}", pl.col(dim) == value, True))
    out.append(("buyer=new", ~pl.col("is_returning_buyer"), False))
    out.append(("buyer=returning", pl.col("is_returning_buyer"), False))
    return out


def _arrays(part: pl.DataFrame, treated_col: str, weights: np.ndarray | None) -> Comparison:
    return Comparison(
        treated=part[treated_col].to_numpy().astype(bool),
        converted=part["converted"].to_numpy().astype(float),
        revenue=part["revenue"].to_numpy().astype(float),
        # user codes (visitor-days) or user ids (experiment units): distinct counts, clusters
        users=part["user_code" if "user_code" in part.columns else "user_id"].to_numpy(),
        weights=weights,
    )


def _select(c: Comparison, mask: np.ndarray) -> Comparison:
    """Return the comparison of the masked units (same order)."""
    return Comparison(
        treated=c.treated[mask],
        converted=c.converted[mask],
        revenue=c.revenue[mask],
        users=None if c.users is None else c.users[mask],
        weights=None if c.weights is None else c.weights[mask],
    )


def visitor_day_rows(
    units: pl.DataFrame,
    outcomes: pl.DataFrame,
    windows: tuple[int, ...],
    start: date,
    end: date,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (lift rows, balance rows, overlap rows) for methods observed and adjusted."""
    lift_rows: list[dict[str, Any]] = []
    balance_rows: list[dict[str, Any]] = []
    overlap_rows: list[dict[str, Any]] = []
    if units.is_empty():
        return lift_rows, balance_rows, overlap_rows
    # every unit has an outcome row per window (cross join in UNIT_OUTCOMES_SQL), so the dense
    # user codes of the units are those of every window's data
    coded = units.with_columns(pl.col("user_id").rank("dense").cast(pl.Int64).alias("user_code"))
    for w in windows:
        # one window at a time: memory holds one window's units, not every window's at once
        complete = coded.join(
            outcomes.filter(pl.col("window_days") == w),
            on=["user_id", "activity_date"],
            how="inner",
        ).filter(pl.col("activity_date") + pl.duration(days=w) <= pl.lit(end))
        if complete.is_empty():
            continue
        for grain in GRAINS:
            framed = _with_periods(complete, "activity_date", grain, start).sort(
                ["period_start", "user_id", "activity_date"]
            )
            for (p_start, p_end), period in framed.group_by(
                ["period_start", "period_end"], maintain_order=True
            ):
                key = {
                    "period_start": p_start,
                    "period_end": p_end,
                    "period_grain": grain,
                    "window_days": w,
                    "n_days": period["activity_date"].n_unique(),
                }
                t_all = period["is_engaged"].to_numpy()
                # holdout users could not engage: the adjusted comparison leaves them out
                eligible = ~period["is_holdout"].to_numpy()
                t_eligible = t_all[eligible]
                fit = t_eligible.sum() >= 2 and (~t_eligible).sum() >= 2
                if fit:
                    p_e, w_e, x, names = att_weights(period.filter(pl.Series(eligible)))
                    p, weights = np.zeros(period.height), np.zeros(period.height)
                    p[eligible], weights[eligible] = p_e, w_e
                    period = period.with_columns(pl.Series("_w", weights), pl.Series("_p", p))
                    balance_rows.extend(_balance(key, x, names, t_eligible, w_e))
                    overlap_rows.append(_overlap(key, p_e, t_eligible, w_e))
                segments = _segments(period, experiment=False)
                # every segment's rows as one boolean mask each, evaluated in one pass
                masks = period.select(
                    (condition | ~pl.col("is_engaged") if treatment_attr else condition)
                    .fill_null(False)
                    .alias(f"_m{i}")
                    for i, (_, condition, treatment_attr) in enumerate(segments)
                )
                whole = _arrays(period, "is_engaged", period["_w"].to_numpy() if fit else None)
                for i, (segment, _, _) in enumerate(segments):
                    mask = masks[f"_m{i}"].to_numpy()
                    t = whole.treated[mask]
                    if t.sum() == 0 or (~t).sum() == 0:
                        continue
                    sql_owned = grain == "day" and (
                        segment == "all" or segment.startswith(SQL_SEGMENT_PREFIXES)
                    )
                    part = _select(whole, mask)
                    if not sql_owned:
                        row = _comparison_row(replace(part, weights=None), clustered=True)
                        lift_rows.append(
                            {
                                **key,
                                "segment": segment,
                                "method": "observed",
                                **row,
                                "ci_method": "cluster_delta_log_ratio",
                            }
                        )
                    if fit:
                        row = _comparison_row(part, clustered=True)
                        lift_rows.append(
                            {
                                **key,
                                "segment": segment,
                                "method": "adjusted",
                                **row,
                                "ci_method": "ipw_att_cluster_delta_log_ratio",
                            }
                        )
    return lift_rows, balance_rows, overlap_rows


def _balance(
    key: dict[str, Any], x: np.ndarray, names: list[str], t: np.ndarray, weights: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    kept = weights > 0
    columns = np.asfortranarray(x)  # contiguous columns: no strided copy per covariate
    kept_columns, t_kept, w_kept = np.asfortranarray(x[kept]), t[kept], weights[kept]
    for j, name in enumerate(names):
        before = ls.smd(columns[:, j], t)
        after = ls.smd(kept_columns[:, j], t_kept, w_kept)
        rows.append(
            {
                **{
                    k: key[k] for k in ("period_start", "period_end", "period_grain", "window_days")
                },
                "segment": "all",
                "method": "adjusted",
                "covariate": name,
                "smd_before": before,
                "smd_after": after,
                "balanced": after is not None and abs(after) < SMD_BALANCED,
            }
        )
    return rows


def _overlap(
    key: dict[str, Any], p: np.ndarray, t: np.ndarray, weights: np.ndarray
) -> dict[str, Any]:
    wc = weights[~t]
    ess = float(wc.sum() ** 2 / (wc**2).sum()) if (wc**2).sum() > 0 else 0.0
    return {
        **{k: key[k] for k in ("period_start", "period_end", "period_grain", "window_days")},
        "segment": "all",
        "method": "adjusted",
        "n_engaged": int(t.sum()),
        "n_comparison": int((~t).sum()),
        "p_engaged_min": float(p[t].min()),
        "p_engaged_max": float(p[t].max()),
        "p_comparison_min": float(p[~t].min()),
        "p_comparison_max": float(p[~t].max()),
        "share_trimmed": float((weights[t | ~t] == 0).mean()),
        "max_weight_comparison": float(wc.max()) if len(wc) else None,
        "ess_comparison": ess,
    }


def expected_holdout_shares(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Return the design holdout share per experiment: defaults, overridden by cfg_experiments."""
    shares = dict(EXPECTED_HOLDOUT_SHARE)
    if table_exists(con, "cfg_experiments"):
        for experiment_id, share in con.execute(
            "SELECT experiment_id, expected_holdout_share FROM cfg_experiments"
        ).fetchall():
            shares[str(experiment_id)] = float(share)
    return shares


def experiment_rows(
    exp: pl.DataFrame,
    windows: tuple[int, ...],
    start: date,
    end: date,
    shares: Mapping[str, float],
) -> list[dict[str, Any]]:
    """Return lift rows of method experiment: treatment vs holdout, intent-to-treat."""
    rows: list[dict[str, Any]] = []
    if exp.is_empty():
        return rows
    for (experiment_id,), per_exp in exp.group_by(["experiment_id"], maintain_order=True):
        share = shares.get(str(experiment_id), DEFAULT_EXPECTED_HOLDOUT_SHARE)
        for w in windows:
            complete = per_exp.filter(
                (pl.col("window_days") == w)
                & (pl.col("assigned_date") + pl.duration(days=w) <= pl.lit(end))
            )
            if complete.is_empty():
                continue
            for grain in GRAINS:
                framed = _with_periods(complete, "assigned_date", grain, start).sort(
                    ["period_start", "user_id"]
                )
                for (p_start, p_end), period in framed.group_by(
                    ["period_start", "period_end"], maintain_order=True
                ):
                    key = {
                        "period_start": p_start,
                        "period_end": p_end,
                        "period_grain": grain,
                        "window_days": w,
                        "experiment_id": experiment_id,
                        "n_days": period["assigned_date"].n_unique(),
                    }
                    for segment, condition, _ in _segments(period, experiment=True):
                        part = period.filter(condition)
                        t = part["is_treatment"].to_numpy().astype(bool)
                        if t.sum() == 0 or (~t).sum() == 0:
                            continue
                        row = _comparison_row(_arrays(part, "is_treatment", None), clustered=False)
                        theta, cuped = ls.cuped_ratio(
                            part["converted"].to_numpy(),
                            part["pre_converted_28"].to_numpy(),
                            t,
                        )
                        srm = ls.srm_p_value(int(t.sum()), int((~t).sum()), share)
                        rows.append(
                            {
                                **key,
                                "segment": segment,
                                "method": "experiment",
                                **row,
                                "ci_method": "delta_log_ratio",
                                "cuped_theta": theta,
                                "lift_cuped": cuped.lift,
                                "lift_cuped_ci_low": cuped.ci_low,
                                "lift_cuped_ci_high": cuped.ci_high,
                                "srm_p_value": srm,
                                "srm_flag": srm is not None and srm < SRM_FLAG_P,
                            }
                        )
    return rows


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=LIFT_COLUMNS)
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.select(
        [
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(dtype).alias(c)
            for c, dtype in LIFT_COLUMNS.items()
        ]
    )


def _sql_row_p_values(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return the SQL-owned observed day rows with their p-values (binomial delta method)."""
    frame = con.sql(
        "SELECT period_start, segment, window_days, n_engaged, n_comparison, conversions_engaged, "
        f"conversions_comparison FROM fct_conversion_lift WHERE {_SQL_OWNED}"
    ).pl()
    p_values = []
    for x1, n1, x0, n0 in frame.select(
        "conversions_engaged", "n_engaged", "conversions_comparison", "n_comparison"
    ).iter_rows():
        p_values.append(_binomial_p(int(x1), int(n1), int(x0), int(n0)))
    return frame.with_columns(pl.Series("p_value", p_values, dtype=pl.Float64))


def _binomial_p(x1: int, n1: int, x0: int, n0: int) -> float | None:
    if not (n1 and n0 and x1 and x0):
        return None
    p1, p0 = x1 / n1, x0 / n0
    se = math.sqrt((1 - p1) / x1 + (1 - p0) / x0)
    if se == 0:
        return None
    return ls.two_sided_p(math.log(p1 / p0) / se)


def write_lift_tables(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    start: date,
    end: date,
    expected_shares: Mapping[str, float] | None = None,
) -> int:
    """Compute and write every Python-owned lift row for [start, end]; return rows written.

    Replaces all rows of ``fct_conversion_lift`` except the SQL-owned daily observed rows, then
    sets p_value / p_value_bh on every row. Writes ``fct_lift_balance`` and ``fct_lift_overlap``.
    """
    write_config_tables(con, settings)
    windows = tuple(settings.windows_days)
    units, outcomes = load_units(con, start, end)
    lift_rows, balance_rows, overlap_rows = visitor_day_rows(units, outcomes, windows, start, end)
    exp = load_experiment_units(con, start, end)
    shares = dict(expected_holdout_shares(con))
    shares.update(expected_shares or {})
    lift_rows.extend(experiment_rows(exp, windows, start, end, shares))
    python_rows = _frame(lift_rows)

    sql_rows = _sql_row_p_values(con)
    keys = ["period_start", "period_grain", "method", "window_days", "experiment_id", "segment"]
    sql_keyed = sql_rows.with_columns(
        pl.lit("day").alias("period_grain"),
        pl.lit("observed").alias("method"),
        pl.lit(None, dtype=pl.Utf8).alias("experiment_id"),
        pl.col("window_days").cast(pl.Int32),
    ).select([*keys, "p_value"])
    family = ["period_start", "period_grain", "method", "window_days", "experiment_id"]
    every = pl.concat([sql_keyed, python_rows.select([*keys, "p_value"])], how="vertical_relaxed")
    every = _bh(every, family)

    with atomic(con):
        _ensure_lift_columns(con)
        con.execute(f"DELETE FROM fct_conversion_lift WHERE NOT ({_SQL_OWNED})")
        python_rows = python_rows.drop("p_value_bh").join(
            every.select([*keys, "p_value_bh"]), on=keys, how="left", nulls_equal=True
        )
        con.register("_lift_new", python_rows.to_arrow())
        columns = [r[0] for r in con.execute("DESCRIBE fct_conversion_lift").fetchall()]
        select = ", ".join(f'"{c}"' if c in LIFT_COLUMNS else f'NULL AS "{c}"' for c in columns)
        con.execute(f"INSERT INTO fct_conversion_lift SELECT {select} FROM _lift_new")
        con.unregister("_lift_new")
        sql_p = every.filter((pl.col("method") == "observed") & (pl.col("period_grain") == "day"))
        con.register("_lift_p", sql_p.to_arrow())
        con.execute(
            "UPDATE fct_conversion_lift AS f SET p_value = p.p_value, p_value_bh = p.p_value_bh "
            "FROM _lift_p AS p WHERE f.method = 'observed' AND f.period_grain = 'day' "
            "AND f.period_start = p.period_start AND f.segment = p.segment "
            "AND f.window_days = p.window_days"
        )
        con.unregister("_lift_p")
        _write_frame(con, "fct_lift_balance", pl.DataFrame(balance_rows))
        _write_frame(con, "fct_lift_overlap", pl.DataFrame(overlap_rows))
    return python_rows.height


def _bh(frame: pl.DataFrame, family: list[str]) -> pl.DataFrame:
    parts = []
    for _, part in frame.group_by(family, maintain_order=True):
        adjusted = ls.benjamini_hochberg(part["p_value"].to_list())
        parts.append(part.with_columns(pl.Series("p_value_bh", adjusted, dtype=pl.Float64)))
    if not parts:
        return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("p_value_bh"))
    return pl.concat(parts)


def _ensure_lift_columns(con: duckdb.DuckDBPyConnection) -> None:
    existing = {r[0] for r in con.execute("DESCRIBE fct_conversion_lift").fetchall()}
    types = {
        pl.Float64: "DOUBLE",
        pl.Boolean: "BOOLEAN",
        pl.Int32: "INTEGER",
        pl.Int64: "BIGINT",
        pl.Utf8: "VARCHAR",
        pl.Date: "DATE",
    }
    for column, dtype in LIFT_COLUMNS.items():
        if column not in existing:
            con.execute(f'ALTER TABLE fct_conversion_lift ADD COLUMN "{column}" {types[dtype]}')


def _write_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    if frame.is_empty():
        con.execute(f'CREATE OR REPLACE TABLE "{name}" (period_start DATE)')
        return
    con.register("_frame", frame.to_arrow())
    con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM _frame')
    con.unregister("_frame")


# --- readers for reports and the CLI --------------------------------------------------------


def pooled_lift_by_method(
    con: duckdb.DuckDBPyConnection,
    window_days: int,
    period: str = "all",
    segment: str | None = "all",
) -> pl.DataFrame:
    """Return one row per (method, segment, experiment, period) of ``fct_conversion_lift``.

    ``period`` is a period grain (``all`` = the whole loaded range, one row per method). Columns:
    method, segment, experiment_id, period_start, period_end, n_engaged, n_comparison,
    cr_engaged, cr_comparison, lift, ci_low, ci_high, p_value_bh, ci_method, srm_p_value,
    revenue_per_user_engaged_usd, revenue_per_user_comparison_usd.
    """
    where = "window_days = $w AND period_grain = $grain"
    params: dict[str, Any] = {"w": window_days, "grain": period}
    if segment is not None:
        where += " AND segment = $segment"
        params["segment"] = segment
    return con.sql(
        "SELECT method, segment, experiment_id, period_start, period_end, n_engaged, "
        "n_comparison, cr_engaged, cr_comparison, lift, lift_ci_low AS ci_low, "
        "lift_ci_high AS ci_high, p_value_bh, ci_method, srm_p_value, "
        "cast(revenue_per_user_engaged_usd AS DOUBLE) AS revenue_per_user_engaged_usd, "
        "cast(revenue_per_user_comparison_usd AS DOUBLE) AS revenue_per_user_comparison_usd "
        f"FROM fct_conversion_lift WHERE {where} "
        "ORDER BY period_start, method, segment, experiment_id NULLS FIRST",
        params=params,
    ).pl()


def downstream_impact(
    con: duckdb.DuckDBPyConnection, window_days: int, period: str = "all"
) -> pl.DataFrame:
    """Return attributed vs incremental revenue per method, with the annualised run-rate.

    One row per (method, experiment_id) of period grain ``period`` (segment ``all``).
    ``attributed_revenue_usd`` is last-touch attributed revenue (scope user, same window) of
    orders placed in the period; ``incremental_revenue_usd`` = n_engaged x (revenue per engaged
    unit - counterfactual revenue per unit) with its 95% interval; the run-rate is incremental
    revenue per day of the period (days with units) x 365, interval scaled alike.
    """
    lift = con.sql(
        "SELECT method, experiment_id, period_start, period_end, n_days, "
        "incremental_revenue_usd, incremental_revenue_ci_low, incremental_revenue_ci_high "
        "FROM fct_conversion_lift WHERE window_days = $w AND period_grain = $grain "
        "AND segment = 'all' ORDER BY period_start, method, experiment_id NULLS FIRST",
        params={"w": window_days, "grain": period},
    ).pl()
    attributed = [0.0] * lift.height
    if lift.height and table_exists(con, "fct_attribution_window_sensitivity"):
        # one query for every period: attributed revenue of orders placed inside each period
        got = con.execute(
            "WITH periods AS (SELECT DISTINCT period_start, period_end FROM fct_conversion_lift "
            "WHERE window_days = $w AND period_grain = $grain AND segment = 'all') "
            "SELECT p.period_start, cast(sum(s.last_touch_revenue_usd) AS DOUBLE) "
            "FROM periods AS p JOIN fct_attribution_window_sensitivity AS s "
            "ON s.order_date BETWEEN p.period_start AND p.period_end "
            "AND s.window_days = $w AND s.scope = 'user' GROUP BY p.period_start",
            {"w": window_days, "grain": period},
        ).fetchall()
        by_start = {start: value or 0.0 for start, value in got}
        attributed = [by_start.get(start, 0.0) for start in lift["period_start"].to_list()]
    per_year = 365.0 / pl.col("n_days").cast(pl.Float64)
    return lift.with_columns(
        pl.Series("attributed_revenue_usd", attributed, dtype=pl.Float64),
        (pl.col("incremental_revenue_usd") * per_year).alias("run_rate_usd"),
        (pl.col("incremental_revenue_ci_low") * per_year).alias("run_rate_ci_low"),
        (pl.col("incremental_revenue_ci_high") * per_year).alias("run_rate_ci_high"),
    )


def balance_verdict(con: duckdb.DuckDBPyConnection, window_days: int, period: str = "all") -> str:
    """Return a one-line verdict of the adjusted method's covariate balance and overlap."""
    if not table_exists(con, "fct_lift_balance") or "covariate" not in [
        r[0] for r in con.execute("DESCRIBE fct_lift_balance").fetchall()
    ]:
        return "no balance diagnostics (no adjusted estimate)"
    rows = con.execute(
        "SELECT covariate, smd_before, smd_after FROM fct_lift_balance WHERE window_days = ? "
        "AND period_grain = ? ORDER BY abs(smd_after) DESC NULLS LAST",
        [window_days, period],
    ).fetchall()
    if not rows:
        return "no balance diagnostics for this window"
    worst_before = max(abs(r[1] or 0) for r in rows)
    worst_after = max(abs(r[2] or 0) for r in rows)
    verdict = "balanced" if worst_after < SMD_BALANCED else "NOT balanced"
    overlap = con.execute(
        "SELECT max(share_trimmed), min(ess_comparison) FROM fct_lift_overlap "
        "WHERE window_days = ? AND period_grain = ?",
        [window_days, period],
    ).fetchall()[0]
    return (
        f"{verdict}: max |SMD| {worst_before:.3f} before -> {worst_after:.3f} after weighting "
        f"(threshold {SMD_BALANCED}); trimmed {100 * (overlap[0] or 0):.1f}% of units, comparison "
        f"effective sample size {overlap[1] or 0:,.0f}. Balance covers observed covariates only."
    )
