"""Read every frame of a report for one period from the warehouse, and each frame's privacy floor.

One call (``read_report_frames``) runs every query on an open connection and returns plain
frames; nothing here writes. Report-time aggregates over the period (attribution by model and
window, lag buckets, attribution by model version, the data-driven summary) carry exact
distinct-user counts computed in the same query (``count(DISTINCT user_id)``), never sums of daily
counts, so that the privacy floor (``attribution.privacy``) judges them on real populations.

Populations used by the floors:

* ``attributed_users``: distinct users with an attributed order line (lines counts);
* ``attributed_buyers``: distinct users with an attributed line that carries revenue (money);
* ``n_engaged_users`` / ``n_comparison_users``: distinct users on each side of a lift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import polars as pl

from attribution.config import RULE_MODELS, Settings
from attribution.journeys import TOUCH_COLUMNS, UNKNOWN_TOUCH
from attribution.lift import SMD_BALANCED, downstream_impact
from attribution.privacy import Population, TableFloor, least, users
from attribution.report_period import PeriodSpec, ReportPeriod, clip_period
from attribution.warehouse import exact_money_sum, table_exists

REQUIRED_TABLES: tuple[str, ...] = (
    "kpi_daily",
    "kpi_daily_segments",
    "kpi_monthly",
    "kpi_monthly_segments",
    "fct_conversion_lift",
    "fct_attribution",
    "fct_attribution_window_sensitivity",
)

# lift methods in the order the report lists them
METHOD_ORDER: dict[str, int] = {"observed": 0, "adjusted": 1, "experiment": 2}

# --- privacy floors of every exported or displayed table -----------------------------------

_KPI_KEYS = (
    "date",
    "month",
    "month_end",
    "days_with_data",
    "is_complete",
    "marketplace",
    "segment",
    "dimension",
    "segment_value",
    "window_days",
)

KPI_FLOOR = TableFloor(
    keys=_KPI_KEYS,
    populations=(
        # activity: whichever distinct-user column the table has (daily, monthly, contract view)
        Population(users("active_users"), ("active_users", "queries", "sessions")),
        Population(users("dau"), ("dau", "queries", "sessions")),
        Population(users("mau"), ("mau", "queries", "sessions")),
        Population(users("users_ytd"), ("users_ytd",)),
        # a growth rate reveals the previous value: both months must reach the floor
        Population(users("mau_prev_month"), ("mau_prev_month", "queries_prev_month")),
        Population(least("mau", "mau_prev_month"), ("mau_growth_mom", "query_growth_mom")),
        Population(users("mau_prev_year"), ("mau_prev_year", "queries_prev_year")),
        Population(least("mau", "mau_prev_year"), ("mau_growth_yoy", "query_growth_yoy")),
        Population(users("visitors"), ("visitors",)),
        Population(users("buyers"), ("buyers", "orders", "revenue_usd")),
        Population(users("attributed_buyers"), ("attributed_buyers", "attributed_revenue_usd")),
        Population(users("engaged_users"), ("engaged_users", "engaged_visitors", "cr_engaged")),
        Population(
            users("comparison_users"),
            ("comparison_users", "comparison_visitors", "cr_comparison"),
        ),
        Population(
            least("engaged_users", "comparison_users"),
            ("observed_lift", "observed_lift_ci_low", "observed_lift_ci_high"),
        ),
        # the month's adjusted lift has its own groups (propensity-trimmed, holdout left out)
        Population(users("adjusted_engaged_users"), ("adjusted_engaged_users",)),
        Population(users("adjusted_comparison_users"), ("adjusted_comparison_users",)),
        Population(
            least("adjusted_engaged_users", "adjusted_comparison_users"),
            tuple(
                f"{name}{suffix}"
                for name in ("adjusted_lift", "incremental_revenue_usd", "annualised_impact_usd")
                for suffix in ("", "_ci_low", "_ci_high")
            ),
        ),
    ),
)

LIFT_FLOOR = TableFloor(
    keys=(
        "period_grain",
        "period_start",
        "period_end",
        "n_days",
        "segment",
        "method",
        "experiment_id",
        "window_days",
        "ci_method",
    ),
    populations=(
        Population(
            users("n_engaged_users"),
            ("n_engaged_users", "n_engaged", "conversions_engaged", "cr_engaged"),
        ),
        Population(
            users("n_comparison_users"),
            ("n_comparison_users", "n_comparison", "conversions_comparison", "cr_comparison"),
        ),
        Population(
            least("n_engaged_users", "n_comparison_users"),
            (
                "lift",
                "lift_ci_low",
                "lift_ci_high",
                "p_value_bh",
                "srm_p_value",
                "incremental_revenue_usd",
                "incremental_revenue_ci_low",
                "incremental_revenue_ci_high",
                "run_rate_usd",
                "run_rate_ci_low",
                "run_rate_ci_high",
            ),
        ),
        Population(users("attributed_buyers"), ("attributed_buyers", "attributed_revenue_usd")),
    ),
)

ATTRIBUTION_FLOOR = TableFloor(
    keys=("scope", "window_days", "model", "lag_bucket_order", "lag_bucket", "model_version"),
    populations=(
        Population(users("attributed_users"), ("attributed_users", "attributed_lines")),
        Population(
            users("attributed_buyers"),
            (
                "attributed_buyers",
                "attributed_revenue_usd",
                "share_of_revenue",
                "line_revenue_usd",
            ),
        ),
    ),
)

# data-driven summary: every figure of a touch type describes the converting users whose
# journeys hold that touch type
DATA_DRIVEN_FLOOR = TableFloor(
    keys=("start_date", "end_date", "window_days", "touch_column", "markov_order", "touch_type"),
    populations=(
        Population(
            users("converting_users"),
            (
                "converting_users",
                "removal_effect",
                "share",
                "attributed_conversions",
                "attributed_revenue_usd",
                "shapley_share",
                "shapley_revenue_usd",
                "n_converting_journeys",
                "n_journeys",
                *(f"{model}_revenue_usd" for model in RULE_MODELS),
            ),
        ),
    ),
)

# exported table -> its floor (the export order)
TABLE_FLOORS: dict[str, TableFloor] = {
    "kpi_daily": KPI_FLOOR,
    "kpi_daily_segments": KPI_FLOOR,
    "kpi_monthly": KPI_FLOOR,
    "kpi_monthly_segments": KPI_FLOOR,
    "lift_by_method": LIFT_FLOOR,
    "lift_by_window": LIFT_FLOOR,
    "downstream_impact": LIFT_FLOOR,
    "model_version_lift": LIFT_FLOOR,
    "model_version_attribution": ATTRIBUTION_FLOOR,
    "attribution_by_model_window": ATTRIBUTION_FLOOR,
    "lag_distribution": ATTRIBUTION_FLOOR,
    "attribution_by_touch_type": DATA_DRIVEN_FLOOR,
}


@dataclass(frozen=True)
class ReportFrames:
    """Every table of one report before the privacy floor, with the period and context."""

    period: ReportPeriod
    data_start: date
    data_end: date
    window_days: int
    tables: dict[str, pl.DataFrame]
    balance: str


# --- queries -------------------------------------------------------------------------------


def _frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> pl.DataFrame:
    """Return a query's result as a polars frame (named parameters bound)."""
    return con.sql(sql, params=params).pl()


