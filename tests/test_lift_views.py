"""Hand-computed checks of the lift readers and the arithmetic behind "X% more likely to buy"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import duckdb
import polars as pl
import pytest

from attribution import lift_views as lv
from attribution.warehouse import connect

# observed 12% vs 8%: lift +50%, 4 points, 40 extra buyers per 1000, 25 units per extra buyer
# adjusted 12% vs 10%: lift +20%, 2 points, 20 per 1000, 50 units per extra buyer
# experiment 9% vs 10%: lift -10%, -1 point, -10 per 1000, no extra buyer
LIFTS = pl.DataFrame(
    {
        "method": ["observed", "adjusted", "experiment"],
        "cr_engaged": [0.12, 0.12, 0.09],
        "cr_comparison": [0.08, 0.10, 0.10],
        "lift": [0.5, 0.2, -0.1],
        "ci_low": [0.3, 0.05, -0.4],
        "ci_high": [0.7, 0.35, 0.3],
    }
)


def test_lift_arithmetic_hand_computed():
    got = lv.lift_arithmetic(LIFTS)
    assert got["difference_points"].to_list() == pytest.approx([4.0, 2.0, -1.0])
    assert got["extra_buyers_per_1000"].to_list() == pytest.approx([40.0, 20.0, -10.0])
    assert got["units_per_extra_buyer"].to_list()[:2] == pytest.approx([25.0, 50.0])
    assert got["units_per_extra_buyer"][2] is None
    assert got.columns[: len(LIFTS.columns)] == LIFTS.columns  # the input columns are kept


def test_lift_in_plain_words_hand_computed():
    sentences = lv.lift_in_plain_words(LIFTS, 7)
    assert len(sentences) == 4
    assert sentences[0] == (
        "observed: 12.0% vs 8.0% bought within 7 days: 50.0% more likely "
        "(95% interval +30.0% to +70.0%) (users of the assistant vs visitors who did not use it "
        "the same day). In absolute terms +4.0 percentage points: +40 buyers per 1,000 users."
    )
    assert sentences[1].startswith("adjusted: 12.0% vs 10.0% bought within 7 days: 20.0% more")
    assert "+2.0 percentage points: +20 buyers per 1,000 users." in sentences[1]
    # a negative lift reads "less likely", with the size unsigned
    assert sentences[2].startswith(
        "experiment: 9.0% vs 10.0% bought within 7 days: 10.0% less likely "
        "(95% interval -40.0% to +30.0%)"
    )
    assert "-1.0 percentage points: -10 buyers per 1,000 users." in sentences[2]
    # 1 - adjusted / observed = 1 - 0.2 / 0.5 = 60%
    assert sentences[3] == (
        "60% of the observed lift is explained by who chooses to use the assistant "
        "(people who were already more likely to buy), not by what it does."
    )


def test_plain_words_leave_out_what_is_missing():
    only_observed = LIFTS.filter(pl.col("method") == "observed").with_columns(
        pl.lit(None, dtype=pl.Float64).alias("ci_low")
    )
    sentences = lv.lift_in_plain_words(only_observed, 1)
    assert len(sentences) == 1  # no adjusted lift: no share-explained sentence
    assert "within 1 days: 50.0% more likely (users of" in sentences[0]  # no interval
    no_lift = LIFTS.with_columns(
        pl.when(pl.col("method") == "adjusted").then(None).otherwise(pl.col("lift")).alias("lift")
    )
    sentences = lv.lift_in_plain_words(no_lift, 7)
    assert [s.split(":")[0] for s in sentences] == ["observed", "experiment"]


def test_no_share_explained_for_a_zero_observed_lift():
    flat = LIFTS.with_columns(
        pl.when(pl.col("method") == "observed").then(0.0).otherwise(pl.col("lift")).alias("lift")
    )
    sentences = lv.lift_in_plain_words(flat, 7)
    assert len(sentences) == 3
    assert not any("explained by who chooses" in s for s in sentences)


def test_adjusted_above_observed_explains_a_negative_share():
    more = LIFTS.with_columns(
        pl.when(pl.col("method") == "adjusted").then(0.6).otherwise(pl.col("lift")).alias("lift")
    )
    # 1 - 0.6 / 0.5 = -20%
    assert lv.lift_in_plain_words(more, 7)[-1].startswith("-20% of the observed lift")


def test_propensity_scores_need_both_groups():
    units = pl.DataFrame(
        {"is_engaged": [True, False, False, True], "is_holdout": [False, False, False, True]}
    )
    with pytest.raises(ValueError, match="two engaged"):
        lv.propensity_scores(units)  # one engaged unit once the holdout user is left out


# --- the lift tables ----------------------------------------------------------------------------


LIFT_COLUMNS = (
    "period_start DATE, period_grain VARCHAR, segment VARCHAR, method VARCHAR, "
    "experiment_id VARCHAR, window_days INTEGER, period_end DATE, n_engaged BIGINT, "
    "n_comparison BIGINT, cr_engaged DOUBLE, cr_comparison DOUBLE, lift DOUBLE, "
    "lift_ci_low DOUBLE, lift_ci_high DOUBLE, p_value DOUBLE, p_value_bh DOUBLE"
)
ALL = date(2026, 3, 2)


def lift_row(segment, lift, p_bh, *, method="adjusted", window=7, grain="all", experiment=None):
    """A row of fct_conversion_lift; the raw p-value is a third of the BH-adjusted one."""
    p_raw = None if p_bh is None else p_bh / 3
    return (
        ALL, grain, segment, method, experiment, window, date(2026, 4, 15), 100, 400,
        0.1 * (1 + lift), 0.1, lift, lift - 0.1, lift + 0.1, p_raw, p_bh,
    )  # fmt: skip


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(":memory:")
    connection.execute(f"CREATE TABLE fct_conversion_lift ({LIFT_COLUMNS})")
    rows = [
        lift_row("all", 0.25, 0.001),
        lift_row("marketplace=US", 0.10, 0.2),
        lift_row("marketplace=DE", 0.30, 0.01),
        lift_row("marketplace=FR", 0.20, 0.05),  # exactly at the threshold: not significant
        lift_row("channel=app", 0.05, None),  # no p-value: not significant
        lift_row("event_type=a=b", 0.15, 0.049),  # a value with "=" in it
        lift_row("marketplace=DE", 0.90, 0.0001, method="observed"),
        lift_row("marketplace=DE", 0.90, 0.0001, window=1),
        lift_row("marketplace=DE", 0.90, 0.0001, grain="month"),
        lift_row("all", 0.5, 0.001, method="observed"),
        lift_row("all", 0.2, 0.03, method="experiment", experiment="x2"),
        lift_row("all", 0.1, 0.04, method="experiment", experiment="x1"),
        lift_row("all", 0.4, 0.001, method="observed", window=1),
        lift_row("all", 0.4, 0.001, method="observed", grain="month"),
    ]
    connection.executemany(f"INSERT INTO fct_conversion_lift VALUES ({', '.join('?' * 16)})", rows)
    yield connection
    connection.close()


def test_segment_lift_calls_significance_from_the_adjusted_p_value(con):
    got = lv.segment_lift(con)
    # ordered by dimension, then lift from high to low
    assert got.select("dimension", "value", "significant").rows() == [
        ("channel", "app", False),
        ("event_type", "a=b", True),
        ("marketplace", "DE", True),
        ("marketplace", "FR", False),
        ("marketplace", "US", False),
    ]
    assert got.filter(pl.col("value") == "DE")["lift"].item() == pytest.approx(0.30)
    assert {"ci_low", "ci_high", "p_value", "p_value_bh"} <= set(got.columns)


def test_segment_lift_of_another_method_window_or_period(con):
    assert lv.segment_lift(con, method="observed")["lift"].to_list() == [0.9]
    assert lv.segment_lift(con, window_days=1)["value"].to_list() == ["DE"]
    assert lv.segment_lift(con, period="month")["significant"].to_list() == [True]
    assert lv.segment_lift(con, window_days=30).is_empty()


def test_lift_by_window_lists_every_method_of_the_segment(con):
    got = lv.lift_by_window(con)
    assert got.select("window_days", "method", "experiment_id", "lift").rows() == [
        (1, "observed", None, 0.4),
        (7, "adjusted", None, 0.25),
        (7, "experiment", "x1", 0.1),
        (7, "experiment", "x2", 0.2),
        (7, "observed", None, 0.5),
    ]
    assert got["ci_low"].to_list() == pytest.approx([0.3, 0.15, 0.0, 0.1, 0.4])
    assert lv.lift_by_window(con, segment="marketplace=US")["lift"].to_list() == [0.10]
    assert lv.lift_by_window(con, period="month")["lift"].to_list() == [0.4]


@pytest.fixture
def diagnostics(con):
    con.execute(
        "CREATE TABLE fct_lift_balance (period_start DATE, period_end DATE, period_grain VARCHAR, "
        "window_days BIGINT, segment VARCHAR, method VARCHAR, covariate VARCHAR, "
        "smd_before DOUBLE, smd_after DOUBLE, balanced BOOLEAN)"
    )
    con.executemany(
        "INSERT INTO fct_lift_balance VALUES (?, NULL, ?, ?, ?, 'adjusted', ?, ?, ?, NULL)",
        [
            (ALL, "all", 7, "all", "pre_orders_28", 0.5, 0.05),
            (ALL, "all", 7, "all", "tenure_days", -0.6, -0.12),
            (ALL, "all", 7, "all", "pre_visit_days_28", 0.2, -0.0999),
            (ALL, "all", 7, "marketplace=DE", "tenure_days", 0.9, 0.9),
            (ALL, "all", 1, "all", "tenure_days", 0.9, 0.9),
            (ALL, "month", 7, "all", "tenure_days", 0.9, 0.9),
        ],
    )
    con.execute(
        "CREATE TABLE fct_lift_overlap (period_start DATE, period_end DATE, period_grain VARCHAR, "
        "window_days BIGINT, segment VARCHAR, method VARCHAR, n_engaged BIGINT, "
        "n_comparison BIGINT, share_trimmed DOUBLE, ess_comparison DOUBLE)"
    )
    con.executemany(
        "INSERT INTO fct_lift_overlap VALUES (?, NULL, ?, ?, ?, 'adjusted', 10, 40, ?, 30.5)",
        [
            (date(2026, 4, 1), "month", 7, "all", 0.02),
            (date(2026, 3, 1), "month", 7, "all", 0.01),
            (ALL, "all", 7, "all", 0.0),
            (ALL, "all", 7, "channel=app", 0.5),
            (ALL, "all", 1, "all", 0.5),
        ],
    )
    return con


def test_balance_of_one_window_and_period(diagnostics):
    got = lv.balance(diagnostics)
    # largest imbalance before weighting first; |SMD after| < 0.1 is balanced
    assert got.select("covariate", "smd_before", "smd_after", "balanced").rows() == [
        ("tenure_days", -0.6, -0.12, False),
        ("pre_orders_28", 0.5, 0.05, True),
        ("pre_visit_days_28", 0.2, -0.0999, True),
    ]
    assert lv.balance(diagnostics, window_days=1)["smd_before"].to_list() == [0.9]
    assert lv.balance(diagnostics, period="month")["smd_before"].to_list() == [0.9]


def test_overlap_of_one_window_and_period(diagnostics):
    got = lv.overlap(diagnostics)
    assert got.columns == [
        "period_start",
        "period_end",
        "n_engaged",
        "n_comparison",
        "share_trimmed",
        "ess_comparison",
    ]
    assert got["share_trimmed"].to_list() == [0.0]
    monthly = lv.overlap(diagnostics, period="month")
    assert monthly["period_start"].to_list() == [date(2026, 3, 1), date(2026, 4, 1)]
    assert lv.overlap(diagnostics, window_days=1)["share_trimmed"].to_list() == [0.5]


@pytest.mark.parametrize(
    ("reader", "table"),
    [
        (lv.lift_by_window, "fct_conversion_lift"),
        (lv.segment_lift, "fct_conversion_lift"),
        (lv.balance, "fct_lift_balance"),
        (lv.overlap, "fct_lift_overlap"),
    ],
)
def test_a_missing_table_says_to_run_the_pipeline(reader, table):
    with pytest.raises(LookupError, match=rf"no {table}: run `attribution run`"):
        reader(duckdb.connect())
