"""Plotly figures of the report, drawn from floored frames (a suppressed cell is a gap).

``report_figures`` returns every chart keyed by a stable id; the HTML page, the PNG images and the
tests use the same ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from attribution.config import RULE_MODELS

LIFT_FORMAT = "+.0%"
HEIGHT = 440


def _numbers(frame: pl.DataFrame, column: str) -> list[Any]:
    """Return a column as plain floats (money is DECIMAL in the tables) with None for gaps."""
    return frame[column].cast(pl.Float64).to_list()


def _month_labels(frame: pl.DataFrame) -> list[str]:
    """Return months as category labels (``Sep 2026``): one bar per month, not a date range."""
    return frame["month"].dt.strftime("%b %Y").to_list()


def _styled(figure: go.Figure, title: str, subtitle: str = "", **layout: Any) -> go.Figure:
    text = f"{title}<br><sup>{subtitle}</sup>" if subtitle else title
    figure.update_layout(
        title={"text": text, "x": 0.01},
        template="plotly_white",
        height=HEIGHT,
        margin={"l": 60, "r": 30, "t": 95 if subtitle else 70, "b": 60},
        legend={"orientation": "h", "y": -0.18},
        **layout,
    )
    return figure


def _empty(title: str, why: str = "No data for this period.") -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=why, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _styled(figure, title)


def _interval(frame: pl.DataFrame, value: str, low: str, high: str) -> dict[str, Any]:
    """Return a plotly error_y spec for an asymmetric interval [low, high] around value."""
    return {
        "type": "data",
        "symmetric": False,
        "array": (frame[high] - frame[value]).to_list(),
        "arrayminus": (frame[value] - frame[low]).to_list(),
    }


def method_label(method: str, experiment_id: str | None) -> str:
    """Return the readable name of a lift method (experiments carry their id)."""
    return method if experiment_id is None else f"{method}: {experiment_id}"


def _overall(frame: pl.DataFrame, time_column: str) -> pl.DataFrame:
    return frame.filter(pl.col("segment") == "all").sort(time_column)


def trends_figure(daily: pl.DataFrame) -> go.Figure:
    """Daily active users, sessions and orders (segment all)."""
    title = "Daily assistant users, sessions and orders"
    days = _overall(daily, "date")
    if days.is_empty():
        return _empty(title)
    figure = go.Figure()
    for column, name in (
        ("active_users", "active users"),
        ("sessions", "sessions"),
        ("orders", "orders"),
    ):
        figure.add_trace(
            go.Scatter(
                x=days["date"].to_list(),
                y=_numbers(days, column),
                mode="lines+markers",
                marker_size=3,
                name=name,
            )
        )
    return _styled(figure, title, yaxis_title="count")


def monthly_trends_figure(monthly: pl.DataFrame) -> go.Figure:
    """Monthly active users (bars) and assistant queries (line) per month (segment all)."""
    title = "Monthly active users and queries"
    months = _overall(monthly, "month")
    if months.is_empty():
        return _empty(title)
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    x = _month_labels(months)
    figure.add_trace(go.Bar(x=x, y=_numbers(months, "mau"), name="monthly active users"))
    figure.add_trace(
        go.Scatter(x=x, y=_numbers(months, "queries"), mode="lines+markers", name="queries"),
        secondary_y=True,
    )
    figure.update_yaxes(title_text="users", rangemode="tozero", secondary_y=False)
    figure.update_yaxes(title_text="queries", rangemode="tozero", secondary_y=True)
    return _styled(figure, title)


def revenue_figure(monthly: pl.DataFrame, window_days: int) -> go.Figure:
    """Revenue and last-touch attributed revenue per month (segment all).

    Monthly, not daily: a day's buyers rarely reach the privacy floor outside large
    marketplaces, a month's usually do, so the chart shows money rather than gaps.
    """
    title = f"Revenue and last-touch attributed revenue by month ({window_days}-day window, USD)"
    months = _overall(monthly, "month")
    if months.is_empty():
        return _empty(title)
    figure = go.Figure()
    x = _month_labels(months)
    figure.add_trace(go.Bar(x=x, y=_numbers(months, "revenue_usd"), name="revenue"))
    figure.add_trace(
        go.Bar(x=x, y=_numbers(months, "attributed_revenue_usd"), name="attributed (last touch)")
    )
    return _styled(figure, title, barmode="group", yaxis_title="USD")


def lift_by_method_figure(lift: pl.DataFrame, window_days: int) -> go.Figure:
    """Conversion lift of every method at the KPI window with 95% intervals."""
    title = f"Conversion lift by method, {window_days}-day window (95% interval)"
    if lift.is_empty():
        return _empty(title)
    labels = [
        method_label(m, e)
        for m, e in zip(lift["method"].to_list(), lift["experiment_id"].to_list(), strict=True)
    ]
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=lift["lift"].to_list(),
            error_y=_interval(lift, "lift", "lift_ci_low", "lift_ci_high"),
            name="lift",
        )
    )
    return _styled(figure, title, yaxis_tickformat=LIFT_FORMAT, yaxis_title="lift")


def lift_by_window_figure(lift: pl.DataFrame) -> go.Figure:
    """Conversion lift per window for every method, with 95% intervals."""
    title = "Conversion lift by window and method (95% interval)"
    if lift.is_empty():
        return _empty(title)
    figure = go.Figure()
    keyed = lift.with_columns(
        pl.struct("method", "experiment_id")
        .map_elements(
            lambda r: method_label(r["method"], r["experiment_id"]), return_dtype=pl.String
        )
        .alias("_label")
    )
    for label in keyed["_label"].unique(maintain_order=True).to_list():
        part = keyed.filter(pl.col("_label") == label).sort("window_days")
        figure.add_trace(
            go.Bar(
                x=[f"{w} d" for w in part["window_days"].to_list()],
                y=part["lift"].to_list(),
                error_y=_interval(part, "lift", "lift_ci_low", "lift_ci_high"),
                name=label,
            )
        )
    return _styled(
        figure, title, barmode="group", yaxis_tickformat=LIFT_FORMAT, xaxis_title="window"
    )


def attributed_by_model_figure(by_model: pl.DataFrame) -> go.Figure:
    """Attributed revenue of every rule model at every window, scopes user and product."""
    title = "Attributed revenue by model and window (USD)"
    if by_model.is_empty():
        return _empty(title)
    scopes = by_model["scope"].unique(maintain_order=True).to_list()
    figure = make_subplots(rows=1, cols=len(scopes), subplot_titles=[f"scope {s}" for s in scopes])
    palette = qualitative.Plotly
    for col, scope in enumerate(scopes, start=1):
        for index, model in enumerate(RULE_MODELS):
            part = by_model.filter((pl.col("scope") == scope) & (pl.col("model") == model))
            part = part.sort("window_days")
            figure.add_trace(
                go.Bar(
                    x=[f"{w} d" for w in part["window_days"].to_list()],
                    y=_numbers(part, "attributed_revenue_usd"),
                    name=model,
                    legendgroup=model,
                    showlegend=col == 1,
                    marker_color=palette[index % len(palette)],
                ),
                row=1,
                col=col,
            )
    return _styled(
        figure,
        title,
        "At one scope every rule model credits the same total; they differ in which touches "
        "get the credit (see data-driven vs rules by touch type).",
        barmode="group",
        yaxis_title="USD",
    )


def window_sensitivity_figure(by_model: pl.DataFrame) -> go.Figure:
    """Share of the period's revenue credited to the assistant by window, per scope and model."""
    title = "Window sensitivity: share of revenue credited to the assistant"
    if by_model.is_empty():
        return _empty(title)
    figure = go.Figure()
    dashes = {"user": "solid", "product": "dash"}
    for scope in by_model["scope"].unique(maintain_order=True).to_list():
        for index, model in enumerate(RULE_MODELS):
            part = by_model.filter((pl.col("scope") == scope) & (pl.col("model") == model))
            part = part.sort("window_days")
            figure.add_trace(
                go.Scatter(
                    x=part["window_days"].to_list(),
                    y=part["share_of_revenue"].to_list(),
                    mode="lines+markers",
                    name=f"{model} ({scope})",
                    line={
                        "dash": dashes.get(scope, "dot"),
                        "color": qualitative.Plotly[index % len(qualitative.Plotly)],
                    },
                )
            )
    return _styled(
        figure,
        title,
        "Scope user solid, product dashed; the rule models overlap (same totals).",
        yaxis_tickformat=".0%",
        yaxis_title="share of revenue",
        xaxis_title="window (days)",
    )


