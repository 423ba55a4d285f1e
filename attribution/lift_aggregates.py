"""The lift's estimators from aggregates an SQL engine returns (DuckDB or Spark): no unit in Python.

``attribution.lift`` reads one row per visitor-day into numpy and computes every row there. Here
the same rows (``visitor_day_rows``, ``experiment_rows``) come from GROUP BY queries: Python
receives one row per (period, segment, side) group, per propensity fit, per covariate, and only
solves k x k systems. The queries are DuckDB SQL that passes ``portability.lint_sql``, so the
Spark engine runs the same text through ``to_spark_sql`` (docs/lift.md, "From aggregates").

How each statistic is an aggregate (docs/lift.md gives the estimators):

* means and counts per group: sums over units;
* the clustered delta-method variance: a two-level GROUP BY. Clusters (user x period x
  segment level) get ``A = sum(w y)`` and ``B = sum(w)`` per side; joined back to their
  group's sums they give each cluster's influence ``(A1 - m1 B1) / (W1 m1) - (A0 - m0 B0) /
  (W0 m0)``, whose squares are summed per group. Treatment-attribute segments
  (``model_version=``, ``event_type=``) take the comparison influence of the user's cluster of
  segment ``all`` (their comparison side is the period's whole one);
* the propensity fit (adjusted): Newton-Raphson where each step's gradient ``X'(t - p)`` and
  Hessian ``X'VX`` are sums per fit with the current coefficients, means and standard
  deviations joined from a small registered table; Python solves the system;
* weights, trimming, balance (SMD) and overlap: sums, minima and maxima per fit and side,
  variances from deviations around the side's mean (two passes, as numpy);
* CUPED (experiments): per-group means, then sums of deviations, then the adjusted arm means,
  then the squared influence values, each a GROUP BY over the previous one.

The engine is anything with ``query`` / ``create`` / ``register`` / ``drop`` (``Engine``);
``DuckDBEngine`` wraps a connection, ``spark_engine.SparkLiftEngine`` a Spark session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import duckdb
import numpy as np
import polars as pl

from attribution import lift
from attribution import lift_groups as lg
from attribution import lift_stats as ls
from attribution.warehouse import bound_parameters

UNITS = "_lift_agg_units"  # one row per (visitor-day, window): covariates and outcome
EXPERIMENT_UNITS = "_lift_agg_experiment"  # one row per (assigned user, experiment, window)
FIT_PARAMETERS = "_lift_agg_fit"  # one row per (grain, window, period) fit: beta, mean, sd
DIMENSIONS: tuple[str, ...] = ("all", "marketplace", "channel", *lift.TREATMENT_ATTRIBUTES, "buyer")
EXPERIMENT_DIMENSIONS: tuple[str, ...] = ("all", "marketplace", "channel", "buyer")
FIT_KEYS: tuple[str, ...] = ("grain", "window_days", "period_start")
MAX_NEWTON_STEPS = 50  # as lift_stats.fit_logistic
RIDGE = 1e-6


class Engine(Protocol):
    """What the aggregated lift needs from an SQL engine (DuckDB SQL text in, polars out)."""

    def query(self, sql: str, params: Mapping[str, Any], *, plain: bool = False) -> pl.DataFrame:
        """Return the result of a query (``$name`` parameters bound from ``params``).

        ``plain``: the query is one join of a table with a small one and a GROUP BY, planned
        well as written (an engine may skip its optimizer)."""
        ...

    def create(self, name: str, sql: str, params: Mapping[str, Any]) -> None:
        """Materialise a query as the relation ``name`` (temp table, cached view)."""
        ...

    def register(self, name: str, frame: pl.DataFrame) -> None:
        """Make a small polars frame readable as the relation ``name``."""
        ...

    def drop(self, name: str) -> None:
        """Forget the relation ``name`` (no error if absent)."""
        ...


@dataclass
class DuckDBEngine:
    """The aggregated lift's engine on a DuckDB connection (temp tables)."""

    con: duckdb.DuckDBPyConnection

    def query(self, sql: str, params: Mapping[str, Any], *, plain: bool = False) -> pl.DataFrame:
        if not plain:
            return self.con.sql(sql, params=bound_parameters(sql, params)).pl()
        # the Newton sums repeat the propensity's expression in every product: DuckDB's
        # optimizer spends 4x longer on them than running them takes
        self.con.execute("PRAGMA disable_optimizer")
        try:
            return self.con.sql(sql, params=bound_parameters(sql, params)).pl()
        finally:
            self.con.execute("PRAGMA enable_optimizer")

    def create(self, name: str, sql: str, params: Mapping[str, Any]) -> None:
        self.con.execute(
            f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}', bound_parameters(sql, params)
        )

    def register(self, name: str, frame: pl.DataFrame) -> None:
        self.con.register("_lift_agg_frame", frame.to_arrow())
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT * FROM _lift_agg_frame')
        self.con.unregister("_lift_agg_frame")

    def drop(self, name: str) -> None:
        self.con.execute(f'DROP TABLE IF EXISTS "{name}"')


# --- the unit relations ----------------------------------------------------------------------

_LOG_COVARIATES = ", ".join(f"ln(1e0 + greatest(u.{c}, 0e0)) as x_{c}" for c in lift.COVARIATES)

# one row per (visitor-day, window): lift.py's units joined to their outcome in each window
VISITOR_DAYS_SQL = f"""
select u.user_id, u.activity_date, u.is_engaged, u.is_holdout, u.is_returning_buyer,
    u.marketplace, u.channel, u.model_version, u.event_type, {_LOG_COVARIATES},
    o.window_days, cast(o.converted as double) as converted, o.revenue
from _lift_units as u
join _lift_unit_outcomes as o on o.user_id = u.user_id and o.activity_date = u.activity_date
where o.window_days in (select window_days from _lift_agg_windows)
"""

