"""Tiny hand-written warehouses for SQL model tests: raw rows in, models run, frames out."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from attribution.config import Settings
from attribution.contract import SOURCES
from attribution.ingest import ensure_raw_schema
from attribution.warehouse import connect, run_models

T0 = datetime(2026, 3, 10, 12, 0, 0)


def empty_warehouse(path: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """Return a warehouse (in memory unless a file path is given) with the raw schema, no rows."""
    con = connect(path)
    ensure_raw_schema(con)
    return con


def insert(con: duckdb.DuckDBPyConnection, source: str, rows: list[dict[str, Any]]) -> None:
    """Insert contract rows into raw_<source>, filling bookkeeping columns and optional ones."""
    spec = SOURCES[source]
    names = list(spec.column_names)
    for index, row in enumerate(rows, start=1):
        unknown = set(row) - set(names)
        assert not unknown, f"not contract columns of {source}: {unknown}"
        values = [row.get(name) for name in names]
        if source == "orders":
            values[names.index("status")] = row.get("status", "placed")
            values[names.index("updated_at")] = row.get("updated_at", row["ts"])
        placeholders = ", ".join("?" for _ in names)
        con.execute(
            f"INSERT INTO {spec.raw_table} ({', '.join(names)}, _file, _row, _run_id, _loaded_at) "
            f"VALUES ({placeholders}, 'test', ?, 'test', TIMESTAMP '2026-01-01')",
            [*values, index],
        )


def build(
    con: duckdb.DuckDBPyConnection, start: date, end: date, settings: Settings | None = None
) -> None:
    """Run every model for the window [start, end]."""
    for _model, _rows in run_models(con, settings or Settings(), start, end):
        pass


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    """Return all rows of a query."""
    return con.execute(sql).fetchall()


def visit_row(user: str, ts: datetime, marketplace: str = "US", channel: str = "web") -> dict:
    """Return a contract row of ``visits``."""
    return {"user_id": user, "ts": ts, "marketplace": marketplace, "channel": channel}


def order_row(
    order_id: str,
    user: str,
    ts: datetime,
    amount: str = "100.00",
    marketplace: str = "US",
    status: str = "placed",
    line_no: int = 1,
) -> dict:
    """Return a contract row of ``orders``: one USD line of product p1."""
    return {
        "order_id": order_id,
        "line_no": line_no,
        "user_id": user,
        "ts": ts,
        "marketplace": marketplace,
        "product_id": "p1",
        "quantity": 1,
        "amount": Decimal(amount),
        "currency": "USD",
        "status": status,
    }