def lag_figure(lag: pl.DataFrame) -> go.Figure:
    """Attributed lines by lag from the last eligible session to the purchase, per window."""
    title = "Lag from the last eligible session to the purchase (attributed lines, scope user)"
    if lag.is_empty():
        return _empty(title)
    figure = go.Figure()
    for window in lag["window_days"].unique().sort().to_list():
        part = lag.filter(pl.col("window_days") == window).sort("lag_bucket_order")
        figure.add_trace(
            go.Bar(
                x=part["lag_bucket"].to_list(),
                y=_numbers(part, "attributed_lines"),
                name=f"{window} d",
            )
        )
    return _styled(figure, title, barmode="group", xaxis_title="lag", yaxis_title="order lines")


def model_versions_figure(
    version_lift: pl.DataFrame, version_attribution: pl.DataFrame, window_days: int
) -> go.Figure:
    """Conversion lift (95% interval) beside attributed revenue, per assistant model version."""
    title = f"Assistant model versions side by side ({window_days}-day window)"
    if version_lift.is_empty() and version_attribution.is_empty():
        return _empty(title)
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("conversion lift (95% interval)", "last-touch attributed revenue (USD)"),
    )
    lift = version_lift.with_columns(
        pl.col("segment").str.replace("^model_version=", "").alias("model_version")
    )
    for method in lift["method"].unique(maintain_order=True).to_list():
        part = lift.filter(pl.col("method") == method).sort("model_version")
        figure.add_trace(
            go.Bar(
                x=part["model_version"].to_list(),
                y=part["lift"].to_list(),
                error_y=_interval(part, "lift", "lift_ci_low", "lift_ci_high"),
                name=f"lift ({method})",
            ),
            row=1,
            col=1,
        )
    attributed = version_attribution.sort("model_version")
    figure.add_trace(
        go.Bar(
            x=attributed["model_version"].to_list(),
            y=_numbers(attributed, "attributed_revenue_usd"),
            name="attributed revenue",
        ),
        row=1,
        col=2,
    )
    figure.update_yaxes(tickformat=LIFT_FORMAT, row=1, col=1)
    return _styled(figure, title, barmode="group")


