"""KPI tables -> plotly figures, headline sentences and one self-contained offline HTML report."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import plotly.graph_objects as go
import polars as pl

from attribution.config import RULE_MODELS, Settings
from attribution.stats import ratio_lift_interval
from attribution.warehouse import connect, table_exists

EXPORTED_TABLES: tuple[str, ...] = ("kpi_daily", "fct_conversion_lift")


@dataclass(frozen=True)
class ReportData:
    """The frames a report is drawn from, read once from the warehouse."""

    kpi_daily: pl.DataFrame
    lift_by_window: pl.DataFrame
    attributed_by_model: pl.DataFrame
    sessions_by_version: pl.DataFrame
    marketplace_totals: pl.DataFrame
    lag_distribution: pl.DataFrame
    data_driven: pl.DataFrame
    lift_by_method: pl.DataFrame
    impact: pl.DataFrame
    settings_hash: str


def read_report_data(con: duckdb.DuckDBPyConnection, settings: Settings) -> ReportData:
    """Return the report's frames: daily KPIs, pooled observed lift, attributed revenue totals."""
    for table in (
        "kpi_daily",
        "fct_conversion_lift",
        "fct_attribution_window_sensitivity",
        "fct_attribution_lag",
        "assistant_sessions",
    ):
        if not table_exists(con, table):
            raise FileNotFoundError(
                f"the warehouse has no table {table}: run `attribution run` before the report"
            )
    kpi = con.sql('SELECT * FROM kpi_daily ORDER BY "date", marketplace').pl()
    pooled = con.execute(
        """
        SELECT window_days,
               sum(conversions_engaged) AS conversions_engaged, sum(n_engaged) AS n_engaged,
               sum(conversions_comparison) AS conversions_comparison,
               sum(n_comparison) AS n_comparison
        FROM fct_conversion_lift
        WHERE segment = 'all' AND method = 'observed' AND period_grain = 'day'
        GROUP BY window_days ORDER BY window_days
        """
    ).fetchall()
    lift_rows = []
    for window_days, x_e, n_e, x_c, n_c in pooled:
        lift = ratio_lift_interval(int(x_e), int(n_e), int(x_c), int(n_c))
        lift_rows.append(
            {
                "window_days": int(window_days),
                "n_engaged": int(n_e),
                "n_comparison": int(n_c),
                "cr_engaged": lift.cr_engaged,
                "cr_comparison": lift.cr_comparison,
                "lift": lift.lift,
                "lift_ci_low": lift.ci_low,
                "lift_ci_high": lift.ci_high,
            }
        )
    sums = ", ".join(
        f"cast(sum({model}_revenue_usd) AS DOUBLE) AS {model}" for model in RULE_MODELS
    )
    attributed = con.sql(
        f"""
        SELECT window_days, sum(attributed_lines) AS attributed_lines, {sums}
        FROM fct_attribution_window_sensitivity WHERE scope = 'user'
        GROUP BY window_days ORDER BY window_days
        """
    ).pl()
    lag = con.sql(
        """
        SELECT window_days, lag_bucket_order, lag_bucket,
               sum(attributed_lines) AS attributed_lines
        FROM fct_attribution_lag WHERE scope = 'user'
        GROUP BY ALL ORDER BY window_days, lag_bucket_order
        """
    ).pl()
    data_driven = (
        con.sql(
            """
            SELECT * FROM fct_attribution_by_touch_type
            WHERE window_days = $window ORDER BY touch_type
            """,
            params={"window": settings.kpi_window_days},
        ).pl()
        if table_exists(con, "fct_attribution_by_touch_type")
        else pl.DataFrame()
    )
    versions = con.sql(
        """
        SELECT session_date, coalesce(model_version, 'unknown') AS model_version,
               count(*) AS sessions
        FROM assistant_sessions GROUP BY ALL ORDER BY session_date, model_version
        """
    ).pl()
    marketplaces = con.sql(
        """
        SELECT marketplace, sum(dau) AS user_days, sum(queries) AS queries,
               sum(orders) AS orders, cast(sum(revenue_usd) AS DOUBLE) AS revenue_usd,
               cast(sum(attributed_revenue_usd) AS DOUBLE) AS attributed_revenue_usd
        FROM kpi_daily GROUP BY marketplace ORDER BY revenue_usd DESC
        """
    ).pl()
    from attribution.lift import downstream_impact, pooled_lift_by_method

    by_method = pooled_lift_by_method(con, settings.kpi_window_days, period="all")
    impact = downstream_impact(con, settings.kpi_window_days, period="all")
    return ReportData(
        kpi_daily=kpi,
        lift_by_window=pl.DataFrame(lift_rows, schema=_LIFT_SCHEMA),
        attributed_by_model=attributed,
        sessions_by_version=versions,
        marketplace_totals=marketplaces,
        lag_distribution=lag,
        data_driven=data_driven,
        lift_by_method=by_method,
        impact=impact,
        settings_hash=settings.settings_hash(),
    )


