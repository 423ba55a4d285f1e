"""Revenue per visitor-day on a rounding boundary: tiny inputs of ``fct_conversion_lift`` (one day
per case) and the hand-computed answers, shared by the DuckDB test and the Spark parity case.

Rule (docs/data-contract.md): the exact DECIMAL revenue of a group divided by its visitor-days,
rounded half away from zero to 0.0001 USD.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from attribution.config import Settings
from attribution.warehouse import bound_parameters, model_parameters, models

FIRST_DAY = date(2026, 3, 2)
WINDOW_DAYS = 1

# (engaged visitor-days' revenue, comparison visitor-days' revenue, expected revenue per
# visitor-day engaged, comparison); one day per case. "old" is what DuckDB's
# cast(double / n as decimal(18, 4)) gave, where it differs.
CASES: list[tuple[list[str], list[str], str | None, str | None]] = [
    # 308.8631 / 2 = 154.43155: half up 154.4316 (old 154.4315); 1.0003 / 2 = 0.50015 -> 0.5002
    (["308.8631", "0"], ["1.0003", "0"], "154.4316", "0.5002"),
    # 0.0003 / 6 = 0.00005 -> 0.0001 (old 0.0000); 1000000.0001 / 2 = 500000.00005 -> 500000.0001
    (["0.0003", "0", "0", "0", "0", "0"], ["1000000.0001", "0"], "0.0001", "500000.0001"),
    # not on a boundary: 7.0009 / 6 = 1.16681(6) -> 1.1668; 20 / 3 = 6.(6) -> 6.6667
    (["7.0009", "0", "0", "0", "0", "0"], ["10", "10", "0"], "1.1668", "6.6667"),
    # no comparison visitor-day: NULL; no revenue: 0
    (["5", "0"], [], "2.5000", None),
    (["0", "0"], ["0"], "0.0000", "0.0000"),
    # a negative total (the contract forbids negative amounts) rounds away from zero too
    (["-308.8631", "0"], ["-0.0003", "0", "0", "0", "0", "0"], "-154.4316", "-0.0001"),
]

# input views of the model: Spark DDL, and the rows (DuckDB types: STRING -> VARCHAR, ...)
SCHEMAS: dict[str, str] = {
    "stg_visits": "user_id STRING, visit_date DATE, visit_at TIMESTAMP_NTZ, marketplace STRING, "
    "channel STRING",
    "assistant_sessions": "user_id STRING, session_date DATE, session_start TIMESTAMP_NTZ, "
    "marketplace STRING, channel STRING",
    "int_orders": "user_id STRING, order_at TIMESTAMP_NTZ, order_date DATE, "
    "order_revenue_usd DECIMAL(18,4), is_placed BOOLEAN",
    "cfg_windows": "window_days INT",
}


def case_day(index: int) -> date:
    """Return the day of case ``index``."""
    return FIRST_DAY + timedelta(days=index)


def input_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Return the rows of every input view: per case, each engaged visitor-day is a user with
    an assistant session at 10:00, each comparison one a user with a visit at 10:00, and each
    nonzero revenue one placed order at 11:00 the same day."""
    tables: dict[str, list[tuple[Any, ...]]] = {name: [] for name in SCHEMAS}
    tables["cfg_windows"].append((WINDOW_DAYS,))
    for index, (engaged, comparison, _, _) in enumerate(CASES):
        day = case_day(index)
        at = datetime(day.year, day.month, day.day, 10)
        for group, revenues, table in (
            ("e", engaged, "assistant_sessions"),
            ("c", comparison, "stg_visits"),
        ):
            for k, revenue in enumerate(revenues):
                user = f"{group}{index}_{k}"
                tables[table].append((user, day, at, "US", "web"))
                if Decimal(revenue):
                    order_at = at + timedelta(hours=1)
                    tables["int_orders"].append((user, order_at, day, Decimal(revenue), True))
    return tables


def expected() -> dict[date, tuple[Decimal | None, Decimal | None]]:
    """Return the hand-computed (engaged, comparison) revenue per visitor-day of each day."""
    return {
        case_day(i): (_decimal(engaged), _decimal(comparison))
        for i, (_, _, engaged, comparison) in enumerate(CASES)
    }


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def model_and_parameters() -> tuple[str, dict[str, Any]]:
    """Return the SQL of ``fct_conversion_lift`` and the parameters it binds for the cases."""
    [model] = [m for m in models() if m.name == "fct_conversion_lift"]
    last = case_day(len(CASES) - 1) + timedelta(days=WINDOW_DAYS)
    parameters = model_parameters(Settings(), FIRST_DAY, last)
    return model.sql, bound_parameters(model.sql, parameters)


RESULT_SQL = (
    "SELECT period_start, revenue_per_user_engaged_usd, revenue_per_user_comparison_usd "
    "FROM lift WHERE segment = 'all'"
)


def duckdb_result() -> dict[date, tuple[Decimal | None, Decimal | None]]:
    """Return (engaged, comparison) revenue per visitor-day per day, the model run on DuckDB."""
    con = duckdb.connect()
    duck_types = {"STRING": "VARCHAR", "TIMESTAMP_NTZ": "TIMESTAMP"}
    for table, ddl in SCHEMAS.items():
        for spark_type, duck_type in duck_types.items():
            ddl = ddl.replace(spark_type, duck_type)
        con.execute(f"CREATE TABLE {table} ({ddl})")
        rows = input_rows()[table]
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    sql, parameters = model_and_parameters()
    con.execute(f"CREATE TABLE lift AS {sql}", parameters)
    return {day: (e, c) for day, e, c in con.execute(RESULT_SQL).fetchall()}
