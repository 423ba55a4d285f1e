"""The privacy floor: cells describing fewer than K users are null, keys stay, counts are exact."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest
from report_warehouse import report_warehouse

from attribution.config import Settings
from attribution.privacy import (
    Population,
    TableFloor,
    applicable_populations,
    floor_frame,
    least,
    unprotected_columns,
)
from attribution.report import write_report
from attribution.report_data import TABLE_FLOORS
from attribution.warehouse import connect

K = 50

BUYERS = TableFloor(
    keys=("day",),
    populations=(Population(pl.col("buyers"), ("buyers", "orders", "revenue_usd")),),
)


def test_populations_49_50_51_at_k_50():
    frame = pl.DataFrame(
        {"day": [1, 2, 3], "buyers": [49, 50, 51], "orders": [60, 70, 80], "revenue_usd": [1.0] * 3}
    )
    out = floor_frame(frame, BUYERS, K)
    assert out.frame["day"].to_list() == [1, 2, 3]  # keys kept
    assert out.frame["buyers"].to_list() == [None, 50, 51]  # the population cell too
    assert out.frame["orders"].to_list() == [None, 70, 80]
    assert out.frame["revenue_usd"].to_list() == [None, 1.0, 1.0]
    assert out.suppressed_cells == 3


def test_cells_already_null_are_not_counted_and_null_population_suppresses():
    frame = pl.DataFrame(
        {"day": [1, 2], "buyers": [10, None], "orders": [None, 5], "revenue_usd": [None, 2.0]}
    )
    out = floor_frame(frame, BUYERS, K)
    assert out.frame["orders"].to_list() == [None, None]
    assert out.frame["revenue_usd"].to_list() == [None, None]
    assert out.suppressed_cells == 1 + 2  # buyers=10 on day 1; orders and revenue on day 2


def test_growth_with_a_small_previous_month_is_suppressed():
    floor = TABLE_FLOORS["kpi_monthly_segments"]
    frame = pl.DataFrame(
        {
            "month": ["2026-02", "2026-03"],
            "segment": ["all", "all"],
            "mau": [400, 400],
            "queries": [900, 900],
            "mau_prev_month": [30, 300],
            "queries_prev_month": [70, 700],
            "mau_growth_mom": [400 / 30 - 1, 400 / 300 - 1],
            "query_growth_mom": [900 / 70 - 1, 900 / 700 - 1],
        }
    )
    out = floor_frame(frame, floor, K).frame
    # the current month is large, but the growth would reveal the small previous month
    assert out["mau"].to_list() == [400, 400]
    assert out["mau_growth_mom"].to_list() == [None, pytest.approx(1 / 3)]
    assert out["query_growth_mom"][0] is None and out["queries_prev_month"][0] is None
    assert out["mau_prev_month"].to_list() == [None, 300]


def test_lift_needs_k_users_in_each_group():
    floor = TABLE_FLOORS["lift_by_method"]
    frame = pl.DataFrame(
        {
            "method": ["observed", "experiment"],
            "n_engaged_users": [900, 900],
            "n_comparison_users": [800, 49],
            "cr_engaged": [0.2, 0.2],
            "cr_comparison": [0.1, 0.1],
            "lift": [1.0, 1.0],
            "lift_ci_low": [0.5, 0.5],
            "lift_ci_high": [1.5, 1.5],
        }
    )
    out = floor_frame(frame, floor, K)
    assert out.frame["lift"].to_list() == [1.0, None]
    assert out.frame["cr_engaged"].to_list() == [0.2, 0.2]  # the large arm is still shown
    assert out.frame["cr_comparison"].to_list() == [0.1, None]
    assert out.suppressed_cells == 5  # n_comparison_users, cr_comparison, lift and its interval


def test_least_is_null_when_any_population_is_unknown():
    frame = pl.DataFrame({"a": [100, None, 10], "b": [60, 60, 70]})
    assert frame.select(least("a", "b").alias("n"))["n"].to_list() == [60, None, 10]


def test_decimal_money_keeps_its_type():
    frame = pl.DataFrame(
        {"day": [1, 2], "buyers": [10, 60], "orders": [1, 2]},
    ).with_columns(pl.Series("revenue_usd", [Decimal("1.50"), Decimal("2.25")]))
    out = floor_frame(frame, BUYERS, K).frame
    assert out.schema["revenue_usd"] == frame.schema["revenue_usd"]
    assert out["revenue_usd"].to_list() == [None, Decimal("2.25")]


def test_a_column_without_a_population_is_refused():
    frame = pl.DataFrame({"day": [1], "buyers": [60], "mystery_users": [3]})
    assert unprotected_columns(frame.columns, BUYERS) == ["mystery_users"]
    with pytest.raises(ValueError, match="mystery_users"):
        floor_frame(frame, BUYERS, K)


# --- end to end: the published files ---------------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    warehouse = report_warehouse(tmp_path_factory)
    out = tmp_path_factory.mktemp("privacy") / "report"
    result = write_report(warehouse, out, Settings(report_png="never"), period="all")
    return warehouse, out, result


def _violations(frame: pl.DataFrame, floor: TableFloor, k: int) -> list[str]:
    """Return 'column@row' for every visible metric whose population is null or below k."""
    found = []
    for population in applicable_populations(frame.columns, floor):
        small = frame.select((population.users.is_null() | (population.users < k)).alias("s"))
        for metric in population.metrics:
            rows = frame.with_row_index().filter(small["s"] & pl.col(metric).is_not_null())
            found += [f"{metric}@{i}" for i in rows["index"].to_list()]
    return found


def test_no_exported_row_shows_a_metric_of_fewer_than_k_users(published):
    _, out, result = published
    checked = 0
    for name, floor in TABLE_FLOORS.items():
        parquet, csv = out / "data" / f"{name}.parquet", out / "data" / f"{name}.csv"
        if not parquet.exists():
            continue
        schema = pl.read_parquet_schema(parquet)  # an all-null CSV column has no type of its own
        for frame in (pl.read_parquet(parquet), pl.read_csv(csv, schema=schema)):
            assert _violations(frame, floor, K) == [], name
            checked += frame.height
    assert checked > 0
    assert sum(result.suppressed_cells.values()) > 0  # small groups exist in this data


def test_suppressed_cells_match_the_raw_tables(published):
    warehouse, out, result = published
    con = connect(warehouse, read_only=True)
    raw = con.sql('SELECT * FROM kpi_monthly_segments ORDER BY "month", segment').pl()
    con.close()
    exported = pl.read_parquet(out / "data" / "kpi_monthly_segments.parquet")
    assert exported.height == raw.height
    small = raw["buyers"] < K
    assert small.any() and (~small).any()
    assert exported.filter(small)["revenue_usd"].null_count() == int(small.sum())
    assert (
        exported.filter(~small)["revenue_usd"].to_list()
        == raw.filter(~small)["revenue_usd"].to_list()
    )
    manifest = json.loads((out / "manifest.json").read_text())
    counts = {name: entry["suppressed_cells"] for name, entry in manifest["tables"].items()}
    assert counts == result.suppressed_cells
    assert manifest["privacy_min_users"] == K
