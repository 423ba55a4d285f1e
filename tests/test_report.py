"""The report page: offline, every chart drawn, headline numbers equal to the KPI and lift tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from report_warehouse import report_warehouse

from attribution.charts import CHARTS
from attribution.config import Settings
from attribution.headline import add_months, pct, usd
from attribution.report import write_report
from attribution.report_period import clip_period, parse_period
from attribution.warehouse import connect

# (period, privacy floor K): the default floor, and a low one so that small groups show
REPORTS: tuple[tuple[str, int], ...] = (("all", 50), ("all", 10), ("2026", 10), ("2025-09", 10))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return report_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def reports(warehouse, tmp_path_factory) -> dict[tuple[str, int], Any]:
    root = tmp_path_factory.mktemp("reports")
    return {
        (period, k): write_report(
            warehouse,
            root / f"{period}-{k}",
            Settings(privacy_min_users=k, report_png="never"),
            period=period,
        )
        for period, k in REPORTS
    }


# --- the period option ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "first", "last"),
    [
        ("all", "all", None, None),
        ("2026", "year", date(2026, 1, 1), date(2026, 12, 31)),
        ("2024-02", "month", date(2024, 2, 1), date(2024, 2, 29)),
        (" 2025-12 ", "month", date(2025, 12, 1), date(2025, 12, 31)),
    ],
)
def test_accepted_periods(text, kind, first, last):
    spec = parse_period(text)
    assert (spec.kind, spec.first_day, spec.last_day) == (kind, first, last)


@pytest.mark.parametrize(
    "text", ["", "ALL", "last", "26", "2026-13", "2026-00", "2026-3", "2026-03-01", "0000"]
)
def test_other_periods_are_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match=r"'all'.*'YYYY'.*'YYYY-MM'"):
        parse_period(text)


def test_a_period_is_clipped_to_the_data_and_must_hold_some():
    data = (date(2025, 6, 1), date(2026, 8, 4))
    period = clip_period(parse_period("2025"), *data)
    assert (period.start, period.end, period.year) == (date(2025, 6, 1), date(2025, 12, 31), 2025)
    with pytest.raises(ValueError, match="holds no data"):
        clip_period(parse_period("2024-05"), *data)


def test_a_bad_period_fails_before_anything_is_written(warehouse, tmp_path):
    with pytest.raises(ValueError, match="YYYY-MM"):
        write_report(warehouse, tmp_path / "out", Settings(), period="2026-3")
    assert not (tmp_path / "out").exists()


def test_report_refuses_an_unbuilt_warehouse(tmp_path):
    path = tmp_path / "empty.duckdb"
    connect(path).close()
    with pytest.raises(FileNotFoundError, match="attribution run"):
        write_report(path, tmp_path / "out", Settings())


# --- the page -----------------------------------------------------------------------------------

URL_ATTRIBUTES = {"src", "href", "action", "data", "poster", "srcset", "formaction", "xlink:href"}


@dataclass
class Page:
    """What html.parser saw: tags with attributes, chart sections, div ids, scripts, text."""

    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    divs_in_chart: dict[str, list[str]] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)
    text: str = ""


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._chart: str | None = None
        self._depth = 0
        self._in: str | None = None
        self._headline = False
        self._item: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.page.tags.append((tag, attributes))
        if tag == "section" and "data-chart" in attributes:
            self._chart, self._depth = attributes["data-chart"], 0
            self.page.charts.append(self._chart)
            self.page.divs_in_chart[self._chart] = []
        elif self._chart and tag == "section":
            self._depth += 1
        if self._chart and tag == "div" and "id" in attributes:
            self.page.divs_in_chart[self._chart].append(attributes["id"])
        if tag in ("script", "style"):
            self._in, self._buffer = tag, []
        if tag == "ul" and "headline" in attributes.get("class", ""):
            self._headline = True
        if self._headline and tag == "li":
            self._item = []

    def handle_endtag(self, tag):
        if tag == "section" and self._chart:
            if self._depth == 0:
                self._chart = None
            else:
                self._depth -= 1
        if tag in ("script", "style") and self._in == tag:
            (self.page.scripts if tag == "script" else self.page.styles).append(
                "".join(self._buffer)
            )
            self._in = None
        if tag == "li" and self._item is not None:
            self.page.headline.append("".join(self._item))
            self._item = None
        if tag == "ul":
            self._headline = False

    def handle_data(self, data):
        if self._in:
            self._buffer.append(data)
            return
        if self._item is not None:
            self._item.append(data)
        self._text.append(data)

    def close(self):
        super().close()
        self.page.text = " ".join(" ".join(self._text).split())


def parse_page(path: Path) -> Page:
    parser = _Parser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser.page


REMOTE = re.compile(r"^\s*(https?:|ftp:|wss?:)?//", re.I)


def test_page_refers_to_nothing_on_the_network(reports):
    page = parse_page(reports[("all", 50)].index_html)
    remote = [
        (tag, name, value)
        for tag, attributes in page.tags
        for name, value in attributes.items()
        if name in URL_ATTRIBUTES and (REMOTE.match(value) or "http" in value.lower())
    ]
    assert remote == []
    assert [t for t, _ in page.tags if t in ("link", "img", "iframe", "object", "embed")] == []
    assert all(not attributes.get("src") for tag, attributes in page.tags if tag == "script")
    for css in page.styles:
        assert "url(" not in css and "@import" not in css and "@font-face" not in css
    # plotly.js is inlined exactly once
    assert sum(len(s) > 1_000_000 for s in page.scripts) == 1


def test_every_chart_has_its_div_and_a_newplot_call(reports):
    for result in reports.values():
        page = parse_page(result.index_html)
        assert page.charts == list(CHARTS)
        scripts = "\n".join(page.scripts)
        drawn = re.findall(r'Plotly\.newPlot\(\s*"chart-([a-z_]+)"', scripts)
        assert drawn == list(CHARTS)
        for chart in CHARTS:
            assert f"chart-{chart}" in page.divs_in_chart[chart]


def test_methodology_names_the_period_floor_and_settings_hash(reports):
    for (period, k), result in reports.items():
        text = parse_page(result.index_html).text
        methodology = text[text.index("Methodology") :]
        settings = Settings(privacy_min_users=k)
        assert f"Settings hash {settings.settings_hash()}" in methodology
        assert f"fewer than {k} distinct users" in methodology
        assert f"{result.period_start} to {result.period_end}" in methodology
        for words in ("both ends inclusive", "Markov", "Shapley", "CUPED", "FX rate"):
            assert words in methodology
        assert period == result.period


# --- headline numbers equal the tables ----------------------------------------------------------


def _lift_filter(period: str) -> tuple[str, list[Any]]:
    spec = parse_period(period)
    if spec.kind == "all":
        return "period_grain = 'all'", []
    return "period_grain = ? AND period_start BETWEEN ? AND ?", [
        spec.kind,
        spec.first_day,
        spec.last_day,
    ]


def expected_headline(warehouse: Path, period: str, k: int) -> dict[str, Any]:
    """Return the headline figures computed straight from the warehouse tables."""
    con = connect(warehouse, read_only=True)
    try:
        start, end = con.execute(
            'SELECT min("date"), max("date") FROM kpi_daily_segments WHERE segment = \'all\''
        ).fetchall()[0]
        clipped = clip_period(parse_period(period), start, end)
        month = con.sql(
            "SELECT * FROM kpi_monthly_segments WHERE segment = 'all' AND \"month\" = ?",
            params=[clipped.last_month],
        ).pl()
        complete = con.sql(
            "SELECT * FROM kpi_monthly_segments WHERE segment = 'all' AND is_complete "
            'AND "month" BETWEEN ? AND ? ORDER BY "month" DESC LIMIT 1',
            params=[clipped.first_month, clipped.last_month],
        ).pl()
        where, params = _lift_filter(period)
        lift = con.sql(
            "SELECT method, experiment_id, lift, lift_ci_low, lift_ci_high, n_days, "
            "incremental_revenue_usd, incremental_revenue_ci_low, incremental_revenue_ci_high, "
            "least(n_engaged_users, n_comparison_users) AS users "
            f"FROM fct_conversion_lift WHERE {where} AND segment = 'all' AND window_days = 7 "
            "ORDER BY experiment_id",
            params=params,
        ).pl()
    finally:
        con.close()
    rows = {(r["method"], r["experiment_id"]): r for r in lift.iter_rows(named=True)}
    observed, adjusted = rows[("observed", None)], rows[("adjusted", None)]
    experiments = [
        r for r in lift.iter_rows(named=True) if r["method"] == "experiment" and r["users"] >= k
    ]
    impact = experiments[0] if experiments else adjusted
    out: dict[str, Any] = {
        "users_ytd": month["users_ytd"][0] if month["users_ytd"][0] >= k else None,
        "observed_lift": observed["lift"] if observed["users"] >= k else None,
        "adjusted": (adjusted["lift"], adjusted["lift_ci_low"], adjusted["lift_ci_high"])
        if adjusted["users"] >= k
        else None,
        "impact_method": impact["method"],
        "run_rate": impact["incremental_revenue_usd"] * 365 / impact["n_days"]
        if impact["users"] >= k
        else None,
        "growth": None,
    }
    if complete.height:
        row = complete.row(0, named=True)
        yoy = add_months(row["month"], -12) >= start.replace(day=1)
        suffix = "yoy" if yoy else "mom"
        prev = row["mau_prev_year" if yoy else "mau_prev_month"]
        big = min(row["mau"], prev) >= k if prev is not None else False
        out["growth"] = (
            suffix,
            row[f"mau_growth_{suffix}"] if big else None,
            row[f"query_growth_{suffix}"] if big else None,
        )
    return out


@pytest.mark.parametrize(("period", "k"), REPORTS)
def test_headline_numbers_equal_the_kpi_and_lift_tables(reports, warehouse, period, k):
    result = reports[(period, k)]
    want = expected_headline(warehouse, period, k)
    first = result.headline[0]
    hidden = f"not shown: fewer than {k} users"
    n = want["users_ytd"]
    assert first.startswith(f"{n:,} users used the assistant this year" if n else "Users (")
    if want["growth"]:
        basis, mau, queries = want["growth"]
        words = "year over year" if basis == "yoy" else "month over month"
        mau_text = pct(mau) if mau is not None else f"({hidden})"
        query_text = pct(queries) if queries is not None else f"({hidden})"
        assert f"monthly active users {mau_text} {words}; queries {query_text}" in first
    z = want["observed_lift"]
    if z is None:
        assert "observed conversion lift is not shown" in first
    else:
        assert f"{abs(z):.1%} {'more' if z >= 0 else 'less'} likely to buy within 7 days" in first
    if want["adjusted"]:
        w, low, high = want["adjusted"]
        assert f"(adjusted: {pct(w)}, 95% interval {pct(low)} to {pct(high)})" in first
    v = want["run_rate"]
    if v is None:
        assert "downstream impact not shown" in first
    else:
        assert first.endswith(f"downstream impact {usd(v)} a year.")
        source = "randomised holdout experiment" if want["impact_method"] == "experiment" else ""
        assert f"comes from the {source or 'adjusted estimate'}" in " ".join(result.headline)
    assert "self-selection" in result.headline[-1]


def test_the_default_floor_hides_the_small_holdout_and_says_so(reports, warehouse):
    text = " ".join(reports[("all", 50)].headline)
    assert "adjusted estimate (the randomised holdout experiment is not shown" in text
    assert "randomised holdout experiment exp_assistant_holdout (intent to treat), a causal" in (
        " ".join(reports[("all", 10)].headline)
    )


def test_growth_falls_back_to_month_over_month_and_says_why(reports):
    text = " ".join(reports[("2025-09", 10)].headline)
    assert "month over month" in text
    assert "Year over year is not available: it needs September 2024" in text
    assert "year over year" in reports[("all", 10)].headline[0]


def test_lag_buckets_agree_with_the_lag_mart(warehouse, tmp_path):
    import polars as pl

    result = write_report(
        warehouse, tmp_path / "lag", Settings(privacy_min_users=1, report_png="never")
    )
    lag = pl.read_parquet(result.index_html.parent / "data" / "lag_distribution.parquet")
    con = connect(warehouse, read_only=True)
    mart = con.sql(
        "SELECT window_days, lag_bucket_order, lag_bucket, sum(attributed_lines) AS lines "
        "FROM fct_attribution_lag WHERE scope = 'user' GROUP BY ALL ORDER BY ALL"
    ).pl()
    con.close()
    assert (
        lag.select("window_days", "lag_bucket_order", "lag_bucket").rows()
        == mart.select("window_days", "lag_bucket_order", "lag_bucket").rows()
    )
    assert lag["attributed_lines"].to_list() == mart["lines"].to_list()


# --- headline on hand-made rows -----------------------------------------------------------------


def _tiny_headline(users_ytd, lift_rows, impact_rows, complete=False):
    import polars as pl

    from attribution.headline import headline

    period = clip_period(parse_period("2026-08"), date(2025, 6, 1), date(2026, 8, 4))
    lift_schema = {m: pl.Float64 for m in ("lift", "lift_ci_low", "lift_ci_high")}
    impact_schema = {
        m: pl.Float64
        for m in ("run_rate_usd", "run_rate_ci_low", "run_rate_ci_high", "attributed_revenue_usd")
    }
    keys = {"method": pl.String, "experiment_id": pl.String}
    return headline(
        monthly_segments=pl.DataFrame(
            {
                "month": [date(2026, 8, 1)],
                "segment": ["all"],
                "is_complete": [complete],
                "users_ytd": [users_ytd],
            }
        ),
        lift_by_method=pl.DataFrame(lift_rows, schema={**keys, **lift_schema}),
        impact=pl.DataFrame(impact_rows, schema={**keys, **impact_schema}),
        period=period,
        data_start=date(2025, 6, 1),
        window_days=7,
        min_users=50,
    )


def test_headline_of_a_period_without_complete_windows_says_so():
    top = _tiny_headline(200, [], [])
    assert top.sentences[0] == (
        "200 users used the assistant this year; monthly growth not available yet (no complete "
        "month); no conversion lift for this period yet (no complete 7-day window); no "
        "downstream impact estimate yet."
    )


def test_headline_writes_suppressed_values_as_not_shown():
    lift = [
        {"method": "observed", "lift": None},
        {"method": "adjusted", "lift": 0.1, "lift_ci_low": -0.05, "lift_ci_high": 0.25},
    ]
    impact = [
        {"method": "adjusted", "run_rate_usd": 1200.0, "run_rate_ci_low": -50.0},
        {"method": "experiment", "experiment_id": "x1", "run_rate_usd": None},
    ]
    top = _tiny_headline(None, lift, impact)
    first = top.sentences[0]
    assert first.startswith("Users (not shown: fewer than 50 users) used the assistant")
    assert (
        "the observed conversion lift is not shown: fewer than 50 users (adjusted: +10.0%" in first
    )
    assert first.endswith("downstream impact $1,200 a year.")
    assert "experiment is not shown: fewer than 50 users in an arm" in top.sentences[2]
    assert top.figures["impact_method"] == "adjusted"


def test_a_period_without_complete_windows_is_reported_with_empty_lift_tables(warehouse, tmp_path):
    import polars as pl

    result = write_report(warehouse, tmp_path / "aug", Settings(report_png="never"), "2026-08")
    assert (result.period_start, result.period_end) == ("2026-08-01", "2026-08-04")
    impact = pl.read_parquet(result.index_html.parent / "data" / "downstream_impact.parquet")
    assert impact.is_empty() and "attributed_buyers" in impact.columns
    assert "no conversion lift for this period yet" in result.headline[0]


def test_growth_needs_an_earlier_month():
    import polars as pl

    from attribution.headline import headline

    period = clip_period(parse_period("all"), date(2026, 9, 1), date(2026, 10, 30))
    monthly = pl.DataFrame(
        {
            "month": [date(2026, 9, 1), date(2026, 10, 1)],
            "segment": ["all", "all"],
            "is_complete": [True, False],
            "users_ytd": [900, 1000],
            "mau_growth_mom": [None, 0.1],
            "query_growth_mom": [None, 0.2],
        }
    )
    empty = pl.DataFrame(schema={"method": pl.String, "experiment_id": pl.String})
    top = headline(
        monthly_segments=monthly,
        lift_by_method=empty.with_columns(lift=None),
        impact=empty.with_columns(run_rate_usd=None),
        period=period,
        data_start=date(2026, 9, 1),
        window_days=7,
        min_users=50,
    )
    assert "monthly growth not available yet (no earlier month)" in top.sentences[0]
    assert "September 2026, the latest complete month, is the first month" in top.sentences[1]
