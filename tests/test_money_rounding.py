"""fct_conversion_lift's revenue per visitor-day on rounding boundaries, on DuckDB (no JVM): the
exact DECIMAL revenue / visitor-days, rounded half away from zero to 0.0001 USD. The Spark
parity suite runs the same cases (tests/rounding_cases.py) on Spark."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import numpy as np
from rounding_cases import CASES, case_day, duckdb_result, expected

from attribution import lift_groups as lg


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


def _python_rows(weights: np.ndarray | None = None) -> dict[date, tuple[Decimal | None, ...]]:
    """The cases through the Python lift's group sums (one period per case), each revenue per
    visitor-day written to a DECIMAL(18, 4) column as ``write_lift_tables`` does."""
    treated, revenue, period = [], [], []
    for index, (engaged, comparison, _, _) in enumerate(CASES):
        for side, revenues in ((True, engaged), (False, comparison)):
            treated += [side] * len(revenues)
            revenue += [float(Decimal(r)) for r in revenues]
            period += [index] * len(revenues)
    n = len(revenue)
    everyone = lg.Dimension("all", np.zeros(n, dtype=np.int64), ("all",))
    clusters = lg.clusters_of(everyone, np.arange(n), np.array(period), len(CASES))
    stats = lg.group_stats(clusters, np.array(treated), np.zeros(n), np.array(revenue), weights)
    con = duckdb.connect()
    found = {}
    for index in range(len(CASES)):
        row = lg.comparison_row(stats, index)
        found[case_day(index)] = tuple(
            con.execute("SELECT cast(? AS DECIMAL(18, 4))", [value]).fetchone()[0]
            if value is not None
            else None
            for value in (
                row["revenue_per_user_engaged_usd"],
                row["revenue_per_user_comparison_usd"],
            )
        )
    return found


def test_python_lift_rows_follow_the_same_rule() -> None:
    """The observed rows the Python lift writes (unit weights) round like the SQL model: exact
    totals in 0.0001 USD, half away from zero (before, 154.43155 was written as 154.4315)."""
    assert _python_rows() == expected()


def test_weighted_rows_keep_the_weighted_mean() -> None:
    """Adjusted rows (weights) are weighted means, not exact quotients: no integer rule."""
    n = sum(len(e) + len(c) for e, c, _, _ in CASES)
    weights = np.full(n, 2.0)  # equal weights: the same means, now through the weighted path
    rows = _python_rows(weights)
    assert rows[case_day(2)] == (Decimal("1.1668"), Decimal("6.6667"))  # no tie: same values
    assert rows[case_day(0)][0] == Decimal("154.4315")  # DuckDB's cast of the DOUBLE mean


def test_revenue_per_unit_usd_hand_computed() -> None:
    assert lg.revenue_per_unit_usd(3_088_631, 2) == 154.4316
    assert lg.revenue_per_unit_usd(-3, 6) == -0.0001
    assert lg.revenue_per_unit_usd(5, 10) == 0.0001  # 0.00005: away from zero
    assert lg.revenue_per_unit_usd(4, 10) == 0.0
    assert lg.revenue_per_unit_usd(7, 0) is None