EXPERIMENTS_SQL = """
select user_id, experiment_id, is_treatment, assigned_date, window_days,
    cast(converted as double) as converted, revenue, cast(pre_converted_28 as double) as pre,
    is_returning_buyer, marketplace, channel
from _lift_experiment_rows
where window_days in (select window_days from _lift_agg_windows)
"""


def create_unit_relations(
    engine: Engine,
    start: date,
    end: date,
    windows: Sequence[int],
    *,
    experiments: bool = True,
) -> None:
    """Materialise ``UNITS`` (and ``EXPERIMENT_UNITS``) of ``windows`` with lift.py's unit
    queries (they read stg_visits, assistant_sessions, int_orders, stg_assignments,
    cfg_windows)."""
    params = {"start_date": start, "end_date": end}
    engine.register(
        "_lift_agg_windows",
        pl.DataFrame({"window_days": list(windows)}, schema={"window_days": pl.Int32}),
    )
    engine.create("_lift_units", lift.UNITS_SQL, params)
    engine.create("_lift_unit_outcomes", lift.UNIT_OUTCOMES_SQL, params)
    engine.create(UNITS, VISITOR_DAYS_SQL, params)
    for name in ("_lift_unit_outcomes", "_lift_units"):
        engine.drop(name)
    if experiments:
        engine.create("_lift_experiment_rows", lift.EXPERIMENT_SQL, params)
        engine.create(EXPERIMENT_UNITS, EXPERIMENTS_SQL, params)
        engine.drop("_lift_experiment_rows")
    engine.drop("_lift_agg_windows")


def drop_unit_relations(engine: Engine) -> None:
    for name in (UNITS, EXPERIMENT_UNITS, FIT_PARAMETERS):
        engine.drop(name)


# --- SQL pieces --------------------------------------------------------------------------------


def _div(numerator: str, denominator: str) -> str:
    """Return a portable DOUBLE division (NULL when the denominator is 0)."""
    return f"(cast({numerator} as double) / nullif({denominator}, 0))"


def _period_start(day: str) -> str:
    """Return the period start of ``day`` for the grain in column ``grain``."""
    return f"""case g.grain
        when 'day' then {day}
        when 'week' then cast(date_trunc('week', {day}) as date)
        when 'month' then cast(date_trunc('month', {day}) as date)
        when 'year' then cast(date_trunc('year', {day}) as date)
        else cast($start_date as date) end"""


_GRAINS = "(values " + ", ".join(f"('{g}')" for g in lift.GRAINS) + ") as g(grain)"


def _complete(day: str) -> str:
    """Return the condition: the unit's whole window lies inside the data."""
    return f"date_diff('day', cast({day} as date), cast($end_date as date)) >= u.window_days"


_UNIT_COLUMNS = (
    *("user_id", "activity_date", "is_engaged", "is_holdout", "is_returning_buyer"),
    *("marketplace", "channel", *lift.TREATMENT_ATTRIBUTES, "converted", "revenue"),
    *(f"x_{c}" for c in lift.COVARIATES),
)


def _keyed_units_sql() -> str:
    """Return the complete visitor-days of every grain, with their period start."""
    columns = ", ".join(f"u.{c}" for c in _UNIT_COLUMNS)
    return f"""select g.grain, u.window_days, {_period_start("u.activity_date")} as period_start,
        {columns}
    from {UNITS} as u cross join {_GRAINS}
    where {_complete("u.activity_date")}"""


def _dimension_level(dims: Sequence[str]) -> str:
    """Return the segment level of unit ``s`` in the dimension of column ``dim`` (NULL: none)."""
    cases = []
    for dim in dims:
        if dim == "all":
            level = "'all'"
        elif dim == "buyer":
            level = "case when s.is_returning_buyer then 'returning' else 'new' end"
        elif dim in lift.TREATMENT_ATTRIBUTES:
            level = f"case when s.treated then s.{dim} end"
        else:
            level = f"s.{dim}"
        cases.append(f"when '{dim}' then {level}")
    return f"case d.dim {' '.join(cases)} end"


def _segments_sql(source: str, dims: Sequence[str]) -> str:
    """Return the units of ``source`` once per segment dimension with their level."""
    values = ", ".join(f"('{d}')" for d in dims)
    return f"""select * from (
        select s.*, d.dim, {_dimension_level(dims)} as level
        from ({source}) as s cross join (values {values}) as d(dim)
    ) as x where level is not null"""


_SIDES = (("1", "treated"), ("0", "not treated"))


