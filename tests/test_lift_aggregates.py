"""lift_aggregates: the lift's rows from GROUP BY aggregates equal lift.py's rows from units.

lift.py (numpy over one row per visitor-day) is the reference: its estimators are checked by
hand-computed warehouses and the generator's truth (test_lift.py, test_lift_truth.py). Here the
same rows are computed from the sums an SQL engine returns and must equal them within 1e-9.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution import lift, lift_stats
from attribution import lift_aggregates as la
from attribution import lift_groups as lg
from attribution.portability import lint_sql

TOLERANCE = 1e-9


def assert_rows_equal(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> None:
    """Same rows in the same order; floats within 1e-9 (relative, or absolute near 0)."""
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert list(a) == list(b), f"row {i}: columns differ"
        for column, x in a.items():
            y = b[column]
            if isinstance(x, float) and isinstance(y, float):
                same = math.isclose(x, y, rel_tol=TOLERANCE, abs_tol=1e-12) or (
                    math.isnan(x) and math.isnan(y)
                )
            else:
                same = x == y and type(x) is type(y)
            assert same, f"row {i} {column}: {x!r} != {y!r}\n{a}"


def test_smd_of_a_column_constant_up_to_rounding() -> None:
    assert lift_stats.smd_of(1.0, 0.0, 2.0, 2.0) == pytest.approx(1 / math.sqrt(2))
    assert lift_stats.smd_of(1.0, 0.0, 4.0, 0.0) == pytest.approx(1 / math.sqrt(2))
    assert lift_stats.smd_of(0.25, 0.25, 0.0, 0.0) == 0.0
    assert lift_stats.smd_of(-0.36514837167011077, -0.3651483716701107, 1e-33, 0.0) == 0.0
    assert lift_stats.smd_of(0.5, -0.5, 0.0, 1e-30) is None  # separated: undefined, not huge


# --- generated data: the report warehouse ----------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, date, date]]:
    from report_warehouse import report_warehouse

    from attribution.build_window import data_date_range

    con = duckdb.connect(str(report_warehouse(tmp_path_factory)), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    start, end = data_date_range(con)
    engine = la.DuckDBEngine(con)
    la.create_unit_relations(engine, start, end, WINDOWS)
    yield con, start, end
    la.drop_unit_relations(engine)
    con.close()


WINDOWS = (1, 7)


def test_observed_and_adjusted_rows_equal_lift_py(generated) -> None:
    """Every observed and adjusted row, balance row and overlap row of 430 days x 300 users at
    every grain and two windows: the aggregated path equals lift.visitor_day_rows."""
    con, start, end = generated
    units = lift.load_visitor_days(con, start, end, WINDOWS)
    expected = lift.visitor_day_rows(units, WINDOWS, start, end)
    got = la.visitor_day_rows(la.DuckDBEngine(con), WINDOWS, start, end)
    assert {r["method"] for r in expected[0]} == {"observed", "adjusted"}
    assert {r["segment"].split("=")[0] for r in expected[0]} == {
        "all", "marketplace", "channel", "model_version", "event_type", "buyer"
    }  # fmt: skip
    for expected_rows, got_rows in zip(expected, got, strict=True):
        assert expected_rows
        assert_rows_equal(expected_rows, got_rows)


def test_experiment_rows_equal_lift_py(generated) -> None:
    con, start, end = generated
    shares = lift.expected_holdout_shares(con)
    expected = []
    for w, exp in lift.experiment_units_by_window(con, start, end, WINDOWS):
        expected += lift.experiment_rows(exp, (w,), start, end, shares)
    got = la.experiment_rows(la.DuckDBEngine(con), WINDOWS, start, end, shares)
    assert expected and any(r["srm_p_value"] is not None for r in expected)
    assert_rows_equal(expected, got)


def test_every_query_passes_the_portability_lint() -> None:
    """The aggregate queries run on Spark through to_spark_sql, which refuses lint findings."""
    design = la.Design(("DE", "unknown"), ("app", "web"))
    keys = ("method", *la.FIT_KEYS)
    texts = {
        "visitor_days": la.VISITOR_DAYS_SQL,
        "experiments": la.EXPERIMENTS_SQL,
        "moments": la._moments_sql(design),
        "fit_units": la._fit_units_sql(design),
        "pending": la._pending_units_sql(la.FIT_UNITS[0], 8),
        "newton": la._newton_sql(la.FIT_UNITS[0], [0, 1, 5]),
        "diagnostics": la._diagnostics_sql(design),
        "comparison": la._comparison_sql(la._weighted_units_sql(design), keys, la.DIMENSIONS),
        "experiment": la._comparison_sql(
            la._experiment_units_sql(), ("experiment_id", *la.FIT_KEYS), la.EXPERIMENT_DIMENSIONS
        ),
        "cuped": la._cuped_sql(
            la._experiment_units_sql(), ("experiment_id", *la.FIT_KEYS), la.EXPERIMENT_DIMENSIONS
        ),
    }
    for name, sql in texts.items():
        assert lint_sql(sql, name) == [], name


# --- random small unit tables: both paths from the same units ----------------------------------

START = date(2026, 3, 1)
PROPERTY_WINDOWS = (1, 3)


@st.composite
def unit_tables(draw: st.DrawFn) -> pl.DataFrame:
    """Return random visitor-days: a few users, a few days, every column lift.py's units have
    plus converted_<w> / revenue_<w> per window."""
    n_users = draw(st.integers(2, 7))
    rows = []
    for u in range(n_users):
        holdout = draw(st.booleans()) and draw(st.booleans())
        days = draw(st.sets(st.integers(0, 9), min_size=1, max_size=5))
        for d in sorted(days):
            engaged = not holdout and draw(st.booleans())
            row = {
                "user_id": f"u{u:02d}",
                "activity_date": START + timedelta(days=d),
                "is_engaged": engaged,
                "is_holdout": holdout,
                "is_returning_buyer": draw(st.booleans()),
                "marketplace": draw(st.sampled_from(["DE", "US", "US", None])),
                "channel": draw(st.sampled_from(["web", "app"])),
                "model_version": draw(st.sampled_from(["v1", "v2", None])) if engaged else None,
                "event_type": draw(st.sampled_from(["query", "comparison"])) if engaged else None,
                "pre_orders_28": float(draw(st.integers(0, 3))),
                "pre_revenue_28": draw(st.sampled_from([0.0, 12.5, 80.25])),
                "pre_visit_days_28": float(draw(st.integers(0, 6))),
                "tenure_days": float(draw(st.integers(0, 40))),
            }
            for w in PROPERTY_WINDOWS:
                converted = draw(st.booleans())
                row[f"converted_{w}"] = converted
                row[f"revenue_{w}"] = draw(st.sampled_from([10.0, 33.3])) if converted else 0.0
            rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def visitor_days_of(frame: pl.DataFrame) -> lift.VisitorDays:
    """Return the units as lift.load_visitor_days builds them."""
    frame = frame.sort("user_id", "activity_date")
    user = frame["user_id"].rank("dense").cast(pl.Int32).to_numpy() - 1
    dims = [
        lg.Dimension(d, *lift.level_codes(frame[d]), of_treated=d in lift.TREATMENT_ATTRIBUTES)
        for d in ("marketplace", "channel", *lift.TREATMENT_ATTRIBUTES)
    ]
    dims.append(lift._buyer_dimension(frame["is_returning_buyer"].to_numpy()))
    return lift.VisitorDays(
        user=user,
        ordinal=frame["activity_date"].to_numpy().astype("datetime64[D]").astype(np.int32),
        engaged=frame["is_engaged"].to_numpy(),
        holdout=frame["is_holdout"].to_numpy(),
        covariates=lift._log_covariates([frame[c].to_numpy() for c in lift.COVARIATES]),
        design_dims=[
            (d, *lift.level_codes(frame[d], "unknown")) for d in ("marketplace", "channel")
        ],
        dims=dims,
        outcomes={
            w: (frame[f"converted_{w}"].to_numpy(), frame[f"revenue_{w}"].to_numpy())
            for w in PROPERTY_WINDOWS
        },
    )


def unit_relation_of(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the units as lift_aggregates.UNITS holds them (one row per unit and window)."""
    base = frame.with_columns(
        pl.col(c).clip(lower_bound=0).log1p().alias(f"x_{c}") for c in lift.COVARIATES
    )
    return pl.concat(
        base.with_columns(
            pl.lit(w, dtype=pl.Int32).alias("window_days"),
            pl.col(f"converted_{w}").cast(pl.Float64).alias("converted"),
            pl.col(f"revenue_{w}").alias("revenue"),
        ).select(
            *("user_id", "activity_date", "is_engaged", "is_holdout", "is_returning_buyer"),
            *("marketplace", "channel", *lift.TREATMENT_ATTRIBUTES),
            *(f"x_{c}" for c in lift.COVARIATES),
            *("window_days", "converted", "revenue"),
        )
        for w in PROPERTY_WINDOWS
    )


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit_tables())
def test_random_units_give_the_rows_of_lift_py(frame: pl.DataFrame) -> None:
    end = START + timedelta(days=11)
    expected = lift.visitor_day_rows(visitor_days_of(frame), PROPERTY_WINDOWS, START, end)
    engine = la.DuckDBEngine(duckdb.connect())
    engine.register(la.UNITS, unit_relation_of(frame))
    got = la.visitor_day_rows(engine, PROPERTY_WINDOWS, START, end)
    for expected_rows, got_rows in zip(expected, got, strict=True):
        assert_rows_equal(expected_rows, got_rows)


