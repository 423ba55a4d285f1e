"""Journeys for the ``data_driven`` model, read from the warehouse, and the per-touch-type table.

A *converting journey* is one placed order line of ``fct_attribution`` (scope ``user``, one window,
orders placed in [start_date, end_date]): the touch types of its eligible sessions in the order
(session_start, session_id); its value is the line's ``line_revenue_usd``. Lines with no eligible
session are not journeys (they never touched the assistant).

A *non-converting journey* is a run of a user's sessions (session_date in [start_date - window,
end_date]) that are eligible for no placed order line at that window, i.e. no placed line of the
same user with session_start <= order_at <= session_start + window. A user's such sessions, in
(session_start, session_id) order, start a new journey when the gap from the previous one's start
exceeds the window.

Cancelled and returned lines are not conversions (the contract's conversion is an order still
placed): they are not converting journeys, and a session eligible only for them counts as not
converting. Their revenue is 0 in every rule model anyway.

Docs: ``docs/data-driven.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

import duckdb
import polars as pl

from attribution.config import RULE_MODELS, Settings
from attribution.markov import markov_attribution, shapley_attribution

# The only dimensions a journey may be made of: value = the (constant) SQL column it reads.
TOUCH_COLUMNS: dict[str, str] = {
    "touch_type": "touch_type",
    "channel": "channel",
    "model_version": "model_version",
}
UNKNOWN_TOUCH = "unknown"  # a session without a value in the touch column (model_version)
TABLE = "fct_attribution_by_touch_type"

JOURNEY_SCHEMA: dict[str, Any] = {
    "journey_id": pl.String,
    "path": pl.List(pl.String),
    "converted": pl.Boolean,
    "value_usd": pl.Float64,
}

_CONVERTING_SQL = """
SELECT
    'line:' || order_id || ':' || cast(line_no AS VARCHAR) AS journey_id,
    -- the touches in time order (ties by session id); sorting structs keeps the order on Spark
    list_transform(
        list_sort(list({{'at': session_start, 'id': session_id,
            'touch': coalesce({touch}, '{unknown}')}})),
        lambda s: s.touch
    ) AS path,
    true AS converted,
    cast(min(line_revenue_usd) AS DOUBLE) AS value_usd  -- the same on every row of the line
FROM fct_attribution
WHERE scope = 'user'
    AND window_days = $window_days
    AND order_date BETWEEN $start_date AND $end_date
    AND line_status = 'placed'
GROUP BY order_id, line_no
ORDER BY order_id NULLS LAST, line_no NULLS LAST
"""

_NON_CONVERTING_SQL = """
WITH sessions AS (
    SELECT session_id, user_id, session_start, coalesce({touch}, '{unknown}') AS touch
    FROM assistant_sessions
    WHERE session_date BETWEEN cast($start_date AS DATE) - cast($window_days AS INTEGER)
        AND $end_date
),

unmatched AS (
    SELECT s.*
    FROM sessions AS s
    WHERE NOT EXISTS (
        SELECT 1
        FROM int_order_lines AS l
        WHERE l.user_id = s.user_id
            AND l.line_status = 'placed'
            AND l.order_at >= s.session_start
            AND date_diff('microsecond', s.session_start, l.order_at)
                <= cast($window_days AS BIGINT) * 86400000000
    )
),

flagged AS (
    SELECT
        *,
        CASE
            WHEN lag(session_start) OVER w IS NULL THEN 1
            WHEN date_diff('microsecond', lag(session_start) OVER w, session_start)
                > cast($window_days AS BIGINT) * 86400000000 THEN 1
            ELSE 0
        END AS starts_journey
    FROM unmatched
    WINDOW w AS (PARTITION BY user_id ORDER BY session_start NULLS LAST, session_id NULLS LAST)
),

