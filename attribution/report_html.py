"""One self-contained HTML page: headline, charts (plotly.js inlined once), key figures, method.

Nothing on the page refers to the network: no CDN script, no web font, no remote image. The page
is a pure function of its inputs (figures, headline, floored tables, settings, the period).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from attribution.charts import method_label
from attribution.config import RULE_MODELS, Settings
from attribution.headline import Headline, pct, usd
from attribution.report_period import ReportPeriod

PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1150px;
color:#222;padding:0 1rem;line-height:1.45}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}
.headline li{margin:.45rem 0;font-size:1.05rem}.headline li:first-child{font-weight:600}
.meta{color:#666;font-size:.85rem}.chart{margin:1.5rem 0}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.2rem .5rem}
td{text-align:right}td:first-child{text-align:left}.hidden{color:#999}
"""


@dataclass(frozen=True)
class PageContext:
    """What the page says about its run besides figures and headline."""

    period: ReportPeriod
    settings: Settings
    generated_at: str
    balance: str
    suppressed_cells: dict[str, int]
    png_note: str | None


def chart_sections(figures: dict[str, go.Figure]) -> str:
    """Return one ``<section class="chart">`` per figure; plotly.js is inlined in the first."""
    parts = []
    for index, (chart_id, figure) in enumerate(figures.items()):
        div = figure.to_html(
            full_html=False,
            include_plotlyjs=index == 0,
            div_id=f"chart-{chart_id}",
            config=PLOTLY_CONFIG,
        )
        parts.append(f'<section class="chart" data-chart="{chart_id}">{div}</section>')
    return "\n".join(parts)


def _cell(value: Any, formatter: Any, min_users: int) -> str:
    if value is None:
        return f'<td class="hidden" title="fewer than {min_users} users">not shown</td>'
    return f"<td>{html.escape(formatter(value))}</td>"


def html_table(
    frame: pl.DataFrame,
    columns: Sequence[tuple[str, str, Any]],
    min_users: int,
) -> str:
    """Return an HTML table of ``frame``: (column, heading, formatter) per column."""
    head = "".join(f"<th>{html.escape(heading)}</th>" for _, heading, _ in columns)
    rows = []
    for row in frame.iter_rows(named=True):
        cells = "".join(_cell(row[c], f, min_users) for c, _, f in columns)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


METHOD_DESCRIPTIONS: dict[str, str] = {
    "observed": "Observed: users vs non-users, same day (includes self-selection)",
    "adjusted": "Adjusted for who chooses to use the assistant (IPW-ATT)",
    "experiment": "Randomised holdout experiment",
}


def _method_name(method: str, experiment_id: str | None) -> str:
    base = METHOD_DESCRIPTIONS.get(method, method)
    if method == "experiment":
        return f"{base} {experiment_id} (intent to treat)"
    return base


def key_figures(tables: dict[str, pl.DataFrame], min_users: int) -> str:
    """Return the key-figure tables: lift by method and downstream impact of the period."""
    lift = tables["lift_by_method"].with_columns(
        pl.struct("method", "experiment_id")
        .map_elements(lambda r: _method_name(r["method"], r["experiment_id"]), pl.String)
        .alias("name")
    )
    count = "{:,}".format
    rate = "{:.2%}".format
    lift_table = html_table(
        lift,
        [
            ("name", "method", str),
            ("n_engaged_users", "users (engaged / treatment)", count),
            ("n_comparison_users", "users (comparison / holdout)", count),
            ("cr_engaged", "conversion (engaged)", rate),
            ("cr_comparison", "conversion (comparison)", rate),
            ("lift", "lift", pct),
            ("lift_ci_low", "95% low", pct),
            ("lift_ci_high", "95% high", pct),
        ],
        min_users,
    )
    impact = tables["downstream_impact"].with_columns(
        pl.struct("method", "experiment_id")
        .map_elements(lambda r: method_label(r["method"], r["experiment_id"]), pl.String)
        .alias("name")
    )
    impact_table = html_table(
        impact,
        [
            ("name", "method", str),
            ("attributed_revenue_usd", "attributed (last touch)", usd),
            ("incremental_revenue_usd", "incremental revenue", usd),
            ("run_rate_usd", "a year (run-rate)", usd),
            ("run_rate_ci_low", "95% low", usd),
            ("run_rate_ci_high", "95% high", usd),
        ],
        min_users,
    )
    return (
        "<h2>Key figures</h2><h3>Conversion lift by method</h3>"
        f"{lift_table}<h3>Downstream impact</h3>{impact_table}"
    )


