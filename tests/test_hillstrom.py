"""The Hillstrom e-mail experiment through the normal landing path: the product's experiment lift
must equal the values computed directly from the file, with a standard two-proportion analysis."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from attribution.config import Settings
from attribution.hillstrom import convert_hillstrom
from attribution.lift import pooled_lift_by_method
from attribution.pipeline import run_pipeline
from attribution.warehouse import connect

CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hillstrom" / "hillstrom.csv"
ARMS = {"hillstrom_mens": "Mens E-Mail", "hillstrom_womens": "Womens E-Mail"}
Z = sps.norm.ppf(0.975)

pytestmark = pytest.mark.skipif(
    not CSV.is_file(), reason=f"Hillstrom data not found at {CSV} (see shared/data/README.md)"
)


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hillstrom")
    written = convert_hillstrom(CSV, tmp / "landing")
    settings = Settings(windows_days=(7, 14))
    run_pipeline(
        settings, landing_dir=tmp / "landing", warehouse_path=tmp / "wh.duckdb", expectations=False
    )
    con = connect(tmp / "wh.duckdb", read_only=True)
    frames = {w: pooled_lift_by_method(con, w) for w in (7, 14)}
    extra = con.sql(
        "SELECT experiment_id, window_days, srm_p_value, incremental_revenue_usd, "
        "incremental_revenue_ci_low, incremental_revenue_ci_high, revenue_lift, p_value, "
        "n_engaged FROM fct_conversion_lift WHERE method = 'experiment' AND period_grain = 'all' "
        "AND segment = 'all'"
    ).pl()
    con.close()
    return written, frames, extra


@pytest.fixture(scope="module")
def file():
    return pd.read_csv(CSV)


def test_converter_row_counts(product, file):
    written, _, _ = product
    holdout = int((file["segment"] == "No E-Mail").sum())
    assert written["assignments"] == len(file) + holdout
    assert written["orders"] == int(file["conversion"].sum())
    assert written["visits"] == int(file["visit"].sum())


@pytest.mark.parametrize("window", [7, 14])
@pytest.mark.parametrize("experiment", sorted(ARMS))
def test_experiment_lift_equals_the_file(product, file, experiment, window):
    _, frames, _ = product
    frame = frames[window]
    row = frame.filter(
        (frame["method"] == "experiment") & (frame["experiment_id"] == experiment)
    ).row(0, named=True)
    treated = file[file["segment"] == ARMS[experiment]]
    holdout = file[file["segment"] == "No E-Mail"]
    x1, n1 = int(treated["conversion"].sum()), len(treated)
    x0, n0 = int(holdout["conversion"].sum()), len(holdout)
    assert (row["n_engaged"], row["n_comparison"]) == (n1, n0)
    assert row["cr_engaged"] == pytest.approx(x1 / n1, rel=1e-12)
    assert row["cr_comparison"] == pytest.approx(x0 / n0, rel=1e-12)
    assert row["lift"] == pytest.approx((x1 / n1) / (x0 / n0) - 1, rel=1e-12)
    # revenue per user is stored as DECIMAL(18, 4)
    assert row["revenue_per_user_engaged_usd"] == pytest.approx(treated["spend"].mean(), abs=5e-5)
    assert row["revenue_per_user_comparison_usd"] == pytest.approx(
        holdout["spend"].mean(), abs=5e-5
    )
    # standard two-proportion analysis: Katz log interval of the risk ratio ...
    p1, p0 = x1 / n1, x0 / n0
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0)
    rr = p1 / p0
    assert row["ci_low"] == pytest.approx(rr * math.exp(-Z * se) - 1, rel=1e-9)
    assert row["ci_high"] == pytest.approx(rr * math.exp(Z * se) - 1, rel=1e-9)
    # ... which agrees with the pooled two-proportion z-test and the Wald interval on the
    # difference: both say the e-mail raised conversion
    pooled = (x1 + x0) / (n1 + n0)
    z = (p1 - p0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    wald = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    assert 2 * sps.norm.sf(abs(z)) < 0.001
    assert (p1 - p0 - Z * wald > 0) == (row["ci_low"] > 0) is True


@pytest.mark.parametrize("experiment", sorted(ARMS))
def test_revenue_interval_and_srm_agree_with_standard_tests(product, file, experiment):
    _, _, extra = product
    row = extra.filter((extra["experiment_id"] == experiment) & (extra["window_days"] == 14)).row(
        0, named=True
    )
    treated = file.loc[file["segment"] == ARMS[experiment], "spend"].to_numpy()
    holdout = file.loc[file["segment"] == "No E-Mail", "spend"].to_numpy()
    diff = treated.mean() - holdout.mean()
    assert row["incremental_revenue_usd"] == pytest.approx(len(treated) * diff, rel=1e-9)
    assert row["revenue_lift"] == pytest.approx(treated.mean() / holdout.mean() - 1, rel=1e-9)
    # the interval's standard error is Welch's (up to ddof): compare with scipy's t-test
    se = (row["incremental_revenue_ci_high"] - row["incremental_revenue_ci_low"]) / (
        2 * Z * len(treated)
    )
    welch = sps.ttest_ind(treated, holdout, equal_var=False)
    welch_se = diff / welch.statistic
    assert se == pytest.approx(welch_se, rel=1e-3)
    # sample-ratio check against the design (each e-mail arm and No E-Mail are one third each)
    counts = [len(treated), len(holdout)]
    expected = [sum(counts) / 2] * 2
    assert row["srm_p_value"] == pytest.approx(sps.chisquare(counts, expected).pvalue, rel=1e-9)
    assert row["srm_p_value"] > 0.001
    assert np.isfinite(row["p_value"])
