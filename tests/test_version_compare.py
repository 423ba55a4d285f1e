"""Model-version comparison: the note's wording, the daily mix, and the generated warehouse.

The generator plants no difference between shopbot-v1 and shopbot-v2, so the same-day
comparison must not find one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from notebook_warehouse import notebook_warehouse

from attribution.generate import MODEL_VERSIONS
from attribution.lift import PRE_DAYS
from attribution.version_compare import (
    CONTRAST_METRICS,
    NOT_ENGAGED,
    compare_model_versions,
    comparison_note,
    daily_version_mix,
    data_range,
    propensity_weights,
    version_units,
)
from attribution.warehouse import connect

V1, V2 = MODEL_VERSIONS

# --- pure parts --------------------------------------------------------------------------------


def contrasts(conversion: dict | None = None, lift: dict | None = None) -> pl.DataFrame:
    rows = []
    for metric, values in (("conversion", conversion), ("lift", lift)):
        if values is not None:
            rows.append(
                {
                    "metric": metric,
                    "relative_change": None,
                    "ci_low": None,
                    "ci_high": None,
                    "n_strata_informative": 0,
                    "n_units_informative": 0,
                    "method": "test",
                    **values,
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


def test_note_when_the_versions_never_met():
    note = comparison_note(contrasts({"n_strata_informative": 0}), "v1", "v2", 7)
    assert "v1 and v2 never answered on the same day in the same marketplace" in note
    assert "only the change in lift below can be read" in note
    assert note.endswith("can look better or worse without being so.")


def test_note_for_a_difference_that_excludes_zero():
    conversion = {
        "relative_change": 0.10,
        "ci_low": 0.05,
        "ci_high": 0.15,
        "n_strata_informative": 12,
    }
    note = comparison_note(contrasts(conversion), "v1", "v2", 7)
    assert note.startswith(
        "On the 12 marketplace-days when both answered, v2 users' 7-day conversion differed "
        "from v1 users' by +10.0% (95% interval +5.0% to +15.0%): a real difference."
    )


def test_note_for_a_fall_that_excludes_zero_is_also_real():
    conversion = {"relative_change": -0.2, "ci_low": -0.3, "ci_high": -0.1}
    note = comparison_note(contrasts({**conversion, "n_strata_informative": 3}), "a", "b", 1)
    assert "by -20.0% (95% interval -30.0% to -10.0%): a real difference." in note


def test_note_for_a_difference_that_includes_zero():
    conversion = {"relative_change": 0.02, "ci_low": -0.04, "ci_high": 0.08}
    note = comparison_note(contrasts({**conversion, "n_strata_informative": 5}), "v1", "v2", 14)
    assert "v2 users' 14-day conversion" in note
    assert (
        "+2.0% (95% interval -4.0% to +8.0%): no difference that the data can tell apart." in note
    )
    assert "a real difference" not in note


def test_note_without_an_interval():
    note = comparison_note(
        contrasts({"relative_change": 0.3, "n_strata_informative": 2}), "v1", "v2", 7
    )
    assert "too few same-day units for an interval on conversion" in note


def test_note_reads_the_change_in_lift():
    conversion = {"relative_change": 0.0, "ci_low": -0.1, "ci_high": 0.1, "n_strata_informative": 4}
    real = {"relative_change": 0.5, "ci_low": 0.2, "ci_high": 0.9}
    unclear = {"relative_change": 0.5, "ci_low": -0.2, "ci_high": 0.9}
    note = comparison_note(contrasts(conversion, real), "v1", "v2", 7)
    assert "(1 + lift) changed by +50.0% (95% interval +20.0% to +90.0%) (a real change)." in note
    note = comparison_note(contrasts(conversion, unclear), "v1", "v2", 7)
    assert "(not distinguishable from no change)." in note
    # a lift without an interval is left out
    assert "(1 + lift)" not in comparison_note(contrasts(conversion, {}), "v1", "v2", 7)


def test_daily_version_mix_hand_computed():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE assistant_sessions AS SELECT * FROM (VALUES "
        "(DATE '2026-03-01', 'v1', 'u1'), (DATE '2026-03-01', 'v1', 'u1'), "
        "(DATE '2026-03-01', 'v2', 'u2'), (DATE '2026-03-01', NULL, 'u3'), "
        "(DATE '2026-03-02', 'v2', 'u1')) t(session_date, model_version, user_id)"
    )
    got = daily_version_mix(con).select(
        "date", "model_version", "sessions", "users", "share_of_sessions"
    )
    assert got.rows() == [
        (date(2026, 3, 1), "(unknown)", 1, 1, 0.25),
        (date(2026, 3, 1), "v1", 2, 1, 0.5),
        (date(2026, 3, 1), "v2", 1, 1, 0.25),
        (date(2026, 3, 2), "v2", 1, 1, 1.0),
    ]


def test_an_unbuilt_warehouse_is_refused():
    con = duckdb.connect()
    with pytest.raises(LookupError, match="attribution run"):
        daily_version_mix(con)
    with pytest.raises(LookupError, match="attribution run"):
        version_units(con)
    con.execute("CREATE TABLE stg_visits (visit_date DATE)")
    con.execute("CREATE TABLE assistant_sessions (session_date DATE)")
    with pytest.raises(LookupError, match="no visits or sessions"):
        data_range(con)


def test_an_unknown_credit_model_is_refused():
    with pytest.raises(ValueError, match="credit_model"):
        version_units(duckdb.connect(), credit_model="markov")


# --- the generated warehouse -------------------------------------------------------------------


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return notebook_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(warehouse, read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def comparison(con):
    return compare_model_versions(con, 7)


@pytest.fixture(scope="module")
def rollout(warehouse: Path) -> dict:
    return json.loads((warehouse.parent / "landing" / "truth.json").read_text())["model_versions"]


def test_defaults_compare_the_first_version_with_the_last(comparison):
    assert (comparison.baseline, comparison.candidate) == (V1, V2)
    assert comparison.window_days == 7


def test_no_planted_difference_means_no_same_day_difference(comparison):
    row = comparison.contrasts.row(by_predicate=pl.col("metric") == "conversion", named=True)
    assert row["n_strata_informative"] > 0
    assert row["n_units_informative"] > 0
    assert row["ci_low"] < 0 < row["ci_high"]
    assert row["ci_low"] <= row["relative_change"] <= row["ci_high"]
    assert "no difference that the data can tell apart" in comparison.note


def test_one_contrast_per_metric(comparison):
    assert comparison.contrasts["metric"].to_list() == list(CONTRAST_METRICS)
    same_day = comparison.contrasts.filter(pl.col("metric") != "lift")
    # the three same-day contrasts compare the same units
    assert same_day["n_strata_informative"].n_unique() == 1
    assert same_day["n_units_informative"].n_unique() == 1


def test_every_version_row_has_units(comparison):
    by_version = comparison.by_version
    assert by_version["model_version"].to_list() == [V1, V2, NOT_ENGAGED]
    assert (by_version["units"] > 0).all()
    assert (by_version["users"] <= by_version["units"]).all()
    rates = by_version.select(
        "conversion_rate_ci_low", "conversion_rate", "conversion_rate_ci_high"
    )
    for low, rate, high in rates.rows():
        assert 0 <= low <= rate <= high <= 1


def test_version_rows_follow_the_rollout(comparison, rollout):
    rows = {r["model_version"]: r for r in comparison.by_version.iter_rows(named=True)}
    ramp_start = date.fromisoformat(rollout["rollout_start"][:10])
    ramp_end = date.fromisoformat(rollout["rollout_end"][:10])
    assert rows[V2]["first_date"] >= ramp_start
    assert rows[V1]["last_date"] <= ramp_end
    assert comparison.start_date <= rows[V1]["first_date"]
    assert rows[V2]["last_date"] <= comparison.end_date


def test_daily_mix_follows_the_rollout(con, rollout):
    mix = daily_version_mix(con)
    ramp_start = date.fromisoformat(rollout["rollout_start"][:10])
    ramp_end = date.fromisoformat(rollout["rollout_end"][:10])
    shares = mix.group_by("date").agg(pl.col("share_of_sessions").sum())
    np.testing.assert_allclose(shares["share_of_sessions"].to_numpy(), 1.0)
    assert set(mix.filter(pl.col("date") < ramp_start)["model_version"]) == {V1}
    assert set(mix.filter(pl.col("date") > ramp_end)["model_version"]) == {V2}
    assert set(mix["model_version"]) == {V1, V2}


def test_an_unknown_version_is_refused(con):
    with pytest.raises(LookupError, match="shopbot-v9"):
        compare_model_versions(con, 7, baseline="shopbot-v9")
    with pytest.raises(LookupError, match="shopbot-v9"):
        compare_model_versions(con, 7, candidate="shopbot-v9")


def test_a_version_is_not_compared_with_itself(con):
    with pytest.raises(ValueError, match="same version"):
        compare_model_versions(con, 7, baseline=V1, candidate=V1)


def test_swapping_the_versions_inverts_the_same_day_ratio(con, comparison):
    swapped = compare_model_versions(con, 7, baseline=V2, candidate=V1)
    forward = comparison.contrasts.row(0, named=True)
    backward = swapped.contrasts.row(0, named=True)
    # MH ratio: swapping the groups swaps numerator and denominator
    assert 1 + backward["relative_change"] == pytest.approx(1 / (1 + forward["relative_change"]))
    assert backward["n_strata_informative"] == forward["n_strata_informative"]


@pytest.mark.parametrize("window", [1, 7, 14, 30])
def test_units_of_a_window_lie_inside_the_data(con, window):
    units = version_units(con, window)
    _, last = data_range(con)
    assert units.height > 0
    assert (units["activity_date"] + timedelta(days=window) <= last).all()
    assert units.select("user_id", "activity_date").is_unique().all()
    engaged = units["is_engaged"]
    assert (units.filter(~engaged)["model_version"] == NOT_ENGAGED).all()
    # 30-day units end before the rollout: only the first version
    assert set(units.filter(engaged)["model_version"]) == ({V1} if window == 30 else {V1, V2})
    assert (units.filter(~engaged)["attributed_revenue_usd"] == 0).all()


def test_longer_windows_keep_fewer_units(con):
    heights = [version_units(con, w).height for w in (1, 7, 14, 30)]
    assert heights == sorted(heights, reverse=True)


def test_a_window_the_warehouse_lacks_is_refused(con):
    with pytest.raises(ValueError, match="window_days=3"):
        version_units(con, 3)


def test_propensity_weights_leave_out_holdout_users_and_the_first_days(con):
    units = version_units(con, 7)
    weights = propensity_weights(units)
    assert len(weights) == units.height
    early = units["activity_date"] < units["activity_date"].min() + timedelta(days=PRE_DAYS)
    holdout = units["is_holdout"].to_numpy()
    assert (weights[holdout | early.to_numpy()] == 0).all()
    assert (weights >= 0).all()
    engaged = units["is_engaged"].to_numpy()
    assert set(np.unique(weights[engaged])) <= {0.0, 1.0}
    assert (weights[~engaged] > 0).any()


def test_a_warehouse_with_one_version_has_nothing_to_compare(warehouse, tmp_path):
    copy = tmp_path / "one-version.duckdb"
    shutil.copy(warehouse, copy)
    with connect(copy) as writable:
        writable.execute("UPDATE assistant_sessions SET model_version = $v", {"v": V1})
        engaged = version_units(writable, 7).filter(pl.col("is_engaged"))
        assert set(engaged["model_version"]) == {V1}
        with pytest.raises(LookupError, match="only 1 model version"):
            compare_model_versions(writable, 7)


def test_note_when_the_lift_change_cannot_be_estimated():
    conversion = {"relative_change": 0.0, "ci_low": -0.1, "ci_high": 0.1, "n_strata_informative": 3}
    note = comparison_note(contrasts(conversion, {"relative_change": None}), "v1", "v2", 7)
    assert "The change in lift cannot be estimated" in note
    assert f"first {PRE_DAYS} days of data" in note


def test_lift_contrast_counts_nothing_when_one_version_has_no_adjusted_units(tmp_path_factory):
    """On the 45-day warehouse every shopbot-v1 day lies in the first 28 days: no v1 lift."""
    with connect(notebook_warehouse(tmp_path_factory), read_only=True) as con:
        result = compare_model_versions(con, 7, replicates=50)
    lift = result.contrasts.filter(pl.col("metric") == "lift").row(0, named=True)
    assert lift["relative_change"] is None
    assert lift["n_strata_informative"] == 0 and lift["n_units_informative"] == 0
    assert "cannot be estimated" in result.note