def methodology(context: PageContext) -> str:
    """Return the methodology section: definitions, models, estimators, money, privacy, run."""
    s = context.settings
    k = s.privacy_min_users
    windows = ", ".join(str(w) for w in s.windows_days)
    suppressed = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{n:,}</td></tr>"
        for name, n in context.suppressed_cells.items()
    )
    png = f"<p>PNG images skipped: {html.escape(context.png_note)}.</p>" if context.png_note else ""
    return f"""<h2>Methodology</h2>
<p><b>Period.</b> {html.escape(context.period.describe())}. "This year" is the calendar year of the
period's end ({context.period.year}). Lift and impact rows are those of period grain
<code>{context.period.spec.lift_grain}</code>; growth compares the latest complete month of the
period with the same month a year earlier (month over month when the data do not reach back a
year).</p>
<p><b>Definitions.</b> A session (touch) is a run of a user's assistant interactions at most
{s.session_timeout_minutes} minutes apart, or the given session id; its time is its first
interaction. The eligible touches of an order line are the buyer's sessions with
<code>order time - window &le; session start &le; order time</code>, both ends inclusive.
Scope <i>user</i> credits every eligible session; <i>product</i> only sessions that surfaced the
line's product; <i>brand</i> and <i>category</i> sessions that surfaced the same brand or category.
Attribution windows: {windows} days; the headline window is {s.kpi_window_days} days.</p>
<p><b>Models.</b> Five rules ({", ".join(RULE_MODELS)}): first touch and last touch give all
credit to one session, linear shares it equally, time decay weights by 2^(-age / {s.half_life_days:g}
days), position based gives 40% to the first and last and shares 20% among the rest. The
data-driven model is a Markov chain of order {s.data_driven_order} over session
{html.escape(s.data_driven_touch_column)} values whose removal effects are solved exactly, shown
beside exact Shapley values.</p>
<p><b>Estimators.</b> <i>Observed</i> lift compares visitor-days with an assistant session with
visitor-days without one (includes self-selection). <i>Adjusted</i> re-weights non-users to look
like users on pre-period behaviour, marketplace and channel (inverse probability weighting for the
average effect on the treated, trimmed outside propensity 0.01 to 0.99); balance:
{html.escape(context.balance)} <i>Experiment</i> compares the treatment and holdout arms of a
randomised holdout (intent to treat), with a CUPED variance-reduced lift and a sample-ratio check.
Intervals are 95% delta-method intervals on the log of the rate ratio (clustered by user for
visitor-days); incremental revenue = users x (revenue per engaged user - counterfactual revenue
per user), its run-rate = incremental revenue per day of the period x 365.</p>
<p><b>Money.</b> Every amount is in USD at the latest FX rate on or before the order date;
cancelled and returned lines carry zero revenue (counted apart); sums of credit x revenue are exact
decimals.</p>
<p><b>Privacy floor.</b> No number on this page or in the exports describes fewer than {k}
distinct users: such cells are left out ("not shown"; gaps in charts) while their row keys stay.
Growth rates need {k} users in both months compared; lifts need {k} users in each group.
Suppressed cells in this report:</p>
<table><thead><tr><th>table</th><th>suppressed cells</th></tr></thead>
<tbody>{suppressed}</tbody></table>
{png}
<p class="meta">Settings hash {s.settings_hash()} (the settings that change numbers); generated
{html.escape(context.generated_at)}.</p>"""


def render_html(
    figures: dict[str, go.Figure],
    headline: Headline,
    tables: dict[str, pl.DataFrame],
    context: PageContext,
) -> str:
    """Return the whole report page as one self-contained HTML document."""
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in headline.sentences)
    k = context.settings.privacy_min_users
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shopping assistant: downstream impact, {html.escape(context.period.label)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Shopping assistant: downstream impact</h1>
<p class="meta">Period {html.escape(context.period.describe())}; settings hash
{context.settings.settings_hash()}; privacy floor {k} users.</p>
<ul class="headline">{sentences}</ul>
{chart_sections(figures)}
{key_figures(tables, k)}
{methodology(context)}
</body></html>
"""