numbered AS (
    SELECT
        *,
        cast(sum(starts_journey) OVER (
            PARTITION BY user_id ORDER BY session_start NULLS LAST, session_id NULLS LAST
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS BIGINT) AS journey_no
    FROM flagged
)

SELECT
    'user:' || user_id || ':' || cast(journey_no AS VARCHAR) AS journey_id,
    list_transform(
        list_sort(list({{'at': session_start, 'id': session_id, 'touch': touch}})),
        lambda s: s.touch
    ) AS path,
    false AS converted,
    0.0::DOUBLE AS value_usd
FROM numbered
GROUP BY user_id, journey_no
ORDER BY user_id NULLS LAST, journey_no NULLS LAST
"""

_RULES_SQL = """
SELECT
    coalesce({touch}, '{unknown}') AS touch_type,
    {sums}
FROM fct_attribution
WHERE scope = 'user'
    AND window_days = $window_days
    AND order_date BETWEEN $start_date AND $end_date
GROUP BY 1
ORDER BY 1 NULLS LAST
"""


def touch_sql_column(touch_column: str) -> str:
    """Return the SQL column for an allowed touch column; ``ValueError`` otherwise."""
    if touch_column not in TOUCH_COLUMNS:
        raise ValueError(
            f"touch_column must be one of {sorted(TOUCH_COLUMNS)}, got {touch_column!r}"
        )
    return TOUCH_COLUMNS[touch_column]


def _check_window(window_days: int) -> int:
    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 1:
        raise ValueError(f"window_days must be a whole number of days >= 1, got {window_days!r}")
    return window_days


def _journey_queries(touch_column: str) -> tuple[str, str]:
    """Return the (converting, non-converting) journey queries for an allowed touch column."""
    touch = touch_sql_column(touch_column)
    return (
        _CONVERTING_SQL.format(touch=touch, unknown=UNKNOWN_TOUCH),
        _NON_CONVERTING_SQL.format(touch=touch, unknown=UNKNOWN_TOUCH),
    )


def _window_params(window_days: int, start_date: date, end_date: date) -> dict[str, Any]:
    return {
        "window_days": _check_window(window_days),
        "start_date": start_date,
        "end_date": end_date,
    }


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pl.DataFrame:
    result = con.execute(sql, params).fetchall()  # read whole results (DuckDB 2)
    return pl.DataFrame(result, schema=JOURNEY_SCHEMA, orient="row")


AGGREGATED_SCHEMA: dict[str, Any] = {
    "path": pl.List(pl.String),
    "converted": pl.Boolean,
    "count": pl.Int64,
    "value_usd": pl.Float64,
}


def aggregated_journeys_for_window(
    con: duckdb.DuckDBPyConnection,
    window_days: int,
    start_date: date,
    end_date: date,
    touch_column: str = "touch_type",
) -> pl.DataFrame:
    """Return one row per distinct (path, converted) of a window: count and total value.

    The same journeys as ``journeys_for_window``, aggregated in SQL, so that the Python models
    scale with the number of distinct paths, not with rows. Values are summed as DECIMAL (exact,
    independent of order); rows are ordered by (path, converted).
    """
    params = _window_params(window_days, start_date, end_date)
    result = con.execute(aggregated_journeys_sql(touch_column), params).fetchall()
    return pl.DataFrame(result, schema=AGGREGATED_SCHEMA, orient="row")


def aggregated_journeys_sql(touch_column: str = "touch_type") -> str:
    """Return the query of ``aggregated_journeys_for_window`` (parameters $window_days,
    $start_date, $end_date); the Spark engine runs the same text."""
    converting, non_converting = _journey_queries(touch_column)
    union = f"SELECT * FROM ({converting}) UNION ALL SELECT * FROM ({non_converting})"
    return f"""
        SELECT path, converted, count(*) AS n,
               cast(sum(cast(value_usd AS DECIMAL(38, 4))) AS DOUBLE) AS value_usd
        FROM ({union}) AS journeys
        GROUP BY path, converted
        ORDER BY path NULLS LAST, converted NULLS LAST
    """


def journeys_for_window(
    con: duckdb.DuckDBPyConnection,
    window_days: int,
    start_date: date,
    end_date: date,
    touch_column: str = "touch_type",
) -> pl.DataFrame:
    """Return the journeys (journey_id, path, converted, value_usd) of one window.

    Converting journeys (one per placed order line with an eligible session, orders in
    [start_date, end_date]; ids ``line:<order_id>:<line_no>``) come first, ordered by order line;
    then non-converting ones (ids ``user:<user_id>:<n>``), ordered by user and journey number.
    ``touch_column`` is one of ``touch_type``, ``channel``, ``model_version``; a session without a
    value there becomes ``unknown``.
    """
    params = _window_params(window_days, start_date, end_date)
    converting, non_converting = _journey_queries(touch_column)
    return pl.concat(
        [_frame(con, converting, params), _frame(con, non_converting, params)], how="vertical"
    )


def rule_totals_by_touch_type(
    con: duckdb.DuckDBPyConnection,
    window_days: int,
    start_date: date,
    end_date: date,
    touch_column: str = "touch_type",
) -> pl.DataFrame:
    """Return each rule model's attributed revenue per touch type (scope user, one window).

    Columns: touch_type, ``<model>_revenue_usd`` for first_touch, last_touch, linear, time_decay,
    position_based: sum of credit x line_revenue_usd, rounded to 4 places. Each product is
    cast to DECIMAL(38,10) before the sum, so that the total does not depend on summation order.
    """
    params = _window_params(window_days, start_date, end_date)
    result = con.execute(rule_totals_sql(touch_column), params).fetchall()
    return pl.DataFrame(result, schema=RULE_TOTALS_SCHEMA, orient="row")


RULE_TOTALS_SCHEMA: dict[str, Any] = {"touch_type": pl.String} | {
    f"{m}_revenue_usd": pl.Float64 for m in RULE_MODELS
}


def rule_totals_sql(touch_column: str = "touch_type") -> str:
    """Return the query of ``rule_totals_by_touch_type`` (parameters $window_days,
    $start_date, $end_date); the Spark engine runs the same text."""
    touch = touch_sql_column(touch_column)
    sums = ",\n    ".join(
        f"cast(cast(sum(cast({model} * cast(line_revenue_usd AS DOUBLE) AS DECIMAL(38, 10))) "
        f"AS DECIMAL(18, 4)) AS DOUBLE) AS {model}_revenue_usd"
        for model in RULE_MODELS
    )
    return _RULES_SQL.format(touch=touch, unknown=UNKNOWN_TOUCH, sums=sums)


BY_TOUCH_TYPE_SCHEMA: dict[str, Any] = {
    "window_days": pl.Int64,
    "touch_column": pl.String,
    "markov_order": pl.Int64,
    "touch_type": pl.String,
    "removal_effect": pl.Float64,
    "share": pl.Float64,
    "attributed_conversions": pl.Float64,
    "attributed_revenue_usd": pl.Float64,
    "shapley_share": pl.Float64,
    "shapley_revenue_usd": pl.Float64,
    "n_converting_journeys": pl.Int64,
    "n_journeys": pl.Int64,
    **{f"{model}_revenue_usd": pl.Float64 for model in RULE_MODELS},
}


def data_driven_by_touch_type(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    start_date: date,
    end_date: date,
    order: int = 1,
    touch_column: str = "touch_type",
) -> pl.DataFrame:
    """Return the data-driven model beside the rule models, one row per (window, touch type).

    For every window of ``settings.windows_days``: the Markov model of order ``order``
    (removal_effect, share, attributed_conversions, attributed_revenue_usd = total line revenue x
    share, a global allocation), the exact Shapley values (shapley_share of conversions,
    shapley_revenue_usd; null when there are too many touch types to enumerate), the journey
    counts, and each rule model's attributed revenue from ``fct_attribution`` (scope user).
    A touch type missing from one side gets 0 there. Money is rounded to 4 places. Sorted by
    (window_days, touch_type); a rerun on the same warehouse gives identical rows.
    """
    touch_sql_column(touch_column)
    return data_driven_from(
        lambda w: aggregated_journeys_for_window(con, w, start_date, end_date, touch_column),
        lambda w: rule_totals_by_touch_type(con, w, start_date, end_date, touch_column),
        settings.windows_days,
        order,
        touch_column,
    )


def data_driven_from(
    journeys_of: Callable[[int], pl.DataFrame],
    rule_totals_of: Callable[[int], pl.DataFrame],
    windows_days: Iterable[int],
    order: int = 1,
    touch_column: str = "touch_type",
) -> pl.DataFrame:
    """Return ``data_driven_by_touch_type``'s rows from each window's aggregated journeys and
    rule totals, whichever engine computed them (``journeys_of(window)``, ``rule_totals_of``)."""
    frames = []
    for window in windows_days:
        journeys = journeys_of(window)
        markov = markov_attribution(journeys, order=order)
        try:
            shapley = shapley_attribution(journeys).select(
                "touch_type", "shapley_share", "shapley_revenue_usd"
            )
        except ValueError:  # too many touch types to enumerate 2^n subsets
            shapley = pl.DataFrame(
                {"touch_type": markov["touch_type"]},
                schema={"touch_type": pl.String},
            ).with_columns(
                shapley_share=pl.lit(None, dtype=pl.Float64),
                shapley_revenue_usd=pl.lit(None, dtype=pl.Float64),
            )
        rules = rule_totals_of(window)
        model = markov.join(shapley, on="touch_type", how="left")
        frame = model.join(rules, on="touch_type", how="full", coalesce=True)
        fill = [c for c in frame.columns if c != "touch_type" and not c.startswith("shapley")]
        frame = frame.with_columns(
            pl.col(fill).fill_null(0.0),
            window_days=pl.lit(window, dtype=pl.Int64),
            touch_column=pl.lit(touch_column),
            markov_order=pl.lit(order, dtype=pl.Int64),
            n_converting_journeys=pl.lit(
                int(journeys.filter("converted")["count"].sum()), dtype=pl.Int64
            ),
            n_journeys=pl.lit(int(journeys["count"].sum()), dtype=pl.Int64),
        )
        if shapley["shapley_share"].null_count() == 0:
            # a touch type only in rule rows (no journey) is a null player: 0, not unknown
            frame = frame.with_columns(
                pl.col("shapley_share", "shapley_revenue_usd").fill_null(0.0)
            )
        frames.append(frame.select(list(BY_TOUCH_TYPE_SCHEMA)))
    if not frames:
        return pl.DataFrame(schema=BY_TOUCH_TYPE_SCHEMA)
    result = pl.concat(frames, how="vertical").cast(BY_TOUCH_TYPE_SCHEMA)
    money = ["attributed_revenue_usd", "shapley_revenue_usd"]
    return result.with_columns(pl.col(money).round(4)).sort("window_days", "touch_type")


def with_period(frame: pl.DataFrame, start_date: date, end_date: date) -> pl.DataFrame:
    """Return the rows of ``fct_attribution_by_touch_type``: the summary with its period first."""
    return frame.with_columns(
        start_date=pl.lit(start_date, dtype=pl.Date), end_date=pl.lit(end_date, dtype=pl.Date)
    ).select("start_date", "end_date", *BY_TOUCH_TYPE_SCHEMA)


def write_attribution_by_touch_type(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    start_date: date,
    end_date: date,
    order: int = 1,
    touch_column: str = "touch_type",
) -> int:
    """Replace ``fct_attribution_by_touch_type`` with the summary of [start_date, end_date].

    The table holds one period (its ``start_date`` and ``end_date`` are columns); rows are inserted
    ordered by (window_days, touch_type). Returns the rows written.
    """
    frame = data_driven_by_touch_type(con, settings, start_date, end_date, order, touch_column)
    frame = with_period(frame, start_date, end_date)
    view = "_fct_attribution_by_touch_type_frame"
    con.register(view, frame.to_arrow())
    try:
        con.execute(
            f'CREATE OR REPLACE TABLE "{TABLE}" AS SELECT * FROM "{view}" '
            "ORDER BY window_days NULLS LAST, touch_type NULLS LAST"
        )
    finally:
        con.unregister(view)
    return frame.height
