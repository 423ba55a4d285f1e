"""How attribution credit is spread: by touch position, by window, by lag; orders worth explaining.

Readers over ``fct_attribution`` and its marts for analysts (``attribution.marts``). Money is
summed exactly: each credit x line revenue is cast to DECIMAL(38, 10) before the sum and the sum
is rounded to 4 decimal places, as the window-sensitivity mart does, then handed to polars as a
double for display.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import polars as pl

from attribution.config import RULE_MODELS
from attribution.warehouse import exact_money_sum, require_tables

# a touch's position in its line's journey (touch_rank among n_touches eligible sessions)
POSITIONS: tuple[str, ...] = ("only", "first", "middle", "last")
_POSITION_SQL = (
    "CASE WHEN n_touches = 1 THEN 'only' WHEN touch_rank = 1 THEN 'first' "
    "WHEN touch_rank = n_touches THEN 'last' ELSE 'middle' END"
)


def _date_filter(start: date | None, end: date | None) -> tuple[str, dict[str, Any]]:
    """Return an order-date filter and its parameters (None = open end)."""
    return (
        "order_date BETWEEN coalesce($start, DATE '0001-01-01') "
        "AND coalesce($end, DATE '9999-12-31')",
        {"start": start, "end": end},
    )


def credit_by_position(
    con: duckdb.DuckDBPyConnection,
    scope: str = "user",
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """Return one row per (window, rule model, touch position): credit and attributed revenue.

    Position of a touch in its line's journey: ``only`` (the line had one eligible session),
    ``first``, ``middle`` or ``last``. Columns: window_days, model, position, touches,
    credited_lines (sum of credits: a line's credits sum to 1), attributed_revenue_usd,
    share_of_model (the position's share of the model's attributed revenue at that window).
    Orders placed in [start, end] (None = all).
    """
    require_tables(con, "fct_attribution")
    where, params = _date_filter(start, end)
    sums = ", ".join(
        f"sum({m}) AS credit__{m}, {exact_money_sum(m)} AS revenue__{m}" for m in RULE_MODELS
    )
    wide = con.sql(
        f"""
        SELECT window_days, {_POSITION_SQL} AS position, count(*) AS touches, {sums}
        FROM fct_attribution WHERE scope = $scope AND {where}
        GROUP BY ALL ORDER BY window_days NULLS LAST, position NULLS LAST
        """,
        params={"scope": scope, **params},
    ).pl()
    parts = [
        wide.select(
            "window_days",
            pl.lit(m).alias("model"),
            "position",
            "touches",
            pl.col(f"credit__{m}").alias("credited_lines"),
            pl.col(f"revenue__{m}").cast(pl.Float64).alias("attributed_revenue_usd"),
        )
        for m in RULE_MODELS
    ]
    long = pl.concat(parts) if parts else pl.DataFrame()
    if long.is_empty():
        return long
    order = {p: i for i, p in enumerate(POSITIONS)}
    return (
        long.with_columns(
            (
                pl.col("attributed_revenue_usd")
                / pl.col("attributed_revenue_usd").sum().over("window_days", "model")
            ).alias("share_of_model"),
            pl.col("position").replace_strict(order, return_dtype=pl.Int32).alias("_order"),
        )
        .sort("window_days", "model", "_order")
        .drop("_order")
    )


def credit_moved(positions: pl.DataFrame, from_model: str, to_model: str) -> pl.DataFrame:
    """Return how revenue moves between touch positions when ``from_model`` becomes ``to_model``.

    ``positions`` is ``credit_by_position``'s frame. One row per (window, position):
    revenue under each model, ``moved_usd`` (to - from; the column sums to 0 per window, since
    every model credits the same lines) and ``moved_share`` (moved_usd / the window's total).
    """
    for model in (from_model, to_model):
        if model not in RULE_MODELS:
            raise ValueError(f"unknown rule model {model!r}; one of {', '.join(RULE_MODELS)}")
    keys = ["window_days", "position"]
    source = positions.filter(pl.col("model") == from_model).select(
        *keys, pl.col("attributed_revenue_usd").alias(f"{from_model}_usd")
    )
    target = positions.filter(pl.col("model") == to_model).select(
        *keys, pl.col("attributed_revenue_usd").alias(f"{to_model}_usd")
    )
    moved = (pl.col(f"{to_model}_usd") - pl.col(f"{from_model}_usd")).alias("moved_usd")
    out = source.join(target, on=keys, how="full", coalesce=True).with_columns(
        pl.col(f"{from_model}_usd", f"{to_model}_usd").fill_null(0.0)
    )
    out = out.with_columns(moved)
    return out.with_columns(
        (pl.col("moved_usd") / pl.col(f"{from_model}_usd").sum().over("window_days")).alias(
            "moved_share"
        )
    )


def window_sensitivity(
    con: duckdb.DuckDBPyConnection,
    scope: str = "user",
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """Return one row per (window, rule model): attributed lines and revenue, share of revenue.

    From ``fct_attribution_window_sensitivity``. ``share_of_revenue`` = attributed revenue /
    revenue of every placed line ordered in the same dates (``int_order_lines``): how much of
    all sales each window lets the assistant claim. Every rule model credits the same total at a
    window; they differ in which sessions get it.
    """
    require_tables(con, "fct_attribution_window_sensitivity", "int_order_lines")
    where, params = _date_filter(start, end)
    revenue_columns = ", ".join(f"cast(sum({m}_revenue_usd) AS DOUBLE) AS {m}" for m in RULE_MODELS)
    wide = con.sql(
        f"""
        WITH total AS (
            SELECT cast(sum(line_revenue_usd) AS DOUBLE) AS revenue_usd
            FROM int_order_lines WHERE {where.replace("order_date", "cast(order_at AS DATE)")}
        )
        SELECT window_days, cast(sum(attributed_lines) AS BIGINT) AS attributed_lines,
            cast(sum(line_revenue_usd) AS DOUBLE) AS attributed_line_revenue_usd,
            {revenue_columns}, min(total.revenue_usd) AS revenue_usd
        FROM fct_attribution_window_sensitivity, total
        WHERE scope = $scope AND {where}
        GROUP BY window_days ORDER BY window_days NULLS LAST
        """,
        params={"scope": scope, **params},
    ).pl()
    return wide.unpivot(
        index=["window_days", "attributed_lines", "attributed_line_revenue_usd", "revenue_usd"],
        on=list(RULE_MODELS),
        variable_name="model",
        value_name="attributed_revenue_usd",
    ).with_columns(
        (pl.col("attributed_revenue_usd") / pl.col("revenue_usd")).alias("share_of_revenue")
    )


def lag_distribution(con: duckdb.DuckDBPyConnection, scope: str = "user") -> pl.DataFrame:
    """Return one row per (window, lag bucket) between the last eligible session and the order.

    From ``fct_attribution_lag``: attributed lines and their revenue, ``share_of_lines`` within
    the window and ``cumulative_share`` (lines bought within the bucket's upper bound).
    """
    require_tables(con, "fct_attribution_lag")
    return (
        con.sql(
            """
            SELECT window_days, lag_bucket_order, lag_bucket,
                cast(sum(attributed_lines) AS BIGINT) AS attributed_lines,
                cast(sum(line_revenue_usd) AS DOUBLE) AS line_revenue_usd
            FROM fct_attribution_lag WHERE scope = $scope
            GROUP BY ALL ORDER BY window_days NULLS LAST, lag_bucket_order NULLS LAST
            """,
            params={"scope": scope},
        )
        .pl()
        .with_columns(
            (
                pl.col("attributed_lines") / pl.col("attributed_lines").sum().over("window_days")
            ).alias("share_of_lines")
        )
        .with_columns(
            pl.col("share_of_lines").cum_sum().over("window_days").alias("cumulative_share")
        )
    )


def orders_to_explain(
    con: duckdb.DuckDBPyConnection, n: int = 3, window_days: int = 7, min_touches: int = 2
) -> list[str]:
    """Return up to ``n`` placed orders whose credit differs between models, one per journey length.

    Picks orders with a line of at least ``min_touches`` eligible sessions (user scope, window
    ``window_days``), the shortest journeys first, one order per journey length, the same orders
    on every call (ordered by md5 of the order id).
    """
    require_tables(con, "fct_attribution")
    rows = con.execute(
        """
        WITH lines AS (
            SELECT order_id, max(n_touches) AS n_touches
            FROM fct_attribution
            WHERE scope = 'user' AND window_days = $w AND line_status = 'placed'
            GROUP BY order_id HAVING max(n_touches) >= $min_touches
        ),
        ranked AS (
            SELECT order_id, n_touches,
                row_number() OVER (
                    PARTITION BY n_touches ORDER BY md5(order_id) NULLS LAST, order_id NULLS LAST
                ) AS pick
            FROM lines
        )
        SELECT order_id FROM ranked WHERE pick = 1 ORDER BY n_touches NULLS LAST LIMIT $n
        """,
        {"w": window_days, "min_touches": min_touches, "n": n},
    ).fetchall()
    return [row[0] for row in rows]


def data_driven_by_touch_type(
    con: duckdb.DuckDBPyConnection, window_days: int | None = None
) -> pl.DataFrame:
    """Return ``fct_attribution_by_touch_type`` (Markov removal effects, Shapley values and the
    rule models' revenue per touch type), optionally for one window."""
    require_tables(con, "fct_attribution_by_touch_type")
    return con.sql(
        "SELECT * FROM fct_attribution_by_touch_type "
        "WHERE $w IS NULL OR window_days = $w "
        "ORDER BY window_days NULLS LAST, touch_type NULLS LAST",
        params={"w": window_days},
    ).pl()