@st.composite
def experiment_tables(draw: st.DrawFn) -> pl.DataFrame:
    """Return random assigned users of one or two experiments, one row per (user, experiment,
    window), with pre-period conversions (CUPED's x) and both arms."""
    rows = []
    for experiment_id in draw(st.sets(st.sampled_from(["exp_a", "exp_b"]), min_size=1)):
        for u in range(draw(st.integers(2, 12))):
            unit = {
                "user_id": f"u{u:02d}",
                "experiment_id": experiment_id,
                "is_treatment": draw(st.booleans()),
                "assigned_date": START + timedelta(days=draw(st.integers(0, 9))),
                "pre": float(draw(st.booleans())),
                "is_returning_buyer": draw(st.booleans()),
                "marketplace": draw(st.sampled_from(["DE", "US", None])),
                "channel": draw(st.sampled_from(["web", "app"])),
            }
            for w in PROPERTY_WINDOWS:
                converted = draw(st.booleans())
                revenue = draw(st.sampled_from([10.0, 33.3])) if converted else 0.0
                rows.append(
                    {**unit, "window_days": w, "converted": float(converted), "revenue": revenue}
                )
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("window_days").cast(pl.Int32)
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(experiment_tables())
def test_random_experiments_give_the_rows_of_lift_py(frame: pl.DataFrame) -> None:
    end = START + timedelta(days=11)
    shares = {"exp_a": 0.5}
    units = frame.sort("experiment_id", "user_id").with_columns(
        (pl.col("user_id").rank("dense") - 1).alias("user_code"),
        pl.col("pre").alias("pre_converted_28"),
    )
    expected = []
    for w in PROPERTY_WINDOWS:
        part = units.filter(pl.col("window_days") == w)
        expected += lift.experiment_rows(part, (w,), START, end, shares)
    engine = la.DuckDBEngine(duckdb.connect())
    engine.register(la.EXPERIMENT_UNITS, frame)
    assert_rows_equal(expected, la.experiment_rows(engine, PROPERTY_WINDOWS, START, end, shares))
