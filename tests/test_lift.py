"""fct_conversion_lift from attribution.lift on tiny hand-computed warehouses, and the CLI."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tables import build, empty_warehouse, insert, rows
from tables import order_row as order
from tables import visit_row as visit
from typer.testing import CliRunner

from attribution.cli import app
from attribution.config import Settings
from attribution.lift import (
    balance_verdict,
    downstream_impact,
    period_bounds,
    pooled_lift_by_method,
    write_lift_tables,
)
from attribution.stats import ratio_lift_interval

SETTINGS = Settings(windows_days=(7,))
START, END = date(2026, 3, 1), date(2026, 3, 31)


def at(day, hour, minute=0, month=3, year=2026):
    return datetime(year, month, day, hour, minute)


def event(event_id, user, ts, marketplace="US", event_type="query"):
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "marketplace": marketplace,
        "channel": "web",
        "event_type": event_type,
        "model_version": "v1",
    }


def fx(con):
    insert(con, "fx_rates", [{"date": date(2026, 1, 1), "currency": "USD", "rate_to_usd": 1}])


def lift_rows(con, method, segment="all", grain="all"):
    return rows(
        con,
        "SELECT n_engaged, n_comparison, conversions_engaged, conversions_comparison, cr_engaged, "
        "cr_comparison, lift, lift_ci_low, lift_ci_high, srm_p_value, cuped_theta, p_value, "
        "p_value_bh, incremental_conversions FROM fct_conversion_lift WHERE method = "
        f"'{method}' AND segment = '{segment}' AND period_grain = '{grain}' AND window_days = 7",
    )


@pytest.fixture
def stratified():
    """Two marketplaces on 2026-03-10; engagement depends on marketplace only.

    US: engaged e1 (buys), e2; comparison c1 (buys), c2, c3, c4 -> cr 1/4.
    DE: engaged e3 (buys), e4 (buys), e5; comparison c5 (buys), c6 -> cr 1/2.
    ATT counterfactual = (2 * 1/4 + 3 * 1/2) / 5 = 0.4; engaged cr = 3/5; lift = 0.5.
    Observed comparison cr = 2/6; observed lift = 0.8.
    """
    con = empty_warehouse()
    users = {
        "e1": "US", "e2": "US", "c1": "US", "c2": "US", "c3": "US", "c4": "US",
        "e3": "DE", "e4": "DE", "e5": "DE", "c5": "DE", "c6": "DE",
    }  # fmt: skip
    insert(con, "visits", [visit(u, at(10, 10), m) for u, m in users.items()])
    insert(
        con,
        "interactions",
        [event(f"ev{u}", u, at(10, 10, 5), m) for u, m in users.items() if u.startswith("e")],
    )
    buyers = ("e1", "c1", "e3", "e4", "c5")
    insert(
        con,
        "orders",
        [order(f"o{u}", u, at(11, 9), marketplace=users[u]) for u in buyers],
    )
    fx(con)
    build(con, START, END, SETTINGS)
    write_lift_tables(con, SETTINGS, START, END)
    return con


def test_observed_and_adjusted_hand_computed(stratified):
    (obs,) = lift_rows(stratified, "observed")
    assert obs[:4] == (5, 6, 3, 2)
    assert obs[6] == pytest.approx(0.8)
    (adj,) = lift_rows(stratified, "adjusted")
    assert adj[:3] == (5, 6, 3)
    assert adj[4] == pytest.approx(0.6)
    assert adj[5] == pytest.approx(0.4, abs=1e-5)
    assert adj[6] == pytest.approx(0.5, abs=1e-4)
    assert adj[7] < adj[6] < adj[8]
    assert adj[13] == pytest.approx(5 * (0.6 - 0.4), abs=1e-4)
    # segment marketplace=DE: engaged 2/3, comparison 1/2 in both methods
    (de,) = lift_rows(stratified, "adjusted", "marketplace=DE")
    assert de[6] == pytest.approx((2 / 3) / (1 / 2) - 1, abs=1e-4)


def test_balance_and_overlap_tables(stratified):
    got = dict(
        rows(
            stratified,
            "SELECT covariate, smd_after FROM fct_lift_balance WHERE period_grain = 'all'",
        )
    )
    assert abs(got["marketplace=DE"]) < 1e-3  # weighting balances the marketplace mix
    before = rows(
        stratified,
        "SELECT smd_before FROM fct_lift_balance WHERE period_grain = 'all' "
        "AND covariate = 'marketplace=DE'",
    )[0][0]
    assert abs(before) > 0.3
    overlap = rows(
        stratified,
        "SELECT n_engaged, n_comparison, share_trimmed FROM fct_lift_overlap "
        "WHERE period_grain = 'all'",
    )
    assert overlap == [(5, 6, 0.0)]


def test_week_rows_match_day_rows_when_users_appear_once(stratified):
    (day,) = lift_rows(stratified, "observed", grain="day")
    (week,) = lift_rows(stratified, "observed", grain="week")
    assert day[:9] == pytest.approx(week[:9])
    assert rows(
        stratified,
        "SELECT DISTINCT period_start, period_end FROM fct_conversion_lift "
        "WHERE period_grain = 'week'",
    ) == [(date(2026, 3, 9), date(2026, 3, 15))]
    want = ratio_lift_interval(3, 5, 2, 6)
    assert (day[7], day[8]) == pytest.approx((want.ci_low, want.ci_high))


def test_grain_is_unique_and_p_values_are_adjusted(stratified):
    dupes = rows(
        stratified,
        "SELECT count(*) FROM (SELECT period_start, period_grain, segment, method, window_days, "
        "experiment_id, count(*) AS n FROM fct_conversion_lift GROUP BY ALL HAVING n > 1)",
    )
    assert dupes == [(0,)]
    family = rows(
        stratified,
        "SELECT p_value, p_value_bh FROM fct_conversion_lift WHERE method = 'observed' "
        "AND period_grain = 'all' AND p_value IS NOT NULL ORDER BY p_value",
    )
    assert all(bh >= p for p, bh in family)
    # the SQL-owned daily rows got their p-values too
    assert rows(
        stratified,
        "SELECT count(*) FROM fct_conversion_lift WHERE period_grain = 'day' "
        "AND method = 'observed' AND segment = 'all' AND p_value IS NULL",
    ) == [(0,)]


def test_rerun_gives_identical_tables(stratified):
    def digest():
        return rows(
            stratified,
            "SELECT count(*), sum(hash(t))::VARCHAR FROM fct_conversion_lift AS t",
        )

    before = digest()
    write_lift_tables(stratified, SETTINGS, START, END)
    assert digest() == before


@pytest.fixture
def experiment():
    """Four treatment and four holdout users assigned 2026-03-02 00:00 (a Monday).

    Treatment t1 (buys 100), t2 (buys 50); holdout h1 (buys 30). Pre-period orders: t1 and h2.
    """
    con = empty_warehouse()
    assigned = at(2, 0)
    arms = {"t1": "treatment", "t2": "treatment", "t3": "treatment", "t4": "treatment",
            "h1": "holdout", "h2": "holdout", "h3": "holdout", "h4": "holdout"}  # fmt: skip
    insert(
        con,
        "assignments",
        [
            {"user_id": u, "experiment_id": "exp_x", "arm": a, "assigned_at": assigned}
            for u, a in arms.items()
        ],
    )
    insert(
        con,
        "orders",
        [
            order("o1", "t1", at(3, 9), "100.00"),
            order("o2", "t2", at(8, 9), "50.00"),
            order("o3", "h1", at(4, 9), "30.00"),
            order("o4", "t2", at(20, 9), "70.00"),  # after the 7-day window
            order("p1", "t1", at(20, 9, month=2), "10.00"),  # pre-period
            order("p2", "h2", at(25, 9, month=2), "10.00"),  # pre-period
        ],
    )
    insert(con, "visits", [visit("t1", at(2, 9))])
    fx(con)
    build(con, date(2026, 2, 1), END, SETTINGS)
    return con


def test_experiment_hand_computed(experiment):
    write_lift_tables(experiment, SETTINGS, START, END)
    (row,) = lift_rows(experiment, "experiment")
    n_t, n_h, x_t, x_h, cr_t, cr_h, lift, low, high, srm, theta, _p, _, inc = row
    assert (n_t, n_h, x_t, x_h) == (4, 4, 2, 1)
    assert (cr_t, cr_h, lift) == pytest.approx((0.5, 0.25, 1.0))
    se = math.sqrt(0.5 / 2 + 0.75 / 1)
    assert (low, high) == pytest.approx(
        (2 * math.exp(-1.959964 * se) - 1, 2 * math.exp(1.959964 * se) - 1)
    )
    # design share: unknown experiment -> 5% holdout; 4 vs 4 is a gross mismatch
    from scipy import stats as sps

    assert srm == pytest.approx(sps.chi2.sf((4 - 7.6) ** 2 / 7.6 + (4 - 0.4) ** 2 / 0.4, 1))
    assert theta == pytest.approx(1 / 6)
    assert inc == pytest.approx(4 * 0.25)
    rpu = rows(
        experiment,
        "SELECT revenue_per_user_engaged_usd, revenue_per_user_comparison_usd, srm_flag "
        "FROM fct_conversion_lift WHERE method = 'experiment' AND period_grain = 'all' "
        "AND segment = 'all'",
    )
    assert rpu == [(Decimal("37.5000"), Decimal("7.5000"), True)]
    segments = {
        r[0]: r[1:]
        for r in rows(
            experiment,
            "SELECT segment, n_engaged, n_comparison FROM fct_conversion_lift "
            "WHERE method = 'experiment' AND period_grain = 'all'",
        )
    }
    assert segments["buyer=returning"] == (1, 1)
    assert segments["buyer=new"] == (3, 3)
    # experiment units are users: distinct users = units
    assert rows(
        experiment,
        "SELECT n_engaged_users, n_comparison_users FROM fct_conversion_lift "
        "WHERE method = 'experiment' AND period_grain = 'all' AND segment = 'all'",
    ) == [(4, 4)]


def test_experiment_expected_share_override(experiment):
    write_lift_tables(experiment, SETTINGS, START, END, expected_shares={"exp_x": 0.5})
    assert lift_rows(experiment, "experiment")[0][9] == pytest.approx(1.0)
    frame = pooled_lift_by_method(experiment, 7)
    assert frame.filter(frame["method"] == "experiment")["lift"].to_list() == pytest.approx([1.0])
    impact = downstream_impact(experiment, 7)
    row = impact.filter(impact["method"] == "experiment").row(0, named=True)
    # incremental revenue = 4 x (37.5 - 7.5); one assignment day -> x 365 per year
    assert row["incremental_revenue_usd"] == pytest.approx(120.0)
    assert row["run_rate_usd"] == pytest.approx(120.0 * 365)
    assert row["run_rate_ci_low"] < row["run_rate_usd"] < row["run_rate_ci_high"]


def test_lift_cli_prints_a_table(stratified, tmp_path):
    path = tmp_path / "wh.duckdb"
    stratified.execute(f"ATTACH '{path}' AS out")
    stratified.execute("COPY FROM DATABASE memory TO out")
    stratified.execute("DETACH out")
    result = CliRunner().invoke(app, ["lift", "--warehouse", str(path), "--window", "7"])
    assert result.exit_code == 0, result.output
    assert "observed" in result.output and "adjusted" in result.output
    assert "+80.0%" in result.output and "+50.0%" in result.output
    assert "Balance:" in result.output
    missing = CliRunner().invoke(app, ["lift", "--warehouse", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 2


def test_units_without_overlap_are_trimmed_from_the_adjusted_estimate():
    """FR has only engaged users: no comparable non-user, so the adjusted estimate drops them."""
    con = empty_warehouse()
    users = {"e1": "US", "e2": "US", "c1": "US", "c2": "US", "f1": "FR", "f2": "FR", "f3": "FR"}
    insert(con, "visits", [visit(u, at(10, 10), m) for u, m in users.items()])
    insert(
        con,
        "interactions",
        [event(f"ev{u}", u, at(10, 10, 5), m) for u, m in users.items() if u[0] in "ef"],
    )
    insert(con, "orders", [order("o1", "e1", at(11, 9)), order("o2", "c1", at(11, 9))])
    fx(con)
    build(con, START, END, SETTINGS)
    write_lift_tables(con, SETTINGS, START, END)
    (obs,) = lift_rows(con, "observed")
    (adj,) = lift_rows(con, "adjusted")
    assert obs[:2] == (5, 2)
    assert adj[:2] == (2, 2)
    # trimmed units (weight 0) are left out of the distinct-user counts too
    assert rows(
        con,
        "SELECT method, n_engaged_users, n_comparison_users FROM fct_conversion_lift "
        "WHERE period_grain = 'all' AND segment = 'all' AND window_days = 7 ORDER BY method",
    ) == [("adjusted", 2, 2), ("observed", 5, 2)]
    assert adj[6] == pytest.approx(0.0, abs=1e-6)
    (trimmed,) = rows(con, "SELECT share_trimmed FROM fct_lift_overlap WHERE period_grain = 'all'")[
        0:1
    ]
    assert trimmed[0] == pytest.approx(3 / 7)


@pytest.fixture
def repeat_users():
    """u1 engaged on 2026-03-10 and 03-11 (buys 03-12); u2 a visitor on both days; u3 a visitor
    on 03-10; u4 engaged on 03-11. Week 2026-03-09: engaged visitor-days 3 (users u1, u4),
    comparison visitor-days 3 (users u2, u3)."""
    con = empty_warehouse()
    insert(
        con,
        "visits",
        [
            visit("u1", at(10, 9)),
            visit("u1", at(11, 9)),
            visit("u2", at(10, 9)),
            visit("u2", at(11, 9)),
            visit("u3", at(10, 9)),
        ],
    )
    insert(
        con,
        "interactions",
        [
            event("e1", "u1", at(10, 9, 5)),
            event("e2", "u1", at(11, 9, 5)),
            event("e3", "u4", at(11, 9, 5)),
        ],
    )
    insert(con, "orders", [order("o1", "u1", at(12, 9))])
    fx(con)
    build(con, START, END, SETTINGS)
    write_lift_tables(con, SETTINGS, START, END)
    return con


def user_counts(con, grain, method="observed", segment="all"):
    return rows(
        con,
        "SELECT period_start, period_end, n_engaged, n_engaged_users, n_comparison, "
        "n_comparison_users, n_days FROM fct_conversion_lift WHERE period_grain = "
        f"'{grain}' AND method = '{method}' AND segment = '{segment}' AND window_days = 7 "
        "ORDER BY period_start",
    )


def test_distinct_users_per_group_count_a_repeat_user_once(repeat_users):
    week = (date(2026, 3, 9), date(2026, 3, 15))
    assert user_counts(repeat_users, "week") == [(*week, 3, 2, 3, 2, 2)]
    month = (date(2026, 3, 1), date(2026, 3, 31))
    assert user_counts(repeat_users, "month") == [(*month, 3, 2, 3, 2, 2)]
    # day rows (SQL-owned): one visitor-day per user and day
    assert user_counts(repeat_users, "day") == [
        (date(2026, 3, 10), date(2026, 3, 10), 1, 1, 2, 2, 1),
        (date(2026, 3, 11), date(2026, 3, 11), 2, 2, 1, 1, 1),
    ]
    # treatment-attribute segment: engaged units with that model version, every comparison unit
    assert user_counts(repeat_users, "week", segment="model_version=v1") == [(*week, 3, 2, 3, 2, 2)]


def test_year_grain_is_the_calendar_year(repeat_users):
    year = (date(2026, 1, 1), date(2026, 12, 31))
    assert period_bounds(date(2026, 3, 10), "year", START, END) == year
    assert user_counts(repeat_users, "year") == [(*year, 3, 2, 3, 2, 2)]
    (week,) = lift_rows(repeat_users, "observed", grain="week")
    (in_year,) = lift_rows(repeat_users, "observed", grain="year")
    assert in_year[:9] == pytest.approx(week[:9])
    frame = pooled_lift_by_method(repeat_users, 7, period="year")
    assert set(frame["method"].to_list()) == {"observed", "adjusted"}
    assert frame["period_start"].unique().to_list() == [date(2026, 1, 1)]
    impact = downstream_impact(repeat_users, 7, period="year")
    observed = impact.filter(impact["method"] == "observed").row(0, named=True)
    # 2 index days with units in the year: run-rate = incremental x 365 / 2
    assert observed["run_rate_usd"] == pytest.approx(observed["incremental_revenue_usd"] * 365 / 2)
    assert observed["attributed_revenue_usd"] == pytest.approx(100.0)
    assert balance_verdict(repeat_users, 7, period="year").startswith(("balanced", "NOT"))


def test_year_rows_split_at_the_calendar_year():
    con = empty_warehouse()
    insert(
        con,
        "visits",
        [
            visit("a", at(30, 9, month=12, year=2025)),
            visit("b", at(30, 9, month=12, year=2025)),
            visit("a", at(2, 9, month=1)),
            visit("c", at(2, 9, month=1)),
        ],
    )
    insert(
        con,
        "interactions",
        [event("e1", "a", at(30, 9, 5, month=12, year=2025)), event("e2", "a", at(2, 9, 5, 1))],
    )
    insert(con, "orders", [order("o1", "a", at(3, 9, month=1))])
    fx(con)
    start, end = date(2025, 12, 1), date(2026, 1, 31)
    build(con, start, end, SETTINGS)
    write_lift_tables(con, SETTINGS, start, end)
    assert user_counts(con, "year") == [
        (date(2025, 1, 1), date(2025, 12, 31), 1, 1, 1, 1, 1),
        (date(2026, 1, 1), date(2026, 12, 31), 1, 1, 1, 1, 1),
    ]
    # the ISO week 2025-12-29 .. 2026-01-04 spans both years; 'all' is the whole window
    assert user_counts(con, "week") == [(date(2025, 12, 29), date(2026, 1, 4), 2, 1, 2, 2, 2)]
    assert user_counts(con, "all") == [(start, date(2026, 1, 2), 2, 1, 2, 2, 2)]


def test_fits_shared_across_windows_equal_fits_of_each_window_alone(tmp_path_factory):
    """A period complete for every window is fitted once and reused by the next windows: its
    rows must equal those of a run that fits that window alone."""
    from report_warehouse import report_warehouse

    from attribution.build_window import data_date_range
    from attribution.lift import load_visitor_days, visitor_day_rows

    con = duckdb.connect(str(report_warehouse(tmp_path_factory)), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    start, end = data_date_range(con)
    units = load_visitor_days(con, start, end, (1, 7))
    together = visitor_day_rows(units, (1, 7), start, end)
    alone = visitor_day_rows(units, (7,), start, end)

    def window_7(rows):
        return sorted(
            (tuple(sorted((k, str(v)) for k, v in row.items())) for row in rows),
        )

    for shared, single in zip(together, alone, strict=True):
        seven = [row for row in shared if row["window_days"] == 7]
        assert seven and window_7(seven) == window_7(single)
    assert any(row["method"] == "adjusted" for row in alone[0])


def test_visitor_days_loaded_in_chunks_equal_one_query(tmp_path_factory):
    """Units queried chunk by chunk (whole users per chunk) are the same arrays, in the same
    order, as one query over every user; and so are the rows computed from them."""
    from report_warehouse import report_warehouse

    from attribution.build_window import data_date_range
    from attribution.lift import load_visitor_days, visitor_day_rows

    con = duckdb.connect(str(report_warehouse(tmp_path_factory)), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    start, end = data_date_range(con)
    whole = load_visitor_days(con, start, end, (1, 7), units_per_chunk=10**9)
    chunked = load_visitor_days(con, start, end, (1, 7), units_per_chunk=97)
    assert len(whole.user) > 10 * 97  # really several chunks
    for name in ("user", "ordinal", "engaged", "holdout", "covariates"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name
    for (name, codes, levels), (name2, codes2, levels2) in zip(
        whole.design_dims, chunked.design_dims, strict=True
    ):
        assert (name, levels) == (name2, levels2) and np.array_equal(codes, codes2)
    for dim, dim2 in zip(whole.dims, chunked.dims, strict=True):
        assert (dim.name, dim.levels) == (dim2.name, dim2.levels)
        assert np.array_equal(dim.codes, dim2.codes)
    for w in (1, 7):
        for a, b in zip(whole.outcomes[w], chunked.outcomes[w], strict=True):
            assert np.array_equal(a, b)
    assert visitor_day_rows(whole, (7,), start, end) == visitor_day_rows(chunked, (7,), start, end)


@given(
    st.lists(st.lists(st.sampled_from(["b", "a", "ü", "c", None]), max_size=8), max_size=6),
    st.sampled_from([None, "unknown", "a"]),
)
def test_level_codes_filled_chunk_by_chunk_equal_codes_of_the_whole_column(chunks, fill):
    from attribution.lift import _LevelCodes, level_codes

    values = [v for chunk in chunks for v in chunk]
    coder, at = _LevelCodes(len(values)), 0
    for chunk in chunks:
        coder.put(at, pl.Series(chunk, dtype=pl.Utf8))
        at += len(chunk)
    codes, levels = coder.sorted(fill)
    expected_codes, expected_levels = level_codes(pl.Series(values, dtype=pl.Utf8), fill)
    assert levels == expected_levels
    assert codes.tolist() == expected_codes.tolist()


@given(st.lists(st.integers(1, 9), max_size=40), st.integers(1, 20))
def test_chunks_cover_every_user_once_within_the_size(per_user, per_chunk):
    from attribution.lift import _chunk_bounds

    bounds = _chunk_bounds(np.array(per_user, dtype=np.int64), per_chunk)
    assert [lo for lo, _ in bounds] == [0, *(hi for _, hi in bounds[:-1])][: len(bounds)]
    assert (bounds[-1][1] if bounds else 0) == len(per_user)
    for lo, hi in bounds:
        assert hi - lo == 1 or sum(per_user[lo:hi]) <= per_chunk


def test_diagnostics_frame_types_columns_null_in_the_first_rows():
    """Regression: a small warehouse's balance table had an SMD undefined (None) in its first
    100 rows and 0.0 later; the frame builder refused it and the whole run failed."""
    from attribution.lift import diagnostics_frame

    rows = [{"covariate": f"c{i}", "smd_after": None} for i in range(150)]
    rows.append({"covariate": "late", "smd_after": 0.0})
    frame = diagnostics_frame(rows)
    assert frame.schema["smd_after"] == pl.Float64
    assert frame["smd_after"].to_list()[-1] == 0.0