_LIFT_SCHEMA = {
    "window_days": pl.Int64,
    "n_engaged": pl.Int64,
    "n_comparison": pl.Int64,
    "cr_engaged": pl.Float64,
    "cr_comparison": pl.Float64,
    "lift": pl.Float64,
    "lift_ci_low": pl.Float64,
    "lift_ci_high": pl.Float64,
}


def usd(value: float) -> str:
    """Return whole US dollars with the sign before the symbol: ``-$1,234``."""
    return f"-${abs(value):,.0f}" if value < 0 else f"${value:,.0f}"


def headline_sentences(data: ReportData, headline_window_days: int) -> list[str]:
    """Return the report's headline sentences, every number taken from the data."""
    kpi = data.kpi_daily
    sentences: list[str] = []
    if kpi.height:
        first, last = kpi["date"].min(), kpi["date"].max()
        sentences.append(
            f"From {first} to {last}: {int(kpi['queries'].sum()):,} assistant interactions in "
            f"{int(kpi['sessions'].sum()):,} sessions; {int(kpi['orders'].sum()):,} orders worth "
            f"${float(kpi['revenue_usd'].sum()):,.0f}."
        )
        sentences.append(
            f"Last-touch attributed revenue ({headline_window_days}-day window): "
            f"${float(kpi['attributed_revenue_usd'].sum()):,.0f}."
        )
    row = data.lift_by_window.filter(pl.col("window_days") == headline_window_days)
    if row.height and row["lift"][0] is not None:
        lift, low, high = row["lift"][0], row["lift_ci_low"][0], row["lift_ci_high"][0]
        interval = f" (95% interval {low:+.1%} to {high:+.1%})" if low is not None else ""
        sentences.append(
            f"Visitors who used the assistant were {lift:+.1%} more likely to buy within "
            f"{headline_window_days} days than visitors who did not{interval}. This is the "
            "observed comparison: it includes self-selection and is not the causal effect."
        )
    for row in data.lift_by_method.filter(pl.col("method") != "observed").iter_rows(named=True):
        if row["lift"] is None:
            continue
        interval = (
            f" (95% interval {row['ci_low']:+.1%} to {row['ci_high']:+.1%})"
            if row["ci_low"] is not None
            else ""
        )
        what = (
            "Adjusted for who chooses to use the assistant (pre-period behaviour, marketplace, "
            "channel)"
            if row["method"] == "adjusted"
            else f"Randomised holdout experiment {row['experiment_id']} (intent to treat)"
        )
        sentences.append(f"{what}: {row['lift']:+.1%}{interval} conversion lift.")
    for row in data.impact.filter(pl.col("method") == "experiment").iter_rows(named=True):
        if row["run_rate_usd"] is None:
            continue
        sentences.append(
            f"Downstream impact (experiment {row['experiment_id']}): incremental revenue "
            f"{usd(row['incremental_revenue_usd'])} in the period, about "
            f"{usd(row['run_rate_usd'])} a year (95% interval {usd(row['run_rate_ci_low'])} to "
            f"{usd(row['run_rate_ci_high'])}), against {usd(row['attributed_revenue_usd'])} "
            "attributed by last touch."
        )
    return sentences


