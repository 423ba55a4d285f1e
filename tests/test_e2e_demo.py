"""End to end: `attribution demo` on a small generated set, then a rerun that changes nothing."""

from __future__ import annotations

import json
import re

import pytest
from digests import table_digest
from typer.testing import CliRunner

from attribution.charts import CHARTS
from attribution.cli import app
from attribution.stats import ratio_lift_interval
from attribution.warehouse import connect

pytestmark = pytest.mark.e2e

TABLES = (
    "assistant_sessions",
    "fct_attribution",
    "fct_attribution_by_touch_type",
    "fct_conversion_lift",
    "kpi_daily",
    "kpi_daily_segments",
    "kpi_monthly_segments",
    "quarantine",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--users",
            "1500",
            "--days",
            "30",
            "--seed",
            "7",
            "--landing",
            f"{cwd}/demo-landing",
            "--warehouse",
            f"{cwd}/warehouse.duckdb",
            "--out",
            f"{cwd}/report",
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output, cwd


def test_demo_builds_warehouse_and_report(demo):
    output, cwd = demo
    assert "Warehouse:" in output and "Report:" in output
    con = connect(f"{cwd}/warehouse.duckdb", read_only=True)
    try:
        for table in TABLES[:-1]:
            assert table_digest(con, table)[0] > 0, table
    finally:
        con.close()
    page = (cwd / "report" / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'data-chart="([a-z_]+)"', page) == list(CHARTS)
    assert "Adjusted for who chooses to use the assistant" in page
    assert "Randomised holdout experiment exp_assistant_holdout" in page
    # every attribution model is shown: the five rules and the data-driven model
    for model in ("first_touch", "last_touch", "linear", "time_decay", "position_based"):
        assert model in page
    assert "data_driven (Markov)" in page
    manifest = json.loads((cwd / "report" / "manifest.json").read_text())
    kpi = ("kpi_daily", "kpi_monthly", "kpi_daily_segments", "kpi_monthly_segments")
    for table in kpi:
        assert manifest["tables"][table]["csv"] and manifest["tables"][table]["parquet"], table


def test_nothing_is_lost_against_the_planted_truth(demo):
    _, cwd = demo
    truth = json.loads((cwd / "demo-landing" / "truth.json").read_text())
    con = connect(f"{cwd}/warehouse.duckdb", read_only=True)
    read, loaded, dupes, quarantined = con.execute(
        "SELECT rows_read, rows_loaded, duplicates, quarantined FROM _runs"
    ).fetchall()[0]
    injected = truth["injected"].values()
    assert read == loaded + dupes + quarantined
    assert read == sum(s["rows_written"] for s in injected)
    assert quarantined == sum(s["malformed_total"] for s in injected)
    assert dupes == sum(s["duplicates"] for s in injected)
    assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == quarantined
    con.close()


def test_observed_lift_shows_self_selection_beyond_the_true_effect(demo):
    _, cwd = demo
    truth = json.loads((cwd / "demo-landing" / "truth.json").read_text())
    con = connect(f"{cwd}/warehouse.duckdb", read_only=True)
    x_e, n_e, x_c, n_c = con.execute(
        "SELECT sum(conversions_engaged), sum(n_engaged), sum(conversions_comparison), "
        "sum(n_comparison) FROM fct_conversion_lift WHERE segment = 'all' AND window_days = 7 "
        "AND method = 'observed' AND period_grain = 'day'"
    ).fetchall()[0]
    con.close()
    observed = ratio_lift_interval(int(x_e), int(n_e), int(x_c), int(n_c))
    # the product's observed lift is far above the true causal effect, as planted ...
    assert observed.lift > 2 * truth["att_conversion_lift"]["7"]
    # ... and agrees with the generator's own naive comparison
    assert observed.ci_low < truth["observed_conversion_lift"]["7"] < observed.ci_high


def test_rerun_changes_nothing(demo):
    _, cwd = demo
    con = connect(f"{cwd}/warehouse.duckdb", read_only=True)
    before = {t: table_digest(con, t) for t in TABLES}
    con.close()
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--landing",
            f"{cwd}/demo-landing",
            "--warehouse",
            f"{cwd}/warehouse.duckdb",
            "--out",
            f"{cwd}/report",
            "--quiet",
            "--no-expectations",
        ],
    )
    assert result.exit_code == 0, result.output
    con = connect(f"{cwd}/warehouse.duckdb", read_only=True)
    assert {t: table_digest(con, t) for t in TABLES} == before
    runs = con.execute("SELECT outcome, rows_loaded FROM _runs ORDER BY started_at").fetchall()
    con.close()
    assert [r[0] for r in runs] == ["succeeded", "succeeded"]
    assert runs[1][1] == 0  # every file was already loaded