def marketplaces_figure(monthly: pl.DataFrame) -> go.Figure:
    """Revenue (stacked) and monthly active users per marketplace and month."""
    title = "Marketplaces: revenue and monthly active users by month"
    markets = monthly.filter(pl.col("dimension") == "marketplace").sort("month")
    if markets.is_empty():
        return _empty(title)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("revenue (USD)", "monthly active users"))
    palette = qualitative.Plotly
    for index, market in enumerate(markets["segment_value"].unique().sort().to_list()):
        part = markets.filter(pl.col("segment_value") == market)
        x, color = _month_labels(part), palette[index % len(palette)]
        figure.add_trace(
            go.Bar(
                x=x,
                y=_numbers(part, "revenue_usd"),
                name=market,
                legendgroup=market,
                marker_color=color,
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=_numbers(part, "mau"),
                mode="lines+markers",
                name=market,
                legendgroup=market,
                showlegend=False,
                line_color=color,
            ),
            row=1,
            col=2,
        )
    return _styled(figure, title, barmode="stack")


def data_driven_figure(by_touch: pl.DataFrame) -> go.Figure:
    """Attributed revenue per touch type: data-driven (Markov, Shapley) beside the rule models."""
    title = "Data-driven vs rules by touch type"
    if by_touch.is_empty():
        return _empty(title, "No data-driven summary in the warehouse.")
    figure = go.Figure()
    x = by_touch["touch_type"].to_list()
    figure.add_trace(
        go.Bar(x=x, y=_numbers(by_touch, "attributed_revenue_usd"), name="data_driven (Markov)")
    )
    if by_touch["shapley_revenue_usd"].null_count() < by_touch.height:
        figure.add_trace(go.Bar(x=x, y=_numbers(by_touch, "shapley_revenue_usd"), name="Shapley"))
    for model in RULE_MODELS:
        figure.add_trace(go.Bar(x=x, y=_numbers(by_touch, f"{model}_revenue_usd"), name=model))
    window = int(by_touch["window_days"][0])
    start, end = by_touch["start_date"][0], by_touch["end_date"][0]
    return _styled(
        figure,
        f"{title}, {window}-day window (USD)",
        f"Whole loaded range {start} to {end} (the data-driven summary is not per period).",
        barmode="group",
        yaxis_title="USD",
    )


ChartBuilder = Callable[[dict[str, pl.DataFrame], int], go.Figure]

# chart id -> builder from the floored tables (order = order on the page)
CHARTS: dict[str, ChartBuilder] = {
    "trends": lambda t, _w: trends_figure(t["kpi_daily_segments"]),
    "monthly_trends": lambda t, _w: monthly_trends_figure(t["kpi_monthly_segments"]),
    "revenue": lambda t, w: revenue_figure(t["kpi_monthly_segments"], w),
    "lift_by_method": lambda t, w: lift_by_method_figure(t["lift_by_method"], w),
    "lift_by_window": lambda t, _w: lift_by_window_figure(t["lift_by_window"]),
    "attributed_by_model": lambda t, _w: attributed_by_model_figure(
        t["attribution_by_model_window"]
    ),
    "window_sensitivity": lambda t, _w: window_sensitivity_figure(t["attribution_by_model_window"]),
    "lag_distribution": lambda t, _w: lag_figure(t["lag_distribution"]),
    "model_versions": lambda t, w: model_versions_figure(
        t["model_version_lift"], t["model_version_attribution"], w
    ),
    "marketplaces": lambda t, _w: marketplaces_figure(t["kpi_monthly_segments"]),
    "data_driven": lambda t, _w: data_driven_figure(t["attribution_by_touch_type"]),
}


def has_visible_values(figure: go.Figure) -> bool:
    """Return True if any trace of the figure has a value to draw."""
    return any(
        value is not None for trace in figure.data for value in (getattr(trace, "y", None) or ())
    )


def with_floor_note(figure: go.Figure, min_users: int) -> go.Figure:
    """Return the figure, with a note when every value was withheld by the privacy floor."""
    if figure.data and not has_visible_values(figure):
        figure.add_annotation(
            text=f"Every value here describes fewer than {min_users} users: not shown.",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
    return figure


def report_figures(
    tables: dict[str, pl.DataFrame], window_days: int, min_users: int
) -> dict[str, go.Figure]:
    """Return every chart of the report keyed by its id, from floored tables."""
    return {
        chart_id: with_floor_note(build(tables, window_days), min_users)
        for chart_id, build in CHARTS.items()
    }