def report_figures(data: ReportData) -> dict[str, go.Figure]:
    """Return the report's plotly figures keyed by a stable id."""
    daily = (
        data.kpi_daily.group_by("date")
        .agg(
            pl.col("dau", "queries", "sessions", "orders").sum(),
            pl.col("revenue_usd", "attributed_revenue_usd").cast(pl.Float64).sum(),
        )
        .sort("date")
    )
    trends = go.Figure()
    for column in ("dau", "sessions", "orders"):
        trends.add_trace(go.Scatter(x=daily["date"], y=daily[column], mode="lines", name=column))
    trends.update_layout(title="Daily assistant users, sessions and orders", yaxis_title="count")

    revenue = go.Figure()
    revenue.add_trace(go.Bar(x=daily["date"], y=daily["revenue_usd"], name="revenue_usd"))
    revenue.add_trace(
        go.Scatter(
            x=daily["date"], y=daily["attributed_revenue_usd"], name="attributed (last touch)"
        )
    )
    revenue.update_layout(title="Daily revenue and attributed revenue (USD)", yaxis_title="USD")

    lift = data.lift_by_window.drop_nulls("lift")
    lift_fig = go.Figure(
        go.Bar(
            x=[f"{w} d" for w in lift["window_days"]],
            y=lift["lift"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (lift["lift_ci_high"] - lift["lift"]).to_list(),
                "arrayminus": (lift["lift"] - lift["lift_ci_low"]).to_list(),
            },
            name="observed lift",
        )
    )
    lift_fig.update_layout(
        title="Observed conversion lift by window (95% interval)",
        yaxis_tickformat="+.0%",
        xaxis_title="window",
    )

    methods = data.lift_by_method.drop_nulls("lift")
    method_fig = go.Figure(
        go.Bar(
            x=[
                m if e is None else f"{m}: {e}"
                for m, e in zip(methods["method"], methods["experiment_id"], strict=True)
            ],
            y=methods["lift"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (methods["ci_high"] - methods["lift"]).fill_null(0).to_list(),
                "arrayminus": (methods["lift"] - methods["ci_low"]).fill_null(0).to_list(),
            },
        )
    )
    method_fig.update_layout(
        title="Conversion lift by method, whole period (95% interval)", yaxis_tickformat="+.0%"
    )

    by_model = go.Figure()
    for model in RULE_MODELS:
        by_model.add_trace(
            go.Bar(
                x=[f"{w} d" for w in data.attributed_by_model["window_days"]],
                y=data.attributed_by_model[model],
                name=model,
            )
        )
    by_model.update_layout(
        title="Attributed revenue by model and window (scope user, USD)",
        barmode="group",
        yaxis_title="USD",
    )

    versions = go.Figure()
    for version in data.sessions_by_version["model_version"].unique().sort():
        part = data.sessions_by_version.filter(pl.col("model_version") == version)
        versions.add_trace(
            go.Scatter(x=part["session_date"], y=part["sessions"], stackgroup="v", name=version)
        )
    versions.update_layout(title="Sessions by assistant model version", yaxis_title="sessions")

    markets = go.Figure()
    totals = data.marketplace_totals
    markets.add_trace(go.Bar(x=totals["marketplace"], y=totals["revenue_usd"], name="revenue"))
    markets.add_trace(
        go.Bar(
            x=totals["marketplace"],
            y=totals["attributed_revenue_usd"],
            name="attributed (last touch)",
        )
    )
    markets.update_layout(title="Revenue by marketplace (USD)", barmode="group")

    lag_fig = go.Figure()
    for window in data.lag_distribution["window_days"].unique().sort():
        part = data.lag_distribution.filter(pl.col("window_days") == window)
        lag_fig.add_trace(
            go.Bar(x=part["lag_bucket"], y=part["attributed_lines"], name=f"{window} d")
        )
    lag_fig.update_layout(
        title="Lag from the last eligible session to the purchase (attributed lines, scope user)",
        barmode="group",
        xaxis_title="lag",
        yaxis_title="order lines",
    )

    dd = go.Figure()
    if data.data_driven.height:
        frame = data.data_driven
        dd.add_trace(
            go.Bar(
                x=frame["touch_type"],
                y=frame["attributed_revenue_usd"],
                name="data_driven (Markov)",
            )
        )
        if frame["shapley_revenue_usd"].null_count() < frame.height:
            dd.add_trace(
                go.Bar(x=frame["touch_type"], y=frame["shapley_revenue_usd"], name="Shapley")
            )
        for model in RULE_MODELS:
            dd.add_trace(go.Bar(x=frame["touch_type"], y=frame[f"{model}_revenue_usd"], name=model))
        window = int(frame["window_days"][0])
        dd.update_layout(
            title=f"Attributed revenue by touch type, {window}-day window: data-driven vs rules (USD)",
            barmode="group",
        )
    return {
        "trends": trends,
        "revenue": revenue,
        "lift_by_window": lift_fig,
        "lift_by_method": method_fig,
        "attributed_by_model": by_model,
        "model_versions": versions,
        "marketplaces": markets,
        "lag_distribution": lag_fig,
        "data_driven": dd,
    }


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}
.headline li{margin:.4rem 0;font-size:1.05rem}.meta{color:#666;font-size:.85rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}
"""


def render_html(
    figures: dict[str, go.Figure], sentences: list[str], data: ReportData, settings: Settings
) -> str:
    """Return one self-contained HTML page (plotly.js inlined once, no network references)."""
    parts: list[str] = []
    for index, (key, figure) in enumerate(figures.items()):
        div = figure.to_html(
            full_html=False,
            include_plotlyjs=index == 0,
            div_id=f"chart-{key}",
            config={"displaylogo": False},
        )
        parts.append(f'<section class="chart" data-chart="{key}">{div}</section>')
    headline = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    windows = ", ".join(str(w) for w in settings.windows_days)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lift_table = data.lift_by_window.to_pandas().to_html(
        index=False, float_format=lambda v: f"{v:.4f}", na_rep="n/a"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Shopping assistant: downstream impact</title><style>{_CSS}</style></head>
<body>
<h1>Shopping assistant: downstream impact</h1>
<p class="meta">Generated {generated}; settings hash {data.settings_hash}.</p>
<ul class="headline">{headline}</ul>
{"".join(parts)}
<h2>Observed lift by window</h2>
{lift_table}
<h2>Methodology</h2>
<p>Sessions: consecutive assistant interactions at most {settings.session_timeout_minutes} minutes
apart (or the given session id). Attribution windows: {windows} days, both ends inclusive; models
first touch, last touch, linear, time decay (half-life {settings.half_life_days:g} days) and
position based (40/20/40), plus the data-driven model: a first-order Markov chain over session touch
types whose removal effects are solved exactly, allocated globally (total x effect / sum of
effects), shown beside exact Shapley values. Revenue in USD at the order date's FX rate; cancelled and returned lines
carry zero revenue. Observed lift compares visitor-days with an assistant session against
visitor-days without one; converted means an order placed within the window after the day's first
visit or session; the 95% interval is the delta method on the log of the rate ratio. The observed
lift includes self-selection: people who shop more use the assistant more.</p>
</body></html>
"""


def write_report(warehouse_path: Path, out_dir: Path, settings: Settings) -> Path:
    """Write ``index.html`` plus CSV and Parquet exports of the KPI tables; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = connect(warehouse_path, read_only=True)
    try:
        data = read_report_data(con, settings)
        for table in EXPORTED_TABLES:
            frame = con.sql(f'SELECT * FROM "{table}"').pl()
            frame.write_csv(out_dir / f"{table}.csv")
            frame.write_parquet(out_dir / f"{table}.parquet")
    finally:
        con.close()
    figures = report_figures(data)
    sentences = headline_sentences(data, settings.kpi_window_days)
    page = out_dir / "index.html"
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(render_html(figures, sentences, data, settings), encoding="utf-8")
    tmp.replace(page)
    return page
