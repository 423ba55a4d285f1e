"""Conversion lift by method (observed, adjusted, experiment), period, window and segment.

The SQL model ``fct_conversion_lift`` writes the daily ``observed`` rows for segments ``all``,
``marketplace=`` and ``channel=``. This module (pipeline stage ``lift``) adds every other row:
``observed`` for the other segments and for week/month/all periods, ``adjusted`` (propensity
weighting, ATT) and ``experiment`` (intent-to-treat per experiment, CUPED, SRM), then fills
p-values and Benjamini-Hochberg adjusted p-values for every row, and writes the diagnostics
tables ``fct_lift_balance`` and ``fct_lift_overlap``. A nightly build keeps the published rows of
settled day/week/month periods (``settled_through``; docs/operations.md, "What a nightly run
rebuilds"). See docs/lift.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

from attribution import lift_groups as lg
from attribution import lift_stats as ls
from attribution.config import Settings
from attribution.warehouse import atomic, table_exists, write_config_tables

GRAINS: tuple[str, ...] = ("day", "week", "month", "year", "all")
# grains whose settled periods a nightly build keeps (build_window.settled_lift_through)
SETTLED_GRAINS: tuple[str, ...] = ("day", "week", "month")
SQL_SEGMENT_DIMENSIONS: tuple[str, ...] = ("marketplace", "channel")
TREATMENT_ATTRIBUTES: tuple[str, ...] = ("model_version", "event_type")
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

# CTEs are MATERIALIZED: computed once each, in turn, instead of inlined into one plan whose
# joins and aggregates hold memory at the same time (at S the inlined plan needs more than 200 MB
# of DuckDB memory, the materialized one less than 100 MB). At L it needs 2-4 GB, and inside
# the pipeline it still ran out of a 4 GB limit: docs/performance.md, "Memory".
# A chunk of the lift's units: the users with codes in [$lo_code, $hi_code) of _lift_users.
# Chunked queries restrict every source to them (``_IN_CHUNK``), so DuckDB holds one chunk at a time.
_CHUNK_USERS = """chunk_users as materialized (
    select user_id from _lift_users where user_code >= $lo_code and user_code < $hi_code
)"""
_IN_CHUNK = "user_id in (select user_id from chunk_users)"


def _orders_sql(chunked: bool) -> str:
    return f"""orders as materialized (
    -- revenue stays DECIMAL until summed: exact sums, identical on every rerun
    select user_id, order_at, order_revenue_usd as revenue
    from int_orders where is_placed{f" and {_IN_CHUNK}" if chunked else ""}
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


def _activity_sql(chunked: bool) -> str:
    where = f"\n    where {_IN_CHUNK}" if chunked else ""
    return f"""{_CHUNK_USERS + "," if chunked else ""}
activity as materialized (
    select user_id, visit_date as activity_date, visit_at as activity_at, marketplace, channel,
        0 as is_session
    from stg_visits{where}
    union all
    select user_id, session_date, session_start, marketplace, channel, 1
    from assistant_sessions{where}
),
first_seen as materialized (
    select user_id, min(activity_at) as first_at,
        arg_min(marketplace, activity_at) as first_marketplace,
        arg_min(channel, activity_at) as first_channel
    from activity group by user_id
),
{_orders_sql(chunked)}"""


def _units_sql(chunked: bool) -> str:
    """Return the visitor-day units query (every user, or one chunk of ``_lift_users``)."""
    where = f"\n    where {_IN_CHUNK}" if chunked else ""
    return f"""
with {_activity_sql(chunked)},
activity_ranked as materialized (
    select *, row_number() over (
        partition by user_id, activity_date order by activity_at nulls last,
            is_session nulls last, marketplace nulls last, channel nulls last
    ) as activity_seq
    from activity
    where activity_date between $start_date and $end_date
),
visitor_days as materialized (
    select user_id, activity_date, min(activity_at) as index_at,
        max(is_session) = 1 as is_engaged,
        max(case when activity_seq = 1 then marketplace end) as marketplace,
        max(case when activity_seq = 1 then channel end) as channel
    from activity_ranked group by user_id, activity_date
),
session_days as materialized (
    select user_id, session_date,
        arg_min(model_version, session_start) as model_version,
        case min(case touch_type when 'help_me_decide' then 1 when 'comparison' then 2
            when 'product_question' then 3 when 'product_click' then 4
            when 'review_summary' then 5 else 6 end)
            when 1 then 'help_me_decide' when 2 then 'comparison' when 3 then 'product_question'
            when 4 then 'product_click' when 5 then 'review_summary' else 'query' end as event_type
    from assistant_sessions group by user_id, session_date
),
pre_orders as materialized ({_pre_period_sql("visitor_days", "activity_date", "index_at")}
),
active_days as materialized (
    select distinct user_id, activity_date from activity
),
pre_visits as materialized (
    -- distinct active days in the 28 days before each active day (all of history counts)
    select user_id, activity_date, count(*) over (
        partition by user_id order by activity_date nulls last
        range between interval 28 day preceding and interval 1 day preceding
    ) as pre_visit_days_28
    from active_days
)
select v.user_id, v.activity_date, v.index_at, v.is_engaged, v.marketplace, v.channel,
    s.model_version, s.event_type,
    cast(p.pre_orders_28 as double) as pre_orders_28, p.pre_revenue_28,
    cast(q.pre_visit_days_28 as double) as pre_visit_days_28,
    cast(date_diff('day', cast(f.first_at as date), cast(v.index_at as date)) as double)
        as tenure_days,
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
    from stg_assignments{where} group by user_id
) as h on h.user_id = v.user_id
"""


UNITS_SQL = _units_sql(chunked=False)


def _unit_outcomes_sql(chunked: bool) -> str:
    """Return the outcome per window of the units in ``_lift_units``."""
    return f"""
with {_CHUNK_USERS + "," if chunked else ""}
units as (select user_id, activity_date, index_at from _lift_units),
{_orders_sql(chunked)}
{_window_outcomes_sql("activity_date", "index_at")}
"""


UNIT_OUTCOMES_SQL = _unit_outcomes_sql(chunked=False)

EXPERIMENT_SQL = f"""
with {_activity_sql(chunked=False)},
units as materialized (
    select a.user_id, a.experiment_id, a.arm, a.assigned_at,
        cast(a.assigned_at as date) as assigned_date
    from stg_assignments as a
    where a.arm in ('treatment', 'holdout')
        and cast(a.assigned_at as date) between $start_date and $end_date
),
pre as materialized ({_pre_period_sql("units", "experiment_id", "assigned_at")}
),
outcome as materialized ({_window_outcomes_sql("experiment_id", "assigned_at")}
)
select u.user_id, dense_rank() over (order by u.user_id nulls last) - 1 as user_code,
    u.experiment_id, u.arm = 'treatment' as is_treatment, u.assigned_date,
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


# --- propensity ----------------------------------------------------------------------------


def _log_covariates(columns: list[np.ndarray]) -> np.ndarray:
    """Return the numeric propensity covariates, log1p of counts/money/tenure (one column each)."""
    return np.column_stack([np.log1p(np.maximum(c.astype(float), 0)) for c in columns])


def level_codes(values: pl.Series, fill: str | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Return (code per value, sorted levels); nulls become ``fill`` or code -1."""
    if fill is not None:
        values = values.fill_null(fill)
    levels = tuple(sorted(v for v in values.unique().to_list() if v is not None))
    codes = values.cast(pl.Enum(levels)).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
    return codes, levels


def design_from(
    numeric: np.ndarray, dims: list[tuple[str, np.ndarray, tuple[str, ...]]]
) -> tuple[np.ndarray, list[str]]:
    """Return the design matrix of some units: their numeric covariates, then one-hot columns of
    every level present of each (dimension, level codes, levels), the most frequent dropped."""
    names, one_hot = list(COVARIATES), []
    for dim, codes, levels in dims:
        counts = np.bincount(codes, minlength=len(levels))
        present = [i for i in range(len(levels)) if counts[i] > 0]
        base = max(present, key=lambda i: counts[i])  # first most frequent, as argmax
        for i in present:
            if i != base:
                one_hot.append((codes, i))
                names.append(f"{dim}={levels[i]}")
    x = np.empty((len(numeric), numeric.shape[1] + len(one_hot)))
    x[:, : numeric.shape[1]] = numeric
    for j, (codes, i) in enumerate(one_hot, start=numeric.shape[1]):
        x[:, j] = codes == i
    return x, names


def design_matrix(frame: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Return the propensity covariates (log1p of counts/money/tenure, one-hot marketplace and
    channel with the most frequent level dropped) and their names."""
    numeric = _log_covariates([frame[name].to_numpy() for name in COVARIATES])
    dims = [(dim, *level_codes(frame[dim], "unknown")) for dim in ("marketplace", "channel")]
    return design_from(numeric, dims)


def att_weights(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Return (propensity, ATT weights, design matrix, names) for a period's visitor-days.

    Engaged units weigh 1, comparison units p / (1 - p). Units with p outside [0.01, 0.99] get
    weight 0 (trimmed: no comparable counterpart).
    """
    x, names = design_matrix(frame)
    p, weights = att_weights_of(x, frame["is_engaged"].to_numpy())
    return p, weights, x, names


def standardize(x: np.ndarray) -> np.ndarray:
    """Return ``x`` with every column centred and scaled to unit variance (constant columns only
    centred), computed in place: no copy of the matrix."""
    mean = x.mean(axis=0)
    squares = np.zeros(x.shape[1])
    for rows in ls.row_blocks(len(x)):
        squares += ((x[rows] - mean) ** 2).sum(axis=0)
    sd = np.sqrt(squares / max(len(x), 1))
    sd[sd == 0] = 1.0
    x -= mean
    x /= sd
    return x


def att_weights_of(
    x: np.ndarray, t: np.ndarray, *, overwrite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return (propensity, ATT weights) of units with design matrix ``x`` and engagement ``t``.

    ``overwrite``: standardise ``x`` in place instead of a copy (it is then the standardised
    matrix; standardised mean differences are the same on it).
    """
    # standardise for a well-conditioned Newton fit (coefficients are not reported)
    z = standardize(x if overwrite else x.copy())
    beta = ls.fit_logistic(z, t)
    p = ls.predict_logistic(beta, z)
    weights = np.where(t, 1.0, p / (1 - p))
    weights[(p < TRIM_LOW) | (p > TRIM_HIGH)] = 0.0
    return p, weights


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


_EXPERIMENT_COLUMNS = (
    *("user_code", "experiment_id", "is_treatment", "assigned_date", "converted", "revenue"),
    *("pre_converted_28", "pre_revenue_28", "is_returning_buyer", "marketplace", "channel"),
)


def experiment_units_by_window(
    con: duckdb.DuckDBPyConnection, start: date, end: date, windows: tuple[int, ...]
) -> Iterator[tuple[int, pl.DataFrame]]:
    """Yield (window, one row per assigned user and experiment with that window's outcome and
    the pre-period), sorted by experiment and user code (dense, in user_id order; the ids stay
    in DuckDB). The query runs once into a temp table; Python holds one window at a time."""
    if not table_exists(con, "stg_assignments"):
        return
    params = {"start_date": start, "end_date": end}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _lift_experiment AS {EXPERIMENT_SQL}", params)
    try:
        for w in windows:
            yield (
                w,
                con.sql(
                    f"SELECT {', '.join(_EXPERIMENT_COLUMNS)} FROM _lift_experiment "
                    "WHERE window_days = $w ORDER BY experiment_id NULLS LAST, user_code NULLS LAST",
                    params={"w": w},
                )
                .pl()
                .with_columns(pl.lit(w, dtype=pl.Int32).alias("window_days")),
            )
    finally:
        con.execute("DROP TABLE IF EXISTS _lift_experiment")


# visitor-days per unit query: DuckDB and Python each hold one chunk's rows at a time
UNITS_PER_CHUNK = 1_000_000

# each active user's code (dense, in user_id order) and number of visitor-days in the range
_LIFT_USERS_SQL = """
select user_id, row_number() over (order by user_id nulls last) - 1 as user_code,
    count(*) as visitor_days
from (
    select user_id, visit_date as activity_date from stg_visits
    where visit_date between $start_date and $end_date
    union
    select user_id, session_date from assistant_sessions
    where session_date between $start_date and $end_date
) as active
group by user_id
"""

_UNIT_COLUMNS = (
    *("activity_date", "is_engaged", "is_holdout", "is_returning_buyer"),
    *("marketplace", "channel", "model_version", "event_type", *COVARIATES),
)


@dataclass(frozen=True)
class VisitorDays:
    """Visitor-day units as compact arrays, sorted by user then day (the lift stage's input)."""

    user: np.ndarray  # int32 dense user code (0..n_users-1, in user_id order)
    ordinal: np.ndarray  # int32 activity_date as days since 1970-01-01
    engaged: np.ndarray
    holdout: np.ndarray
    covariates: np.ndarray  # log1p covariates (COVARIATES order), one row per unit
    design_dims: list[tuple[str, np.ndarray, tuple[str, ...]]]  # marketplace/channel, nulls named
    dims: list[lg.Dimension]  # segment dimensions after ``all``
    outcomes: dict[int, tuple[np.ndarray, np.ndarray]]  # window -> (converted (bool), revenue)

    @property
    def day(self) -> pl.Series:
        """Return activity_date of every unit."""
        return pl.Series("activity_date", self.ordinal.astype("datetime64[D]"))

    def subset(self, keep: np.ndarray, window: int) -> VisitorDays:
        """Return the units where ``keep``, with the outcome of ``window`` only."""
        converted, revenue = self.outcomes[window]
        return VisitorDays(
            user=self.user[keep],
            ordinal=self.ordinal[keep],
            engaged=self.engaged[keep],
            holdout=self.holdout[keep],
            covariates=self.covariates[keep],
            design_dims=[(d, codes[keep], levels) for d, codes, levels in self.design_dims],
            dims=[replace(d, codes=d.codes[keep]) for d in self.dims],
            outcomes={window: (converted[keep], revenue[keep])},
        )


class _LevelCodes:
    """Level codes of one text column, filled chunk by chunk: codes in order of first sight,
    renumbered in sorted level order at the end (as ``level_codes`` of the whole column)."""

    def __init__(self, n: int) -> None:
        self.codes = np.full(n, -1, dtype=np.int16)
        self.seen: dict[str, int] = {}

    def put(self, at: int, values: pl.Series) -> None:
        for value in values.drop_nulls().unique().sort().to_list():
            self.seen.setdefault(value, len(self.seen))
        codes = values.replace_strict(
            list(self.seen), list(self.seen.values()), default=-1, return_dtype=pl.Int16
        )
        self.codes[at : at + len(values)] = codes.to_numpy()

    def sorted(self, fill: str | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
        """Return (code per value, sorted levels); nulls become ``fill`` or code -1."""
        names = set(self.seen)
        has_null = bool((self.codes < 0).any())
        if fill is not None and has_null:
            names.add(fill)
        levels = tuple(sorted(names))
        position = {name: i for i, name in enumerate(levels)}
        # lut[code] for first-sight codes; lut[-1] (the last slot) for nulls
        lut = np.array([position[name] for name in self.seen] + [-1], dtype=np.int16)
        if fill is not None and has_null:
            lut[-1] = position[fill]
        return lut[self.codes], levels


def _chunk_bounds(visitor_days: np.ndarray, per_chunk: int) -> list[tuple[int, int]]:
    """Return [lo, hi) user-code ranges of at most ``per_chunk`` visitor-days each (a user with
    more has a chunk of its own)."""
    ends = np.cumsum(visitor_days)
    bounds: list[tuple[int, int]] = []
    lo, done = 0, 0
    while lo < len(visitor_days):
        hi = max(int(np.searchsorted(ends, done + per_chunk, side="right")), lo + 1)
        bounds.append((lo, hi))
        lo, done = hi, int(ends[hi - 1])
    return bounds


def load_visitor_days(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    windows: tuple[int, ...],
    units_per_chunk: int | None = None,
) -> VisitorDays:
    """Return the visitor-days of [start, end] with covariates and their outcome per window.

    Units are queried in chunks of whole users (``units_per_chunk`` visitor-days at most), in
    user order, into preallocated compact arrays: DuckDB and Python hold one chunk's rows at a
    time (default ``UNITS_PER_CHUNK``). Only codes and numbers leave DuckDB (no user ids).
    """
    params: dict[str, Any] = {"start_date": start, "end_date": end}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _lift_users AS {_LIFT_USERS_SQL}", params)
    per_user = (
        con.sql("SELECT visitor_days FROM _lift_users ORDER BY user_code NULLS LAST")
        .fetchnumpy()["visitor_days"]
        .astype(np.int64)
    )
    n = int(per_user.sum())
    user = np.repeat(np.arange(len(per_user), dtype=np.int32), per_user)
    ordinal = np.empty(n, dtype=np.int32)
    engaged, holdout, returning = (np.empty(n, dtype=bool) for _ in range(3))
    covariates = np.empty((n, len(COVARIATES)))
    text = {name: _LevelCodes(n) for name in ("marketplace", "channel", *TREATMENT_ATTRIBUTES)}
    outcomes = {w: (np.empty(n, dtype=bool), np.empty(n)) for w in windows}
    at = 0
    for lo, hi in _chunk_bounds(per_user, units_per_chunk or UNITS_PER_CHUNK):
        chunk = {**params, "lo_code": lo, "hi_code": hi}
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _lift_units AS SELECT u.*, c.user_code "
            f"FROM ({_units_sql(chunked=True)}) AS u JOIN _lift_users AS c USING (user_id)",
            chunk,
        )
        units = con.sql(
            f"SELECT {', '.join(_UNIT_COLUMNS)} FROM _lift_units "
            "ORDER BY user_code NULLS LAST, activity_date NULLS LAST"
        ).pl()
        rows = slice(at, at + units.height)
        ordinal[rows] = units["activity_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
        engaged[rows] = units["is_engaged"].to_numpy()
        holdout[rows] = units["is_holdout"].to_numpy()
        returning[rows] = units["is_returning_buyer"].to_numpy()
        covariates[rows] = _log_covariates([units[name].to_numpy() for name in COVARIATES])
        for name, codes in text.items():
            codes.put(at, units[name])
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _lift_outcomes AS {_unit_outcomes_sql(chunked=True)}",
            {"lo_code": lo, "hi_code": hi},
        )
        for w, (converted, revenue) in outcomes.items():
            got = con.sql(
                "SELECT o.converted, o.revenue FROM _lift_units AS u JOIN _lift_outcomes AS o "
                "USING (user_id, activity_date) WHERE o.window_days = $w "
                "ORDER BY u.user_code NULLS LAST, u.activity_date NULLS LAST",
                params={"w": w},
            ).fetchnumpy()
            converted[rows], revenue[rows] = got["converted"], got["revenue"]
        at += units.height
    for table in ("_lift_units", "_lift_outcomes", "_lift_users"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    if at != n:
        raise RuntimeError(f"lift units: {at} visitor-days loaded, {n} expected")
    dims = [
        lg.Dimension(dim, *text[dim].sorted(), of_treated=dim in TREATMENT_ATTRIBUTES)
        for dim in ("marketplace", "channel", *TREATMENT_ATTRIBUTES)
    ]
    dims.append(_buyer_dimension(returning))
    return VisitorDays(
        user=user,
        ordinal=ordinal,
        engaged=engaged,
        holdout=holdout,
        covariates=covariates,
        design_dims=[(d, *text[d].sorted("unknown")) for d in ("marketplace", "channel")],
        dims=dims,
        outcomes=outcomes,
    )


@dataclass(frozen=True)
class PeriodFits:
    """The adjusted method's propensity fits of every period of one grain."""

    fitted: np.ndarray  # per period: was a propensity model fitted
    weights: np.ndarray  # per unit: ATT weight (0: holdout, trimmed or period not fitted)
    balance_rows: list[dict[str, Any]]
    overlap_rows: list[dict[str, Any]]


def _period_rows(period: np.ndarray, n_periods: int) -> list[np.ndarray]:
    """Return the unit indices of each period, in unit order."""
    order = np.argsort(period, kind="stable")
    bounds = np.searchsorted(period[order], np.arange(n_periods + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n_periods)]


@dataclass(frozen=True)
class _Fit:
    """One period's propensity fit: eligible rows, ATT weights, diagnostics rows."""

    rows: np.ndarray
    weights: np.ndarray
    balance_rows: list[dict[str, Any]]
    overlap_row: dict[str, Any]


FitCache = dict[tuple[int, int], _Fit]


def _fit(units: VisitorDays, rows: np.ndarray, key: dict[str, Any]) -> _Fit | None:
    # holdout users could not engage: the adjusted comparison leaves them out
    rows = rows[~units.holdout[rows]]
    t = units.engaged[rows]
    if t.sum() < 2 or (~t).sum() < 2:
        return None
    x, names = design_from(
        units.covariates[rows], [(d, c[rows], lv) for d, c, lv in units.design_dims]
    )
    # the standardised matrix serves the balance table too (mean differences in sd units are
    # the same): one matrix of the period's units in memory
    p, w = att_weights_of(x, t, overwrite=True)
    return _Fit(rows, w, _balance(key, x, names, t, w), _overlap(key, p, t, w))


def _rekeyed(row: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
    return {**row, **{k: key[k] for k in _DIAGNOSTIC_KEYS}}


_DIAGNOSTIC_KEYS = ("period_start", "period_end", "period_grain", "window_days")


def fit_periods(
    units: VisitorDays,
    period_rows: list[np.ndarray],
    keys: list[dict[str, Any]],
    cache: FitCache,
    cache_through: int,
) -> PeriodFits:
    """Fit the propensity model of each period over its eligible (non-holdout) units.

    A period's fit depends only on its units, not on the window: periods whose days are all at
    or before ``cache_through`` (day ordinal; complete for every window) are fitted once and
    taken from ``cache`` for the next windows.
    """
    fitted = np.zeros(len(period_rows), dtype=bool)
    weights = np.zeros(len(units.user))
    balance_rows: list[dict[str, Any]] = []
    overlap_rows: list[dict[str, Any]] = []
    for i, rows in enumerate(period_rows):
        days = units.ordinal[rows]
        span = (int(days.min()), int(days.max())) if len(rows) else (0, -1)
        fit = cache.get(span)
        if fit is None:
            fit = _fit(units, rows, keys[i])
            if fit is None:
                continue
            if span[1] <= cache_through:
                cache[span] = fit
        else:
            # the cached rows are positions in an earlier window's units: same units, same
            # order, but this window's positions
            fit = replace(fit, rows=rows[~units.holdout[rows]])
        fitted[i], weights[fit.rows] = True, fit.weights
        balance_rows.extend(_rekeyed(row, keys[i]) for row in fit.balance_rows)
        overlap_rows.append(_rekeyed(fit.overlap_row, keys[i]))
    return PeriodFits(fitted, weights, balance_rows, overlap_rows)


def _grain_periods(
    day: pl.Series, grain: str, start: date
) -> tuple[np.ndarray, list[tuple[date, date]], list[int]]:
    """Return (period number per unit, (start, end) per period in order, days per period)."""
    framed = _with_periods(day.to_frame("activity_date"), "activity_date", grain, start)
    bounds = framed.select("period_start", "period_end").unique().sort("period_start")
    starts = framed["period_start"].to_numpy()
    number = np.searchsorted(bounds["period_start"].to_numpy(), starts).astype(np.int64)
    ordinal = day.to_numpy().astype("datetime64[D]").astype(np.int64)
    span = int(ordinal.max() - ordinal.min()) + 1 if len(ordinal) else 1
    period_days = np.unique(number * span + (ordinal - (ordinal.min() if len(ordinal) else 0)))
    days = np.bincount(period_days // span, minlength=bounds.height)
    return number, list(bounds.iter_rows()), [int(d) for d in days]


def _period_keys(
    bounds: list[tuple[date, date]], n_days: list[int], grain: str, w: int, **extra: Any
) -> list[dict[str, Any]]:
    return [
        {
            "period_start": p_start,
            "period_end": p_end,
            "period_grain": grain,
            "window_days": w,
            **extra,
            "n_days": days,
        }
        for (p_start, p_end), days in zip(bounds, n_days, strict=True)
    ]


def _buyer_dimension(returning: np.ndarray) -> lg.Dimension:
    return lg.Dimension("buyer", returning.astype(np.int8), ("new", "returning"))


def _everyone(n: int) -> lg.Dimension:
    """Return the dimension of segment ``all``: every one of ``n`` units at its one level."""
    return lg.Dimension("all", np.zeros(n, dtype=np.int8), ("all",))


def _segment_clusters(
    dims: list[lg.Dimension], user: np.ndarray, period: np.ndarray, n_periods: int
) -> list[lg.Clusters]:
    """Return the clusters of segment ``all`` and then of each dimension."""
    return [lg.clusters_of(d, user, period, n_periods) for d in (_everyone(len(user)), *dims)]


def _segment_stats(
    clusters: list[lg.Clusters],
    treated: np.ndarray,
    converted: np.ndarray,
    revenue: np.ndarray,
    weights: np.ndarray | None,
) -> list[lg.GroupStats]:
    """Return the group statistics of every dimension (segment ``all`` first; ``weights``
    None: every unit weighs 1)."""
    whole = lg.group_stats(clusters[0], treated, converted, revenue, weights)
    return [whole] + [
        lg.group_stats(c, treated, converted, revenue, weights, whole) for c in clusters[1:]
    ]


def grain_rows(
    units: VisitorDays, w: int, grain: str, start: date, cache: FitCache, cache_through: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (lift rows, balance rows, overlap rows) of every period and segment of a grain.

    One segment dimension's clusters at a time (segment ``all`` kept for the treatment
    attributes): memory holds two dimensions' clusters, not all of them.
    """
    period, bounds, n_days = _grain_periods(units.day, grain, start)
    keys = _period_keys(bounds, n_days, grain, w)
    fits = fit_periods(units, _period_rows(period, len(bounds)), keys, cache, cache_through)
    converted, revenue = units.outcomes[w]
    converted = converted.astype(float)
    methods = (("observed", None), ("adjusted", fits.weights))
    everyone = _everyone(len(units.user))
    whole_clusters = lg.clusters_of(everyone, units.user, period, len(bounds))
    whole = {
        method: lg.group_stats(whole_clusters, units.engaged, converted, revenue, weights)
        for method, weights in methods
    }
    placed: list[tuple[int, int, dict[str, Any]]] = []  # (period, dimension, row)
    for d, dim in enumerate((everyone, *units.dims)):
        if d == 0:
            stats = whole
        else:
            clusters = lg.clusters_of(dim, units.user, period, len(bounds))
            stats = {
                method: lg.group_stats(
                    clusters, units.engaged, converted, revenue, weights, whole[method]
                )
                for method, weights in methods
            }
        for p, key in enumerate(keys):
            for level in range(len(dim.levels)):
                group = p * len(dim.levels) + level
                if not lg.has_both_sides(stats["observed"], group):
                    continue
                segment = dim.segment(level)
                if not (grain == "day" and dim.name in ("all", *SQL_SEGMENT_DIMENSIONS)):
                    row = lg.comparison_row(stats["observed"], group)
                    placed.append(
                        (
                            p,
                            d,
                            {
                                **key,
                                "segment": segment,
                                "method": "observed",
                                **row,
                                "ci_method": "cluster_delta_log_ratio",
                            },
                        )
                    )
                if fits.fitted[p]:
                    row = lg.comparison_row(stats["adjusted"], group)
                    placed.append(
                        (
                            p,
                            d,
                            {
                                **key,
                                "segment": segment,
                                "method": "adjusted",
                                **row,
                                "ci_method": "ipw_att_cluster_delta_log_ratio",
                            },
                        )
                    )
    # rows in (period, dimension, level) order, as one pass per period writes them
    placed.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in placed], fits.balance_rows, fits.overlap_rows


Rows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def _grain_rows_in_batches(
    units: VisitorDays, w: int, grain: str, start: date, cache: FitCache, cache_through: int
) -> Rows:
    """Return ``grain_rows`` computed over batches of whole, consecutive periods of at most
    ``UNITS_PER_CHUNK`` units (a bigger period is a batch of its own): a period's rows depend
    only on its units, so the rows are the same, in the same order, and memory follows the
    batch (days, weeks, months), not the whole range."""
    period, bounds, _ = _grain_periods(units.day, grain, start)
    batches = _chunk_bounds(np.bincount(period, minlength=len(bounds)), UNITS_PER_CHUNK)
    if len(batches) <= 1:
        return grain_rows(units, w, grain, start, cache, cache_through)
    out: Rows = ([], [], [])
    for lo, hi in batches:
        batch = units.subset((period >= lo) & (period < hi), w)
        for rows, more in zip(
            out, grain_rows(batch, w, grain, start, cache, cache_through), strict=True
        ):
            rows.extend(more)
    return out


def _ends_after(units: VisitorDays, grain: str, start: date, day: date) -> np.ndarray:
    """Return whether each unit's period of ``grain`` ends after ``day``."""
    framed = _with_periods(units.day.to_frame("activity_date"), "activity_date", grain, start)
    return (framed["period_end"] > day).to_numpy()


def visitor_day_rows(
    units: VisitorDays,
    windows: tuple[int, ...],
    start: date,
    end: date,
    settled_through: date | None = None,
) -> Rows:
    """Return (lift rows, balance rows, overlap rows) for methods observed and adjusted.

    ``settled_through``: leave out the periods of grains ``SETTLED_GRAINS`` that end on or
    before that day (a nightly build keeps their published rows: ``settled_rows``).
    """
    lift_rows: list[dict[str, Any]] = []
    balance_rows: list[dict[str, Any]] = []
    overlap_rows: list[dict[str, Any]] = []
    # periods complete for every window have the same units in each: their fits are shared
    cache_through = (np.datetime64(end) - np.timedelta64(max(windows), "D")).astype(np.int64)
    single_year: dict[int, Rows] = {}
    for grain in GRAINS:
        cache: FitCache = {}
        unsettled = (
            _ends_after(units, grain, start, settled_through)
            if settled_through is not None and grain in SETTLED_GRAINS
            else True
        )
        for w in windows:
            # only visitor-days whose whole window lies inside the data
            complete = (units.ordinal + w <= np.datetime64(end).astype(np.int64)) & unsettled
            if not complete.any():
                continue
            part = units.subset(complete, w)
            if grain == "all" and w in single_year:
                # one calendar year holds every unit: the whole range is that year's rows
                key = {"period_start": start, "period_end": part.day.max(), "period_grain": "all"}
                got = tuple([{**row, **key} for row in rows] for rows in single_year[w])
            else:
                got = _grain_rows_in_batches(part, w, grain, start, cache, int(cache_through))
            if grain == "year" and part.day.dt.year().n_unique() == 1:
                single_year[w] = got
            lift_rows.extend(got[0])
            balance_rows.extend(got[1])
            overlap_rows.extend(got[2])
    return lift_rows, balance_rows, overlap_rows


def _balance(
    key: dict[str, Any], x: np.ndarray, names: list[str], t: np.ndarray, weights: np.ndarray
) -> list[dict[str, Any]]:
    before = ls.smd_columns(x, t)
    after = ls.smd_columns(x, t, weights, keep=weights > 0)
    period = {k: key[k] for k in ("period_start", "period_end", "period_grain", "window_days")}
    return [
        {
            **period,
            "segment": "all",
            "method": "adjusted",
            "covariate": name,
            "smd_before": b,
            "smd_after": a,
            "balanced": a is not None and abs(a) < SMD_BALANCED,
        }
        for name, b, a in zip(names, before, after, strict=True)
    ]


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


EXPERIMENT_SHARES_SQL = "SELECT experiment_id, expected_holdout_share FROM cfg_experiments"


def expected_holdout_shares(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Return the design holdout share per experiment: defaults, overridden by cfg_experiments."""
    rows = (
        con.execute(EXPERIMENT_SHARES_SQL).fetchall()
        if table_exists(con, "cfg_experiments")
        else []
    )
    return holdout_shares_with(rows)


def holdout_shares_with(overrides: Iterable[tuple[Any, Any]]) -> dict[str, float]:
    """Return the default design holdout shares, overridden by (experiment_id, share) rows."""
    return {**EXPECTED_HOLDOUT_SHARE, **{str(e): float(share) for e, share in overrides}}


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
            # clusters are users (one unit per user): ``user_code`` in user order
            complete = per_exp.filter(
                (pl.col("window_days") == w)
                & (pl.col("assigned_date") + pl.duration(days=w) <= pl.lit(end))
            ).sort("user_code")
            if complete.is_empty():
                continue
            for grain in GRAINS:
                rows.extend(_experiment_grain_rows(complete, grain, w, start, experiment_id, share))
    return rows


def _experiment_grain_rows(
    units: pl.DataFrame, grain: str, w: int, start: date, experiment_id: str, share: float
) -> list[dict[str, Any]]:
    """Return the experiment rows of every period and segment of one grain (one experiment,
    one window; ``units`` sorted by user, one unit per user: clusters are units)."""
    user = units["user_code"].to_numpy()
    period, bounds, n_days = _grain_periods(units["assigned_date"], grain, start)
    keys = _period_keys(bounds, n_days, grain, w, experiment_id=experiment_id)
    treated = units["is_treatment"].to_numpy().astype(bool)
    converted = units["converted"].to_numpy().astype(float)
    revenue = units["revenue"].to_numpy().astype(float)
    dims = [lg.Dimension(d, *level_codes(units[d])) for d in ("marketplace", "channel")]
    dims.append(_buyer_dimension(units["is_returning_buyer"].to_numpy()))
    clusters = _segment_clusters(dims, user, period, len(bounds))
    stats = _segment_stats(clusters, treated, converted, revenue, None)
    pre = units["pre_converted_28"].to_numpy()
    cupeds = [lg.cuped(s.clusters, treated, converted, pre) for s in stats]
    rows: list[dict[str, Any]] = []
    for p, key in enumerate(keys):
        for s, cup in zip(stats, cupeds, strict=True):
            dim = s.clusters.dimension
            for level in range(len(dim.levels)):
                group = p * len(dim.levels) + level
                if not lg.has_both_sides(s, group):
                    continue
                srm = ls.srm_p_value(
                    int(s.engaged.n_raw[group]), int(s.comparison.n_raw[group]), share
                )
                rows.append(
                    {
                        **key,
                        "segment": dim.segment(level),
                        "method": "experiment",
                        **lg.comparison_row(s, group),
                        "ci_method": "delta_log_ratio",
                        **lg.cuped_row(cup, group),
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
    return with_binomial_p(
        con.sql(
            "SELECT period_start, segment, window_days, n_engaged, n_comparison, "
            f"conversions_engaged, conversions_comparison FROM fct_conversion_lift WHERE {_SQL_OWNED}"
        ).pl()
    )


# the key of a lift row, and of the families over which p_value_bh is adjusted
LIFT_KEYS = ["period_start", "period_grain", "method", "window_days", "experiment_id", "segment"]
_BH_FAMILY = ["period_start", "period_grain", "method", "window_days", "experiment_id"]


def p_values_with_bh(sql_rows: pl.DataFrame, python_rows: pl.DataFrame) -> pl.DataFrame:
    """Return LIFT_KEYS, p_value and p_value_bh of every lift row: the SQL-owned daily observed
    rows (``sql_rows``: period_start, segment, window_days, p_value) and the Python rows, with
    Benjamini-Hochberg over each family (whichever engine computed the rows)."""
    sql_keyed = sql_rows.with_columns(
        pl.lit("day").alias("period_grain"),
        pl.lit("observed").alias("method"),
        pl.lit(None, dtype=pl.Utf8).alias("experiment_id"),
        pl.col("window_days").cast(pl.Int32),
    ).select([*LIFT_KEYS, "p_value"])
    every = pl.concat(
        [sql_keyed, python_rows.select([*LIFT_KEYS, "p_value"])], how="vertical_relaxed"
    )
    return _bh(every, _BH_FAMILY)


def with_bh_of(python_rows: pl.DataFrame, every: pl.DataFrame) -> pl.DataFrame:
    """Return the Python rows with their p_value_bh taken from ``every`` (``p_values_with_bh``)."""
    return python_rows.drop("p_value_bh").join(
        every.select([*LIFT_KEYS, "p_value_bh"]), on=LIFT_KEYS, how="left", nulls_equal=True
    )


def with_binomial_p(frame: pl.DataFrame) -> pl.DataFrame:
    """Return SQL-owned lift rows (with their counts) with their binomial p_value."""
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


@dataclass(frozen=True)
class LiftWrite:
    """What ``write_lift_tables`` wrote: Python-owned lift rows, of which kept (settled)."""

    rows: int
    kept: int


# the published rows of settled periods (``settled_through``): observed and adjusted rows of the
# day/week/month grains, the Python-owned ones; the experiment rows are always recomputed
_SETTLED_GRAIN = f"period_grain IN ({', '.join(repr(g) for g in SETTLED_GRAINS)})"
_SETTLED_LIFT = (
    f"NOT ({_SQL_OWNED}) AND experiment_id IS NULL AND method IN ('observed', 'adjusted') "
    f"AND {_SETTLED_GRAIN} AND period_end <= $through"
)


def settled_rows(con: duckdb.DuckDBPyConnection, settled_through: date | None) -> pl.DataFrame:
    """Return the published Python-owned lift rows of the periods settled through that day (the
    rows ``visitor_day_rows`` leaves out), as ``LIFT_COLUMNS``; none for None."""
    if settled_through is None:
        return _frame([])
    _ensure_lift_columns(con)
    columns = ", ".join(f'"{c}"' for c in LIFT_COLUMNS)
    found = con.sql(
        f"SELECT {columns} FROM fct_conversion_lift WHERE {_SETTLED_LIFT}",
        params={"through": settled_through},
    ).pl()
    return found.select(pl.col(c).cast(t) for c, t in LIFT_COLUMNS.items())


def with_settled_diagnostics(
    con: duckdb.DuckDBPyConnection, name: str, fresh: pl.DataFrame, settled_through: date | None
) -> pl.DataFrame:
    """Return the published diagnostics rows (balance or overlap) of the settled periods, then
    ``fresh``, in ``fresh``'s columns and types."""
    if settled_through is None or not table_exists(con, name):
        return fresh
    columns = {r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()}
    if not {"period_grain", "period_end"} <= columns:  # written empty: nothing settled
        return fresh
    old = con.sql(
        f'SELECT * FROM "{name}" WHERE {_SETTLED_GRAIN} AND period_end <= $through',
        params={"through": settled_through},
    ).pl()
    if fresh.is_empty():
        return old
    return pl.concat([old.select(fresh.columns).cast(dict(fresh.schema)), fresh])


def write_lift_tables(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    start: date,
    end: date,
    expected_shares: Mapping[str, float] | None = None,
    *,
    settled_through: date | None = None,
) -> LiftWrite:
    """Compute and write every Python-owned lift row for [start, end]; return rows written.

    Replaces all rows of ``fct_conversion_lift`` except the SQL-owned daily observed rows, then
    sets p_value / p_value_bh on every row. Writes ``fct_lift_balance`` and ``fct_lift_overlap``.
    ``settled_through`` (a nightly build: ``build_window.settled_lift_through``): the day, week
    and month periods ending on or before that day keep their published rows (p_value_bh is
    adjusted again over every row) instead of being recomputed; the same rows, by construction.
    """
    write_config_tables(con, settings)
    windows = tuple(settings.windows_days)
    units = load_visitor_days(con, start, end, windows)
    lift_rows, balance_rows, overlap_rows = visitor_day_rows(
        units, windows, start, end, settled_through
    )
    del units  # the experiments' units come next: one stage's arrays in memory at a time
    shares = dict(expected_holdout_shares(con))
    shares.update(expected_shares or {})
    for w, exp in experiment_units_by_window(con, start, end, windows):
        lift_rows.extend(experiment_rows(exp, (w,), start, end, shares))
    kept = settled_rows(con, settled_through)
    python_rows = pl.concat([kept, _frame(lift_rows)])

    every = p_values_with_bh(_sql_row_p_values(con), python_rows)

    with atomic(con):
        _ensure_lift_columns(con)
        con.execute(f"DELETE FROM fct_conversion_lift WHERE NOT ({_SQL_OWNED})")
        python_rows = with_bh_of(python_rows, every)
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
        for name, rows in (("fct_lift_balance", balance_rows), ("fct_lift_overlap", overlap_rows)):
            fresh = diagnostics_frame(rows)
            _write_frame(con, name, with_settled_diagnostics(con, name, fresh, settled_through))
    return LiftWrite(python_rows.height, kept.height)


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


def diagnostics_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return the balance or overlap rows as a frame, column types read from every row (a
    column that is null in the first rows, e.g. an undefined SMD, still gets its float type)."""
    return pl.DataFrame(rows, infer_schema_length=None)


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
        "ORDER BY period_start NULLS LAST, method NULLS LAST, segment NULLS LAST, "
        "experiment_id NULLS FIRST",
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
        "AND segment = 'all' ORDER BY period_start NULLS LAST, method NULLS LAST, "
        "experiment_id NULLS FIRST",
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