def _comparison_sql(source: str, keys: Sequence[str], dims: Sequence[str]) -> str:
    """Return the per-group sums and clustered variances of ``source``'s units.

    ``source`` has the ``keys`` columns, ``user_id``, ``treated``, ``w`` (weight), ``y``
    (converted), ``r`` (revenue) and the dimension columns. One row per (keys, dim, level).
    """
    k = ", ".join(keys)
    ck = ", ".join(f"c.{key}" for key in keys)
    per_side = []
    for side, cond in _SIDES:
        kept = f"{cond} and w > 0"
        per_side += [
            f"sum(case when {cond} then 1e0 else 0e0 end) as n{side}",
            f"sum(case when {kept} then 1e0 else 0e0 end) as k{side}",
            f"sum(case when {kept} then y else 0e0 end) as y{side}",
            f"sum(case when {kept} then r else 0e0 end) as r{side}",
            # exact revenue in 0.0001 USD (integers: float sums exact below 2^53)
            f"sum(case when {kept} then round(r * 10000e0) else 0e0 end) as ru{side}",
            f"sum(case when {cond} then w else 0e0 end) as cw{side}",
            f"sum(case when {cond} then w * y else 0e0 end) as cwy{side}",
            f"sum(case when {cond} then w * r else 0e0 end) as cwr{side}",
        ]
    group_sums = []
    for side, _ in _SIDES:
        group_sums += [
            f"sum(n{side}) as n_raw{side}",
            f"sum(k{side}) as n_kept{side}",
            f"sum(case when k{side} > 0 then 1e0 else 0e0 end) as users{side}",
            f"sum(y{side}) as conversions{side}",
            f"sum(r{side}) as revenue{side}",
            f"sum(ru{side}) as revenue_units{side}",
            f"sum(cw{side}) as w{side}",
            f"sum(cwy{side}) as wy{side}",
            f"sum(cwr{side}) as wr{side}",
        ]
    influence = []
    for side, _ in _SIDES:
        for name, s in (("y", "wy"), ("r", "wr")):
            mean = _div(f"g.{s}{side}", f"g.w{side}")
            deviation = f"(c.cw{name}{side} - {mean} * c.cw{side})"
            influence.append(f"{_div(deviation, f'(g.w{side} * {mean})')} as {name}{side}")
        mean = _div(f"g.wr{side}", f"g.w{side}")
        deviation = f"(c.cwr{side} - {mean} * c.cw{side})"
        influence.append(f"{_div(deviation, f'g.w{side}')} as d{side}")
    treated = ", ".join(f"'{d}'" for d in lift.TREATMENT_ATTRIBUTES)
    on_keys = " and ".join(f"x.{key} = i.{key}" for key in keys)
    variances = ("y", "r", "d")
    return f"""
with seg as ({_segments_sql(source, dims)}),
clusters as (
    select {k}, dim, level, user_id, {", ".join(per_side)}
    from seg group by {k}, dim, level, user_id
),
groups as (
    select {k}, dim, level, {", ".join(group_sums)}
    from clusters group by {k}, dim, level
),
influence as (
    select {ck}, c.dim, c.level, c.user_id, {", ".join(influence)}
    from clusters as c join groups as g using ({k}, dim, level)
),
plain as (
    select {k}, dim, level,
        {", ".join(f"sum(power({v}1 - {v}0, 2)) as var_{v}" for v in variances)}
    from influence where dim not in ({treated}) group by {k}, dim, level
),
whole as (
    select {k}, {", ".join(f"sum(power({v}0, 2)) as whole_{v}" for v in variances)}
    from influence where dim = 'all' group by {k}
),
attribute as (
    select {", ".join(f"i.{key}" for key in keys)}, i.dim, i.level,
        {
        ", ".join(
            f"sum(power(i.{v}1 - x.{v}0, 2) - power(x.{v}0, 2)) as inside_{v}" for v in variances
        )
    }
    from influence as i join influence as x on {on_keys} and x.dim = 'all' and x.level = 'all'
        and x.user_id = i.user_id
    where i.dim in ({treated}) group by {", ".join(f"i.{key}" for key in keys)}, i.dim, i.level
)
select g.*, {
        ", ".join(f"coalesce(p.var_{v}, a.inside_{v} + h.whole_{v}) as var_{v}" for v in variances)
    }
from groups as g
left join plain as p using ({k}, dim, level)
left join attribute as a using ({k}, dim, level)
left join whole as h using ({k})
"""


def _cuped_sql(source: str, keys: Sequence[str], dims: Sequence[str]) -> str:
    """Return CUPED per group of ``source`` (columns ``treated``, ``y``, ``x``; units are their
    own clusters): theta, the adjusted arm means and the variance of log(m1 / m0)."""
    k = ", ".join(keys)
    on = f"using ({k}, dim, level)"
    mean_x, mean_y = _div("g.sx", "g.n"), _div("g.sy", "g.n")
    dx, dy = f"(s.x - {mean_x})", f"(s.y - {mean_y})"
    variance = _div("v.sxx", "v.n")
    theta = (
        f"case when v.n >= 2 and {variance} > 0 then {_div('v.sxy', f'(v.n * {variance})')} "
        "else 0e0 end"
    )
    adjusted = f"(s.y - t.theta * {dx})"
    influence1 = _div(f"({adjusted} - {_div('t.a1', 't.n1')})", f"(t.n1 * {_div('t.a1', 't.n1')})")
    influence0 = _div(f"({adjusted} - {_div('t.a0', 't.n0')})", f"(t.n0 * {_div('t.a0', 't.n0')})")
    return f"""
with seg as ({_segments_sql(source, dims)}),
means as (
    select {k}, dim, level, count(*) as n, sum(x) as sx, sum(y) as sy
    from seg group by {k}, dim, level
),
moments as (
    select {k}, dim, level, max(g.n) as n, sum({dx} * {dx}) as sxx, sum({dx} * {dy}) as sxy
    from seg as s join means as g {on} group by {k}, dim, level
),
thetas as (
    select {k}, dim, level, {theta} as theta from moments as v
),
arms as (
    select {k}, dim, level, max(t.theta) as theta,
        sum(case when s.treated then 1e0 else 0e0 end) as n1,
        sum(case when s.treated then 0e0 else 1e0 end) as n0,
        sum(case when s.treated then s.y - t.theta * {dx} else 0e0 end) as a1,
        sum(case when s.treated then 0e0 else s.y - t.theta * {dx} end) as a0
    from seg as s join means as g {on} join thetas as t {on} group by {k}, dim, level
)
select {k}, dim, level, max(t.theta) as theta, max({_div("t.a1", "t.n1")}) as m1,
    max({_div("t.a0", "t.n0")}) as m0,
    sum(power(case when s.treated then {influence1} else {influence0} end, 2)) as variance
from seg as s join means as g {on} join arms as t {on}
group by {k}, dim, level
"""


# --- rows from group sums -----------------------------------------------------------------------


