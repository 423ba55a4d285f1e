"""fct_conversion_lift's revenue per visitor-day on rounding boundaries, on DuckDB (no JVM): the
exact DECIMAL revenue / visitor-days, rounded half away from zero to 0.0001 USD. The Spark
parity suite runs the same cases (tests/rounding_cases.py) on Spark."""

from __future__ import annotations

from decimal import Decimal

import duckdb
from rounding_cases import CASES, case_day, duckdb_result, expected


def test_revenue_per_visitor_day_is_the_exact_quotient_rounded_half_away_from_zero() -> None:
    assert duckdb_result() == expected()


def test_the_cases_sit_where_a_double_cast_to_decimal_rounds_down() -> None:
    """The boundary cases are real: DuckDB's cast of the DOUBLE quotient (the model's former
    formula) gives the lower value there, Spark's cast the upper one (docs/spark.md)."""
    old = "SELECT cast(cast(cast(? AS DECIMAL(18, 4)) AS DOUBLE) / ? AS DECIMAL(18, 4))"
    con = duckdb.connect()
    assert con.execute(old, ["308.8631", 2]).fetchone()[0] == Decimal("154.4315")
    assert con.execute(old, ["0.0003", 6]).fetchone()[0] == Decimal("0.0000")
    assert expected()[case_day(0)][0] == Decimal("154.4316")
    assert expected()[case_day(1)][0] == Decimal("0.0001")
    assert len(expected()) == len(CASES)
