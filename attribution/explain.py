"""Why an order's lines got their credit: eligible sessions, times, products and every credit."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from attribution.config import RULE_MODELS
from attribution.warehouse import table_exists

CREDIT_COLUMNS: tuple[str, ...] = RULE_MODELS


_SCOPE_MEANING: dict[str, str] = {
    "user": "any session of the buyer",
    "product": "sessions that surfaced {product}",
    "brand": "sessions that surfaced a product of {product}'s brand",
    "category": "sessions that surfaced a product of {product}'s category",
}


@dataclass(frozen=True)
class OrderExplanation:
    """An order's lines and, per (line, window, scope), the eligible sessions and their credits."""

    order_id: str
    lines: pl.DataFrame
    touches: pl.DataFrame


def explain_order(con: duckdb.DuckDBPyConnection, order_id: str) -> OrderExplanation:
    """Return the order's lines and the credited sessions of each line (every window and scope).

    Raises ``LookupError`` if the order is not in the warehouse.
    """
    if not table_exists(con, "int_order_lines"):
        raise LookupError("the warehouse has no order lines yet: run `attribution run` first")
    lines = con.sql(
        """
        SELECT line_no, product_id, order_at, line_status, amount, currency,
               line_amount_usd, line_revenue_usd
        FROM int_order_lines WHERE order_id = $order_id ORDER BY line_no NULLS LAST
        """,
        params={"order_id": order_id},
    ).pl()
    if lines.height == 0:
        raise LookupError(f"order {order_id!r} is not in the warehouse")
    touches = con.sql(
        f"""
        SELECT a.line_no, a.window_days, a.scope, a.touch_rank, a.n_touches, a.session_id,
               a.session_start, round(a.session_age_hours, 2) AS age_hours, a.touch_type,
               a.channel, a.model_version,
               (SELECT string_agg(p.product_id, '|' ORDER BY p.product_id NULLS LAST)
                  FROM int_session_products AS p
                 WHERE p.session_id = a.session_id AND p.user_id = a.user_id) AS session_products,
               {", ".join(f"a.{c}" for c in CREDIT_COLUMNS)}
        FROM fct_attribution AS a
        WHERE a.order_id = $order_id
        ORDER BY a.line_no NULLS LAST, a.scope DESC NULLS LAST, a.window_days NULLS LAST,
            a.touch_rank NULLS LAST
        """,
        params={"order_id": order_id},
    ).pl()
    return OrderExplanation(order_id=order_id, lines=lines, touches=touches)


def explanation_text(explanation: OrderExplanation) -> list[str]:
    """Return plain-language reasons, one per (line, window, scope) group."""
    reasons: list[str] = []
    for line in explanation.lines.iter_rows(named=True):
        touches = explanation.touches.filter(pl.col("line_no") == line["line_no"])
        if touches.height == 0:
            reasons.append(
                f"line {line['line_no']} ({line['product_id']}): no assistant session of the "
                "buyer within any window before the order: unattributed."
            )
            continue
        for (window, scope), group in touches.group_by(
            ["window_days", "scope"], maintain_order=True
        ):
            first = group.row(0, named=True)
            last = group.row(group.height - 1, named=True)
            which = _SCOPE_MEANING[scope].format(product=line["product_id"])
            reasons.append(
                f"line {line['line_no']}, {window}-day window, scope {scope} ({which}): "
                f"{group.height} eligible session(s); first touch {first['session_id']} "
                f"({first['age_hours']} h before), last touch {last['session_id']} "
                f"({last['age_hours']} h before)."
            )
    return reasons