def _side(frame: pl.DataFrame, side: str) -> lg.Side:
    def col(name: str) -> np.ndarray:
        return frame[f"{name}{side}"].cast(pl.Float64).fill_null(float("nan")).to_numpy()

    empty = np.zeros(0)
    return lg.Side(
        n_raw=col("n_raw"),
        n_kept=col("n_kept"),
        users_kept=col("users"),
        conversions=col("conversions"),
        revenue=col("revenue"),
        w=col("w"),
        wy=col("wy"),
        wr=col("wr"),
        cw=empty,
        cwy=empty,
        cwr=empty,
        revenue_units=col("revenue_units"),
    )


def _group_stats(groups: pl.DataFrame, keys: Sequence[str]) -> lg.GroupStats:
    """Return the groups as ``lift_groups.GroupStats`` (row i = group i); treatment-attribute
    groups take the comparison side of segment ``all`` of the same keys."""
    if "method" in groups.columns:  # weighted (adjusted) groups: no exact unit-weight total
        groups = groups.with_columns(
            pl.when(pl.col("method") == "observed")
            .then(pl.col(f"revenue_units{side}"))
            .alias(f"revenue_units{side}")
            for side in ("0", "1")
        )
    whole = groups.filter(pl.col("dim") == "all").select(
        *keys, *(pl.col(c).alias(f"all_{c}") for c in groups.columns if c.endswith("0"))
    )
    with_whole = groups.join(whole, on=list(keys), how="left", nulls_equal=True)
    of_treated = pl.col("dim").is_in(list(lift.TREATMENT_ATTRIBUTES))
    with_whole = with_whole.with_columns(
        pl.when(of_treated).then(pl.col(f"all_{c}")).otherwise(pl.col(c)).alias(c)
        for c in groups.columns
        if c.endswith("0")
    )

    def variance(name: str) -> np.ndarray:
        return with_whole[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()

    return lg.GroupStats(
        clusters=None,  # type: ignore[arg-type]  # rows need only the sums and variances
        engaged=_side(with_whole, "1"),
        comparison=_side(with_whole, "0"),
        var_conversion=variance("var_y"),
        var_revenue=variance("var_r"),
        var_difference=variance("var_d"),
    )


def _segment(dim: str, level: str) -> str:
    return "all" if dim == "all" else f"{dim}={level}"


def _level_order(dims: Sequence[str]) -> pl.Expr:
    return pl.col("dim").replace_strict(list(dims), list(range(len(dims))), return_dtype=pl.Int32)


class _Periods:
    """Per (keys..., period_start): the last day with units and the days with units."""

    def __init__(self, frame: pl.DataFrame, keys: tuple[str, ...]) -> None:
        self.keys = (*keys, "period_start")
        self.found = {
            tuple(row[k] for k in self.keys): (row["max_day"], int(row["n_days"]))
            for row in frame.iter_rows(named=True)
        }

    def key(self, values: Mapping[str, Any], start: date, **extra: Any) -> dict[str, Any]:
        """Return the row key of a period as ``lift`` writes it (``period_end`` of grain
        ``all``: the last day with units)."""
        grain = values["grain"]
        max_day, n_days = self.found[tuple(values[k] for k in self.keys)]
        if grain == "all":
            bounds = (start, max_day)
        else:
            bounds = lift.period_bounds(values["period_start"], grain, start, max_day)
        return {
            "period_start": bounds[0],
            "period_end": bounds[1],
            "period_grain": grain,
            "window_days": values["window_days"],
            **extra,
            "n_days": n_days,
        }


def _periods(
    engine: Engine, source: str, day: str, keys: tuple[str, ...], params: Mapping[str, Any]
) -> _Periods:
    k = ", ".join(keys)
    frame = engine.query(
        f"select {k}, period_start, count(distinct {day}) as n_days, max({day}) as max_day "
        f"from ({source}) as s group by {k}, period_start",
        params,
    )
    return _Periods(frame, keys)


# --- visitor-days: observed and adjusted -------------------------------------------------------


def _weighted_units_sql(design: Design | None) -> str:
    """Return the complete visitor-days of every grain with method, treated, w, y, r."""
    columns = (
        "k.grain, k.window_days, k.period_start, k.user_id, k.is_engaged as treated, "
        "k.converted as y, k.revenue as r, k.marketplace, k.channel, k.model_version, "
        "k.event_type, k.is_returning_buyer"
    )
    observed = f"select 'observed' as method, {columns}, 1e0 as w from ({_keyed_units_sql()}) as k"
    if design is None:
        return observed
    weight = (
        "case when k.is_holdout or k.p < 0.01 or k.p > 0.99 then 0e0 "
        f"when k.is_engaged then 1e0 else {_div('k.p', '(1e0 - k.p)')} end"
    )
    return f"""{observed}
    union all
    select 'adjusted' as method, {columns}, {weight} as w
    from ({_scored_units_sql(design, eligible_only=False)}) as k"""


@dataclass(frozen=True)
class Design:
    """The design columns every fit may use: log covariates, then one-hot levels."""

    marketplaces: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [
            *lift.COVARIATES,
            *(f"marketplace={m}" for m in self.marketplaces),
            *(f"channel={c}" for c in self.channels),
        ]

    @property
    def params(self) -> dict[str, Any]:
        levels = [*self.marketplaces, *self.channels]
        return {f"level_{i}": level for i, level in enumerate(levels)}

    def raw(self) -> list[str]:
        """Return each design column's unstandardised SQL expression over units ``k``."""
        out = [f"k.x_{c}" for c in lift.COVARIATES]
        i = 0
        for dim, levels in (("marketplace", self.marketplaces), ("channel", self.channels)):
            for _ in levels:
                out.append(
                    f"case when coalesce(k.{dim}, 'unknown') = $level_{i} then 1e0 else 0e0 end"
                )
                i += 1
        return out


def _design_columns(n: int) -> list[str]:
    return [f"z{j}" for j in range(n)]


def _fit_columns(n: int) -> list[str]:
    return ["b0", *(f"b{j + 1}" for j in range(n)), *(f"mu{j}" for j in range(n))] + [
        f"sd{j}" for j in range(n)
    ]


def _standardised(design: Design) -> list[str]:
    return [_div(f"(({x}) - f.mu{j})", f"f.sd{j}") for j, x in enumerate(design.raw())]


def _scored_units_sql(design: Design, eligible_only: bool) -> str:
    """Return keyed units joined to their period's fit with z columns and propensity ``p``."""
    z = _standardised(design)
    eta = " + ".join(["f.b0", *(f"f.b{j + 1} * {zj}" for j, zj in enumerate(z))])
    columns = ", ".join(f"{zj} as z{j}" for j, zj in enumerate(z))
    on = " and ".join(f"f.{key} = k.{key}" for key in FIT_KEYS)
    where = "where not k.is_holdout" if eligible_only else ""
    return f"""select k.*, {columns},
        {_div("1e0", "(1e0 + exp(-least(greatest(" + eta + ", -30e0), 30e0)))")} as p
    from ({_keyed_units_sql()}) as k join {FIT_PARAMETERS} as f on {on} {where}"""


FIT_UNITS = ("_lift_agg_fit_units_a", "_lift_agg_fit_units_b")


def _fit_units_sql(design: Design) -> str:
    """Return the eligible units of every fit in ``FIT_PARAMETERS``: engaged (0/1) and the
    standardised design columns (fixed for the fit: only the coefficients change)."""
    z = _standardised(design)
    on = " and ".join(f"f.{key} = k.{key}" for key in FIT_KEYS)
    return f"""select {", ".join(f"k.{key}" for key in FIT_KEYS)},
        case when k.is_engaged then 1e0 else 0e0 end as t,
        {", ".join(f"{zj} as z{j}" for j, zj in enumerate(z))}
    from ({_keyed_units_sql()}) as k join {FIT_PARAMETERS} as f on {on}
    where not k.is_holdout"""


def _pending_units_sql(source: str, n: int) -> str:
    """Return the rows of ``source`` (fit units) of the fits in ``FIT_PARAMETERS``."""
    on = " and ".join(f"f.{key} = u.{key}" for key in FIT_KEYS)
    columns = [*FIT_KEYS, "t", *_design_columns(n)]
    return f"""select {", ".join(f"u.{c}" for c in columns)}
    from {source} as u join {FIT_PARAMETERS} as f on {on}"""


def _newton_sql(source: str, columns: Sequence[int]) -> str:
    """Return the gradient and Hessian sums of every fit in ``FIT_PARAMETERS`` over its units
    in ``source`` (``_fit_units_sql``) with the fit's current coefficients; only the design
    columns ``columns`` (those the fits use; sums named by design index, 0 the intercept)."""
    z = {0: "1e0", **{j + 1: f"s.z{j}" for j in columns}}
    eta = " + ".join(["f.b0", *(f"f.b{j + 1} * u.z{j}" for j in columns)])
    p = _div("1e0", f"(1e0 + exp(-least(greatest({eta}, -30e0), 30e0)))")
    index = sorted(z)
    sums = [f"sum((s.t - s.p) * {z[i]}) as g{i}" for i in index]
    sums += [
        f"sum(s.p * (1e0 - s.p) * {z[i]} * {z[j]}) as h{i}_{j}"
        for a, i in enumerate(index)
        for j in index[a:]
    ]
    keys = ", ".join(FIT_KEYS)
    on = " and ".join(f"f.{key} = u.{key}" for key in FIT_KEYS)
    return f"""select {keys}, {", ".join(sums)}
    from (select u.*, {p} as p from {source} as u join {FIT_PARAMETERS} as f on {on}) as s
    group by {keys}"""


def _moments_sql(design: Design) -> str:
    """Return, per fit, the eligible units per side and each design column's sum, mean and
    population standard deviation (the standardisation)."""
    on = " and ".join(f"f.{key} = k.{key}" for key in FIT_KEYS)
    stats = []
    for j, x in enumerate(design.raw()):
        stats += [f"sum({x}) as s{j}", f"avg({x}) as mu{j}", f"stddev_pop({x}) as sd{j}"]
    return f"""select {", ".join(f"k.{key}" for key in FIT_KEYS)},
        sum(case when k.is_engaged then 1e0 else 0e0 end) as n1,
        sum(case when k.is_engaged then 0e0 else 1e0 end) as n0, {", ".join(stats)}
    from ({_keyed_units_sql()}) as k join {FIT_PARAMETERS} as f on {on}
    where not k.is_holdout group by {", ".join(f"k.{key}" for key in FIT_KEYS)}"""


def _diagnostics_sql(design: Design) -> str:
    """Return, per fit and side, what balance and overlap need: counts, sums of z (all and
    kept units), weighted sums, squared deviations around each side's means, p and w ranges."""
    keys = ", ".join(FIT_KEYS)
    weight = (
        "case when s.p < 0.01 or s.p > 0.99 then 0e0 when s.is_engaged then 1e0 "
        f"else {_div('s.p', '(1e0 - s.p)')} end"
    )
    zs = _design_columns(len(design.names))
    side_sums = [
        "count(*) as n",
        "sum(case when w > 0 then 1e0 else 0e0 end) as nk",
        "sum(case when w > 0 then w else 0e0 end) as wk",
        "sum(w) as sw",
        "sum(w * w) as sww",
        "max(w) as max_w",
        "sum(case when w = 0 then 1e0 else 0e0 end) as trimmed",
        "min(p) as p_min",
        "max(p) as p_max",
    ]
    for j, zj in enumerate(zs):
        side_sums += [
            f"sum({zj}) as s{j}",
            f"sum(case when w > 0 then {zj} else 0e0 end) as sk{j}",
            f"sum(case when w > 0 then w * {zj} else 0e0 end) as swk{j}",
        ]
    deviations = []
    for j, zj in enumerate(zs):
        deviations += [
            f"sum(power(u.{zj} - {_div(f'm.s{j}', 'm.n')}, 2)) as q{j}",
            f"sum(case when u.w > 0 then power(u.{zj} - {_div(f'm.sk{j}', 'm.nk')}, 2) "
            f"else 0e0 end) as qk{j}",
        ]
    return f"""
with units as (
    select {keys}, s.is_engaged as treated, s.p, {weight} as w, {", ".join(f"s.{z}" for z in zs)}
    from ({_scored_units_sql(design, eligible_only=True)}) as s
),
sides as (select {keys}, treated, {", ".join(side_sums)} from units group by {keys}, treated),
deviations as (
    select {", ".join(f"u.{key}" for key in FIT_KEYS)}, u.treated, {", ".join(deviations)}
    from units as u join sides as m using ({keys}, treated)
    group by {", ".join(f"u.{key}" for key in FIT_KEYS)}, u.treated
)
select * from sides join deviations using ({keys}, treated)
"""


@dataclass
class _Fit:
    """One propensity fit: its design columns (indices into Design.names) and coefficients."""

    active: list[int]
    mu: np.ndarray
    sd: np.ndarray
    beta: np.ndarray  # intercept, then one per active column
    done: bool = False


def _fit_frame(fits: Mapping[tuple, _Fit], n: int) -> pl.DataFrame:
    """Return the FIT_PARAMETERS table: per fit key, b0..bn, mu0.., sd0.. (inactive columns
    have b 0, mu 0, sd 1)."""
    rows = []
    for key, fit in fits.items():
        b = np.zeros(n + 1)
        mu, sd = np.zeros(n), np.ones(n)
        b[0] = fit.beta[0]
        for i, j in enumerate(fit.active):
            b[j + 1] = fit.beta[i + 1]
            mu[j], sd[j] = fit.mu[j], fit.sd[j]
        rows.append((*key, *b.tolist(), *mu.tolist(), *sd.tolist()))
    schema = {"grain": pl.Utf8, "window_days": pl.Int32, "period_start": pl.Date}
    schema |= {c: pl.Float64 for c in _fit_columns(n)}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _design_of(
    moments: Mapping[str, Any], design: Design
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Return (active columns, means, sds) of one fit as lift.design_from and standardize
    choose them: every numeric covariate; each present level but the most frequent (the first
    in level order among ties); constant columns keep sd 1."""
    n_numeric = len(lift.COVARIATES)
    active = list(range(n_numeric))
    at = n_numeric
    for levels in (design.marketplaces, design.channels):
        counts = [float(moments[f"s{at + i}"]) for i in range(len(levels))]
        present = [i for i, c in enumerate(counts) if c > 0]
        if present:
            base = max(present, key=lambda i: counts[i])
            active += [at + i for i in present if i != base]
        at += len(levels)
    n = len(design.names)
    mu = np.array([float(moments[f"mu{j}"] or 0.0) for j in range(n)])
    sd = np.array([float(moments[f"sd{j}"] or 0.0) for j in range(n)])
    sd[sd == 0] = 1.0
    return active, mu, sd


def _newton_step(fit: _Fit, sums: Mapping[str, Any]) -> None:
    """Apply one Newton-Raphson step (lift_stats.fit_logistic's) to ``fit`` from its sums."""
    index = [0, *(j + 1 for j in fit.active)]
    k = len(index)
    penalty = RIDGE * np.eye(k)
    penalty[0, 0] = 0.0
    grad = np.array([float(sums[f"g{i}"]) for i in index]) - penalty @ fit.beta
    hess = penalty.copy()
    for a, i in enumerate(index):
        for b, j in enumerate(index):
            hess[a, b] += float(sums[f"h{min(i, j)}_{max(i, j)}"])
    step = np.linalg.solve(hess, grad)
    fit.beta = fit.beta + step
    fit.done = bool(np.max(np.abs(step)) < 1e-8)


def _smd_of_sides(
    t: Mapping[str, Any], c: Mapping[str, Any], mean: tuple[str, str], squares: tuple[str, str]
) -> float | None:
    """Return the SMD from per-side sums: ``mean`` = (sum, its divisor), ``squares`` = (squared
    deviations, units); None when a side has fewer than 2 units."""
    total, divisor = mean
    deviations, n = squares
    if t[n] < 2 or c[n] < 2:
        return None
    return ls.smd_of(
        t[total] / t[divisor],
        c[total] / c[divisor],
        t[deviations] / (t[n] - 1),
        c[deviations] / (c[n] - 1),
    )


def _diagnostics(
    key: dict[str, Any], fit: _Fit, names: list[str], t: Mapping[str, Any], c: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (balance rows, overlap row) of one fit from its per-side sums (t: engaged)."""
    period = {k: key[k] for k in ("period_start", "period_end", "period_grain", "window_days")}
    balance = []
    for j in fit.active:
        # before: every unit, unweighted; after: kept units, weighted means
        before = _smd_of_sides(t, c, (f"s{j}", "n"), (f"q{j}", "n"))
        after = _smd_of_sides(t, c, (f"swk{j}", "wk"), (f"qk{j}", "nk"))
        balance.append(
            {
                **period,
                "segment": "all",
                "method": "adjusted",
                "covariate": names[j],
                "smd_before": before,
                "smd_after": after,
                "balanced": after is not None and abs(after) < lift.SMD_BALANCED,
            }
        )
    overlap = {
        **period,
        "segment": "all",
        "method": "adjusted",
        "n_engaged": int(t["n"]),
        "n_comparison": int(c["n"]),
        "p_engaged_min": float(t["p_min"]),
        "p_engaged_max": float(t["p_max"]),
        "p_comparison_min": float(c["p_min"]),
        "p_comparison_max": float(c["p_max"]),
        "share_trimmed": float((t["trimmed"] + c["trimmed"]) / (t["n"] + c["n"])),
        "max_weight_comparison": float(c["max_w"]),
        "ess_comparison": float(c["sw"] ** 2 / c["sww"]) if c["sww"] > 0 else 0.0,
    }
    return balance, overlap


def _design(engine: Engine) -> Design:
    """Return the design columns: marketplace and channel levels of every unit (nulls named
    ``unknown``), sorted as lift.level_codes sorts them."""
    levels = engine.query(
        f"select distinct 'marketplace' as dim, coalesce(marketplace, 'unknown') as level "
        f"from {UNITS} union all "
        f"select distinct 'channel', coalesce(channel, 'unknown') from {UNITS}",
        {},
    )

    def of(dim: str) -> tuple[str, ...]:
        return tuple(sorted(levels.filter(pl.col("dim") == dim)["level"].to_list()))

    return Design(of("marketplace"), of("channel"))


FitKey = tuple[str, int, date]


def _fit_representatives(
    engine: Engine, params: Mapping[str, Any], windows: Sequence[int]
) -> dict[FitKey, FitKey]:
    """Return, per fitted (grain, window, period), the key of the fit it shares: the first
    window whose period holds the same units (a period complete for every window is fitted
    once). Periods with fewer than 2 eligible units on a side are not fitted."""
    keys = ", ".join(FIT_KEYS)
    frame = engine.query(
        f"""select {keys}, max(activity_date) as max_day,
            sum(case when is_engaged and not is_holdout then 1e0 else 0e0 end) as n1,
            sum(case when not is_engaged and not is_holdout then 1e0 else 0e0 end) as n0
        from ({_keyed_units_sql()}) as k group by {keys}""",
        params,
    )
    order = {w: i for i, w in enumerate(windows)}
    shared: dict[tuple[str, date, date], FitKey] = {}
    out: dict[FitKey, FitKey] = {}
    rows = sorted(frame.iter_rows(named=True), key=lambda r: order[r["window_days"]])
    for row in rows:
        if row["n1"] < 2 or row["n0"] < 2:
            continue
        key = (row["grain"], int(row["window_days"]), row["period_start"])
        out[key] = shared.setdefault((row["grain"], row["period_start"], row["max_day"]), key)
    return out


def _fit_propensities(
    engine: Engine, design: Design, representatives: Sequence[FitKey], params: Mapping[str, Any]
) -> dict[FitKey, _Fit]:
    """Return the converged propensity fit of each representative key (Newton-Raphson: the
    engine sums, Python solves)."""
    n = len(design.names)
    params = {**params, **design.params}
    blank = {key: _Fit([], np.zeros(n), np.ones(n), np.zeros(1)) for key in representatives}
    engine.register(FIT_PARAMETERS, _fit_frame(blank, n))
    fits: dict[FitKey, _Fit] = {}
    for row in engine.query(_moments_sql(design), params).iter_rows(named=True):
        active, mu, sd = _design_of(row, design)
        key = (row["grain"], int(row["window_days"]), row["period_start"])
        fits[key] = _Fit(active, mu, sd, np.zeros(len(active) + 1))
    # the fits' units with their standardised columns, once; rebuilt with only the pending
    # fits' units when fewer than half of the fits in it still iterate
    engine.register(FIT_PARAMETERS, _fit_frame(fits, n))
    engine.create(FIT_UNITS[0], _fit_units_sql(design), params)
    source, held = FIT_UNITS[0], len(fits)
    for _ in range(MAX_NEWTON_STEPS):
        pending = {key: fit for key, fit in fits.items() if not fit.done}
        if not pending:
            break
        engine.register(FIT_PARAMETERS, _fit_frame(pending, n))
        if 2 * len(pending) < held:
            smaller = FIT_UNITS[1 - FIT_UNITS.index(source)]
            engine.create(smaller, _pending_units_sql(source, n), params)
            engine.drop(source)
            source, held = smaller, len(pending)
        used = sorted({j for fit in pending.values() for j in fit.active})
        sums = engine.query(_newton_sql(source, used), params, plain=True)
        for row in sums.iter_rows(named=True):
            _newton_step(pending[(row["grain"], int(row["window_days"]), row["period_start"])], row)
    engine.drop(source)
    return fits


def visitor_day_rows(engine: Engine, windows: Sequence[int], start: date, end: date) -> lift.Rows:
    """Return (lift rows, balance rows, overlap rows) of methods observed and adjusted, as
    ``lift.visitor_day_rows`` does, from aggregates of ``UNITS`` (``create_unit_relations``)."""
    params = {"start_date": start, "end_date": end}
    periods = _periods(
        engine, _keyed_units_sql(), "activity_date", ("grain", "window_days"), params
    )
    design = _design(engine)
    shared = _fit_representatives(engine, params, windows)
    fits = _fit_propensities(engine, design, sorted(set(shared.values())), params)
    n = len(design.names)
    # diagnostics of each representative fit, rekeyed for every window sharing it
    engine.register(FIT_PARAMETERS, _fit_frame(fits, n))
    sides: dict[tuple[FitKey, bool], dict[str, Any]] = {}
    for row in engine.query(_diagnostics_sql(design), {**params, **design.params}).iter_rows(
        named=True
    ):
        key = (row["grain"], int(row["window_days"]), row["period_start"])
        sides[(key, bool(row["treated"]))] = row
    grain_order = {g: i for i, g in enumerate(lift.GRAINS)}
    window_order = {w: i for i, w in enumerate(windows)}

    def order(key: FitKey) -> tuple:
        return (grain_order[key[0]], window_order[key[1]], key[2])

    balance_rows: list[dict[str, Any]] = []
    overlap_rows: list[dict[str, Any]] = []
    for key in sorted(shared, key=order):
        fit_key = shared[key]
        if fit_key not in fits:
            continue
        period_key = periods.key(dict(zip(FIT_KEYS, key, strict=True)), start)
        balance, overlap = _diagnostics(
            period_key,
            fits[fit_key],
            design.names,
            sides[(fit_key, True)],
            sides[(fit_key, False)],
        )
        balance_rows += balance
        overlap_rows.append(overlap)
    # the comparisons, both methods at once (adjusted: periods with a fit)
    engine.register(FIT_PARAMETERS, _fit_frame({key: fits[fit] for key, fit in shared.items()}, n))
    keys = ("method", *FIT_KEYS)
    groups = engine.query(
        _comparison_sql(_weighted_units_sql(design), keys, DIMENSIONS),
        {**params, **design.params},
    )
    engine.drop(FIT_PARAMETERS)
    groups = groups.with_columns(_level_order(DIMENSIONS).alias("dim_order")).sort(
        "grain",
        "window_days",
        "period_start",
        "dim_order",
        "level",
        "method",
        descending=[False, False, False, False, False, True],
    )
    stats = _group_stats(groups, keys)
    observed: dict[tuple, int] = {
        (r["grain"], r["window_days"], r["period_start"], r["dim"], r["level"]): i
        for i, r in enumerate(groups.iter_rows(named=True))
        if r["method"] == "observed"
    }
    placed: list[tuple[tuple, dict[str, Any]]] = []
    for i, row in enumerate(groups.iter_rows(named=True)):
        key = (row["grain"], row["window_days"], row["period_start"])
        at = observed.get((*key, row["dim"], row["level"]))
        if at is None or not lg.has_both_sides(stats, at):
            continue
        if row["method"] == "observed":
            if row["grain"] == "day" and row["dim"] in ("all", *lift.SQL_SEGMENT_DIMENSIONS):
                continue
            ci_method = "cluster_delta_log_ratio"
        else:
            ci_method = "ipw_att_cluster_delta_log_ratio"
        placed.append(
            (
                (*order(key), i),
                {
                    **periods.key(dict(zip(FIT_KEYS, key, strict=True)), start),
                    "segment": _segment(row["dim"], row["level"]),
                    "method": row["method"],
                    **lg.comparison_row(stats, i),
                    "ci_method": ci_method,
                },
            )
        )
    placed.sort(key=lambda item: item[0])
    return [row for _, row in placed], balance_rows, overlap_rows


# --- experiments --------------------------------------------------------------------------------


def _experiment_units_sql() -> str:
    return f"""select u.experiment_id, g.grain, u.window_days,
        {_period_start("u.assigned_date")} as period_start, u.assigned_date, u.user_id,
        u.is_treatment as treated, 1e0 as w, u.converted as y, u.revenue as r, u.pre as x,
        u.marketplace, u.channel, u.is_returning_buyer
    from {EXPERIMENT_UNITS} as u cross join {_GRAINS}
    where {_complete("u.assigned_date")}"""


def experiment_rows(
    engine: Engine,
    windows: Sequence[int],
    start: date,
    end: date,
    shares: Mapping[str, float],
) -> list[dict[str, Any]]:
    """Return the lift rows of method experiment, as ``lift.experiment_rows`` does, from
    aggregates of ``EXPERIMENT_UNITS``."""
    params = {"start_date": start, "end_date": end}
    source = _experiment_units_sql()
    keys = ("experiment_id", *FIT_KEYS)
    periods = _periods(
        engine, source, "assigned_date", ("experiment_id", "grain", "window_days"), params
    )
    groups = engine.query(_comparison_sql(source, keys, EXPERIMENT_DIMENSIONS), params)
    cuped = engine.query(_cuped_sql(source, keys, EXPERIMENT_DIMENSIONS), params)
    groups = groups.join(cuped, on=[*keys, "dim", "level"], how="left", nulls_equal=True)
    grain_order = {g: i for i, g in enumerate(lift.GRAINS)}
    window_order = {w: i for i, w in enumerate(windows)}
    groups = groups.with_columns(
        _level_order(EXPERIMENT_DIMENSIONS).alias("dim_order"),
        pl.col("grain").replace_strict(grain_order, return_dtype=pl.Int32).alias("grain_order"),
        pl.col("window_days")
        .replace_strict(window_order, return_dtype=pl.Int32)
        .alias("window_order"),
    ).sort("window_order", "experiment_id", "grain_order", "period_start", "dim_order", "level")
    stats = _group_stats(groups, keys)
    adjusted = lg.Cuped(
        *(
            groups[c].cast(pl.Float64).fill_null(float("nan")).to_numpy()
            for c in ("theta", "m1", "m0", "variance")
        )
    )
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(groups.iter_rows(named=True)):
        if not lg.has_both_sides(stats, i):
            continue
        experiment_id = row["experiment_id"]
        share = shares.get(str(experiment_id), lift.DEFAULT_EXPECTED_HOLDOUT_SHARE)
        srm = ls.srm_p_value(int(row["n_raw1"]), int(row["n_raw0"]), share)
        rows.append(
            {
                **periods.key(row, start, experiment_id=experiment_id),
                "segment": _segment(row["dim"], row["level"]),
                "method": "experiment",
                **lg.comparison_row(stats, i),
                "ci_method": "delta_log_ratio",
                **lg.cuped_row(adjusted, i),
                "srm_p_value": srm,
                "srm_flag": srm is not None and srm < lift.SRM_FLAG_P,
            }
        )
    return rows