# Same buckets as sql/marts/fct_attribution_lag.sql (tests check that the lines agree).
_LAG_BUCKETS: tuple[tuple[str, str], ...] = (
    ("session_age_hours < 1", "0-1h"),
    ("session_age_hours < 6", "1-6h"),
    ("session_age_hours < 24", "6-24h"),
    ("session_age_hours < 48", "1-2d"),
    ("session_age_hours < 72", "2-3d"),
    ("session_age_hours < 168", "3-7d"),
    ("session_age_hours < 336", "7-14d"),
    ("session_age_hours <= 720", "14-30d"),
    ("true", "30d+"),
)

_ATTRIBUTED_USERS = """
    count(DISTINCT user_id) AS attributed_users,
    count(DISTINCT user_id) FILTER (WHERE line_revenue_usd > 0) AS attributed_buyers"""


def _attribution_by_model_window(
    con: duckdb.DuckDBPyConnection, period: ReportPeriod, revenue_usd: float
) -> pl.DataFrame:
    """Return one row per (scope, window, rule model): attributed revenue, share, lines, users.

    Scopes user and product. At one scope every rule model credits the same total (credits of a
    line sum to 1); the models differ in which touches get the credit.
    """
    sums = ", ".join(f"{exact_money_sum(model)} AS {model}" for model in RULE_MODELS)
    wide = _frame(
        con,
        f"""
        SELECT scope, window_days, count(DISTINCT (order_id, line_no)) AS attributed_lines,
            {_ATTRIBUTED_USERS}, {sums}
        FROM fct_attribution
        WHERE scope IN ('user', 'product') AND order_date BETWEEN $start AND $end
        GROUP BY scope, window_days ORDER BY scope DESC NULLS LAST, window_days NULLS LAST
        """,
        {"start": period.start, "end": period.end},
    )
    long = wide.unpivot(
        index=["scope", "window_days", "attributed_lines", "attributed_users", "attributed_buyers"],
        on=list(RULE_MODELS),
        variable_name="model",
        value_name="attributed_revenue_usd",
    )
    share = (
        pl.col("attributed_revenue_usd").cast(pl.Float64) / revenue_usd
        if revenue_usd
        else pl.lit(None, dtype=pl.Float64)
    )
    return long.with_columns(share.alias("share_of_revenue")).select(
        "scope",
        "window_days",
        "model",
        "attributed_revenue_usd",
        "share_of_revenue",
        "attributed_lines",
        "attributed_users",
        "attributed_buyers",
    )


def _lag_distribution(con: duckdb.DuckDBPyConnection, period: ReportPeriod) -> pl.DataFrame:
    """Return one row per (window, lag bucket) of the last eligible touch: lines, revenue, users."""
    order = " ".join(
        f"WHEN {condition} THEN {i}" for i, (condition, _) in enumerate(_LAG_BUCKETS, start=1)
    )
    label = " ".join(f"WHEN {i} THEN '{name}'" for i, (_, name) in enumerate(_LAG_BUCKETS, 1))
    return _frame(
        con,
        f"""
        WITH last_touches AS (
            SELECT window_days, user_id, line_revenue_usd,
                CASE {order} END AS lag_bucket_order
            FROM fct_attribution
            WHERE scope = 'user' AND touch_rank = n_touches
                AND order_date BETWEEN $start AND $end
        )
        SELECT window_days, lag_bucket_order, CASE lag_bucket_order {label} END AS lag_bucket,
            count(*) AS attributed_lines,
            cast(sum(line_revenue_usd) AS DECIMAL(18, 4)) AS line_revenue_usd,
            {_ATTRIBUTED_USERS}
        FROM last_touches
        GROUP BY window_days, lag_bucket_order
        ORDER BY window_days NULLS LAST, lag_bucket_order NULLS LAST
        """,
        {"start": period.start, "end": period.end},
    )


def _model_version_attribution(
    con: duckdb.DuckDBPyConnection, period: ReportPeriod, window_days: int
) -> pl.DataFrame:
    """Return last-touch attributed revenue per model version of the credited session."""
    return _frame(
        con,
        f"""
        SELECT coalesce(model_version, '{UNKNOWN_TOUCH}') AS model_version,
            count(*) AS attributed_lines,
            {exact_money_sum("last_touch")} AS attributed_revenue_usd,
            {_ATTRIBUTED_USERS}
        FROM fct_attribution
        WHERE scope = 'user' AND window_days = $window AND last_touch > 0
            AND order_date BETWEEN $start AND $end
        GROUP BY 1 ORDER BY 1 NULLS LAST
        """,
        {"start": period.start, "end": period.end, "window": window_days},
    )


def _attribution_by_touch_type(con: duckdb.DuckDBPyConnection, window_days: int) -> pl.DataFrame:
    """Return the data-driven summary at the window with its converting users per touch value.

    The summary is stored for one range (its start_date/end_date: every loaded day), not per
    report period.
    """
    if not table_exists(con, "fct_attribution_by_touch_type"):
        return pl.DataFrame()
    summary = _frame(
        con,
        "SELECT * FROM fct_attribution_by_touch_type WHERE window_days = $window "
        "ORDER BY touch_type NULLS LAST",
        {"window": window_days},
    )
    if summary.is_empty():
        return summary
    touch = TOUCH_COLUMNS[summary["touch_column"][0]]
    converting = _frame(
        con,
        f"""
        SELECT coalesce({touch}, '{UNKNOWN_TOUCH}') AS touch_type,
            count(DISTINCT user_id) AS converting_users
        FROM fct_attribution
        WHERE scope = 'user' AND window_days = $window AND line_status = 'placed'
            AND order_date BETWEEN $start AND $end
        GROUP BY 1
        """,
        {
            "window": window_days,
            "start": summary["start_date"][0],
            "end": summary["end_date"][0],
        },
    )
    return summary.join(converting, on="touch_type", how="left").with_columns(
        pl.col("converting_users").fill_null(0)
    )


_LIFT_COLUMNS = """period_grain, period_start, period_end, n_days, segment, method,
    experiment_id, window_days, n_engaged, n_comparison, n_engaged_users, n_comparison_users,
    conversions_engaged, conversions_comparison, cr_engaged, cr_comparison, lift, lift_ci_low,
    lift_ci_high, p_value_bh, ci_method, srm_p_value,
    cast(incremental_revenue_usd AS DOUBLE) AS incremental_revenue_usd,
    cast(incremental_revenue_ci_low AS DOUBLE) AS incremental_revenue_ci_low,
    cast(incremental_revenue_ci_high AS DOUBLE) AS incremental_revenue_ci_high"""


def _period_filter(spec: PeriodSpec) -> tuple[str, dict[str, Any]]:
    """Return the WHERE clause (and parameters) picking the lift rows of the period."""
    params: dict[str, Any] = {"grain": spec.lift_grain}
    where = "period_grain = $grain"
    if spec.first_day is not None:
        where += " AND period_start BETWEEN $first AND $last"
        params.update(first=spec.first_day, last=spec.last_day)
    return where, params


def _lift_rows(con: duckdb.DuckDBPyConnection, spec: PeriodSpec) -> pl.DataFrame:
    """Return the lift rows of the period for segment all and the model_version segments."""
    where, params = _period_filter(spec)
    return _frame(
        con,
        f"SELECT {_LIFT_COLUMNS} FROM fct_conversion_lift WHERE {where} "
        "AND (segment = 'all' OR segment LIKE 'model_version=%') "
        "ORDER BY window_days NULLS LAST, segment NULLS LAST, CASE method WHEN 'observed' THEN 0 "
        "WHEN 'adjusted' THEN 1 ELSE 2 END NULLS LAST, experiment_id NULLS FIRST",
        params,
    )


def _attributed_buyers(
    con: duckdb.DuckDBPyConnection, start: date, end: date, window_days: int
) -> int:
    """Return the distinct buyers with last-touch attributed revenue in [start, end]."""
    return int(
        con.execute(
            "SELECT count(DISTINCT user_id) FROM fct_attribution WHERE scope = 'user' "
            "AND window_days = $window AND last_touch > 0 AND line_revenue_usd > 0 "
            "AND order_date BETWEEN $start AND $end",
            {"start": start, "end": end, "window": window_days},
        ).fetchall()[0][0]
    )


def _impact(
    con: duckdb.DuckDBPyConnection, spec: PeriodSpec, window_days: int, lift: pl.DataFrame
) -> pl.DataFrame:
    """Return downstream impact per method (lift.downstream_impact) with exact group sizes."""
    impact = downstream_impact(con, window_days, spec.lift_grain)
    if spec.first_day is not None:
        impact = impact.filter(pl.col("period_start").is_between(spec.first_day, spec.last_day))
    groups = lift.filter((pl.col("segment") == "all") & (pl.col("window_days") == window_days))
    buyers = pl.DataFrame(
        [
            (start, end, _attributed_buyers(con, start, end, window_days))
            for start, end in impact.select("period_start", "period_end").unique().rows()
        ],
        schema={"period_start": pl.Date, "period_end": pl.Date, "attributed_buyers": pl.Int64},
        orient="row",
    )
    return (
        impact.join(
            groups.select(
                "method", "experiment_id", "period_start", "n_engaged_users", "n_comparison_users"
            ),
            on=["method", "experiment_id", "period_start"],
            how="left",
            nulls_equal=True,
        )
        .join(buyers, on=["period_start", "period_end"], how="left")
        .with_columns(pl.lit(window_days).cast(pl.Int32).alias("window_days"))
        .sort(pl.col("method").replace_strict(METHOD_ORDER, default=len(METHOD_ORDER)))
    )


def _balance_summary(con: duckdb.DuckDBPyConnection, spec: PeriodSpec, window_days: int) -> str:
    """Return the adjusted method's covariate balance and overlap for the period in one line."""
    if not (table_exists(con, "fct_lift_balance") and table_exists(con, "fct_lift_overlap")):
        return "no balance diagnostics (no adjusted estimate)"
    where, params = _period_filter(spec)
    params["window"] = window_days
    columns = {r[0] for r in con.execute("DESCRIBE fct_lift_balance").fetchall()}
    if "smd_after" not in columns:
        return "no balance diagnostics (no adjusted estimate)"
    before, after = con.execute(
        f"SELECT max(abs(smd_before)), max(abs(smd_after)) FROM fct_lift_balance "
        f"WHERE {where} AND window_days = $window",
        params,
    ).fetchall()[0]
    if after is None:
        return "no balance diagnostics for this period and window"
    trimmed, ess = con.execute(
        f"SELECT max(share_trimmed), min(ess_comparison) FROM fct_lift_overlap "
        f"WHERE {where} AND window_days = $window",
        params,
    ).fetchall()[0]
    verdict = "balanced" if after < SMD_BALANCED else "NOT balanced"
    return (
        f"{verdict}: largest |standardised mean difference| {before:.3f} before and {after:.3f} "
        f"after weighting (threshold {SMD_BALANCED}); {100 * (trimmed or 0):.1f}% of units "
        f"trimmed for lack of overlap; comparison effective sample size {ess or 0:,.0f}. "
        "Balance covers observed covariates only."
    )


# KPI table -> (time column, tie-break column, grain of the time column)
KPI_TABLES: dict[str, tuple[str, str, str]] = {
    "kpi_daily": ("date", "marketplace", "day"),
    "kpi_daily_segments": ("date", "segment", "day"),
    "kpi_monthly": ("month", "marketplace", "month"),
    "kpi_monthly_segments": ("month", "segment", "month"),
}


def _kpi_rows(con: duckdb.DuckDBPyConnection, table: str, period: ReportPeriod) -> pl.DataFrame:
    """Return every row of a KPI table in the period (whole months for monthly tables)."""
    column, tie_break, grain = KPI_TABLES[table]
    bounds = (
        (period.start, period.end) if grain == "day" else (period.first_month, period.last_month)
    )
    return _frame(
        con,
        f'SELECT * FROM "{table}" WHERE "{column}" BETWEEN $first AND $last '
        f'ORDER BY "{column}" NULLS LAST, "{tie_break}" NULLS LAST',
        {"first": bounds[0], "last": bounds[1]},
    )


def _data_range(con: duckdb.DuckDBPyConnection) -> tuple[date, date]:
    row = con.execute(
        'SELECT min("date"), max("date") FROM kpi_daily_segments WHERE segment = \'all\''
    ).fetchall()[0]
    if row[0] is None:
        raise FileNotFoundError("the KPI tables are empty: run `attribution run` first")
    return row[0], row[1]


def read_report_frames(
    con: duckdb.DuckDBPyConnection, settings: Settings, spec: PeriodSpec
) -> ReportFrames:
    """Return every table of the report for the period, before the privacy floor."""
    missing = [t for t in REQUIRED_TABLES if not table_exists(con, t)]
    if missing:
        raise FileNotFoundError(
            f"the warehouse has no table {', '.join(missing)}: run `attribution run` before "
            "the report"
        )
    data_start, data_end = _data_range(con)
    period = clip_period(spec, data_start, data_end)
    window = settings.kpi_window_days
    tables = {table: _kpi_rows(con, table, period) for table in KPI_TABLES}
    lift = _lift_rows(con, spec)
    overall = pl.col("segment") == "all"
    tables["lift_by_method"] = lift.filter(overall & (pl.col("window_days") == window))
    tables["lift_by_window"] = lift.filter(overall)
    tables["downstream_impact"] = _impact(con, spec, window, lift)
    tables["model_version_lift"] = lift.filter(
        pl.col("segment").str.starts_with("model_version=")
        & (pl.col("window_days") == window)
        & (pl.col("method") != "experiment")
    )
    tables["model_version_attribution"] = _model_version_attribution(con, period, window)
    revenue = tables["kpi_daily_segments"].filter(overall)["revenue_usd"].cast(pl.Float64).sum()
    tables["attribution_by_model_window"] = _attribution_by_model_window(con, period, revenue)
    tables["lag_distribution"] = _lag_distribution(con, period)
    tables["attribution_by_touch_type"] = _attribution_by_touch_type(con, window)
    return ReportFrames(
        period=period,
        data_start=data_start,
        data_end=data_end,
        window_days=window,
        tables=tables,
        balance=_balance_summary(con, spec, window),
    )
