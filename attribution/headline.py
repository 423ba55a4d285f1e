"""The report's headline sentences, every number taken from floored KPI and lift rows.

The first sentence has the form leadership quotes:

    N users used the assistant this year; monthly active users +X% year over year; queries +Y%;
    users of the assistant were Z% more likely to buy (adjusted: W%, 95% interval a to b);
    downstream impact $V a year

The sentences after it say where each number comes from and what it does not mean. A number the
privacy floor withheld is written as "not shown: fewer than K users". Definitions: docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from attribution.report_period import ReportPeriod


@dataclass(frozen=True)
class Headline:
    """The headline sentences and the figures they quote (JSON-ready, for the manifest)."""

    sentences: list[str]
    figures: dict[str, Any] = field(default_factory=dict)


def usd(value: float) -> str:
    """Return whole US dollars with the sign before the symbol: ``-$1,234``."""
    return f"-${abs(value):,.0f}" if value < 0 else f"${value:,.0f}"


def pct(value: float) -> str:
    """Return a signed percentage with one decimal: ``+12.3%``."""
    return f"{value:+.1%}"


def add_months(first: date, months: int) -> date:
    """Return the first day of the month ``months`` after the month starting ``first``."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_name(first: date) -> str:
    return first.strftime("%B %Y")


def _hidden(min_users: int) -> str:
    return f"not shown: fewer than {min_users} users"


def _value(row: dict[str, Any] | None, column: str) -> Any:
    return None if row is None else row.get(column)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _overall_months(monthly: pl.DataFrame, period: ReportPeriod) -> pl.DataFrame:
    return monthly.filter(
        (pl.col("segment") == "all")
        & pl.col("month").is_between(period.first_month, period.last_month)
    ).sort("month")


def _users_clause(
    monthly: pl.DataFrame, period: ReportPeriod, min_users: int
) -> tuple[str, dict[str, Any]]:
    latest = monthly.filter(pl.col("month") == period.last_month)
    n = latest["users_ytd"][0] if latest.height else None
    figures = {"users_ytd": n, "users_ytd_month": period.last_month.isoformat()}
    text = f"{n:,} users" if n is not None else f"Users ({_hidden(min_users)})"
    return f"{text} used the assistant this year", figures


def _growth_clause(
    monthly: pl.DataFrame, data_start: date, min_users: int
) -> tuple[str, str, dict[str, Any]]:
    """Return (headline clause, explanation sentence, figures) of MAU and query growth."""
    complete = monthly.filter(pl.col("is_complete"))
    if complete.is_empty():
        note = "No complete month in this period yet: growth is left out."
        return "monthly growth not available yet (no complete month)", note, {}
    row = complete.row(complete.height - 1, named=True)
    month: date = row["month"]
    year_ago, month_ago = add_months(month, -12), add_months(month, -1)
    first_month = data_start.replace(day=1)
    if year_ago >= first_month:
        basis, mau, queries = "year over year", row["mau_growth_yoy"], row["query_growth_yoy"]
        compared, why = year_ago, ""
    elif month_ago >= first_month:
        basis, mau, queries = "month over month", row["mau_growth_mom"], row["query_growth_mom"]
        compared = month_ago
        why = (
            f" Year over year is not available: it needs {_month_name(year_ago)}, and the data "
            f"start on {data_start.isoformat()}."
        )
    else:
        note = (
            f"Growth is left out: {_month_name(month)}, the latest complete month, is the first "
            f"month of data (the data start on {data_start.isoformat()})."
        )
        return "monthly growth not available yet (no earlier month)", note, {}
    figures = {
        "growth_basis": "yoy" if basis == "year over year" else "mom",
        "growth_month": month.isoformat(),
        "mau_growth": _float(mau),
        "query_growth": _float(queries),
    }
    mau_text = pct(mau) if mau is not None else f"({_hidden(min_users)})"
    queries_text = pct(queries) if queries is not None else f"({_hidden(min_users)})"
    clause = f"monthly active users {mau_text} {basis}; queries {queries_text}"
    note = (
        f"Growth compares {_month_name(month)}, the latest complete month of the period, with "
        f"{_month_name(compared)} ({basis}).{why}"
    )
    return clause, note, figures


def _lift_clause(
    lift: pl.DataFrame, window_days: int, min_users: int
) -> tuple[str, dict[str, Any]]:
    observed = _first_row(lift.filter(pl.col("method") == "observed"))
    adjusted = _first_row(lift.filter(pl.col("method") == "adjusted"))
    z = _value(observed, "lift")
    w, low, high = (_value(adjusted, c) for c in ("lift", "lift_ci_low", "lift_ci_high"))
    figures = {
        "window_days": window_days,
        "observed_lift": z,
        "adjusted_lift": w,
        "adjusted_lift_ci_low": low,
        "adjusted_lift_ci_high": high,
    }
    if observed is None:
        head = f"no conversion lift for this period yet (no complete {window_days}-day window)"
    elif z is None:
        head = f"the observed conversion lift is {_hidden(min_users)}"
    else:
        more = "more" if z >= 0 else "less"
        head = (
            f"users of the assistant were {abs(z):.1%} {more} likely to buy within "
            f"{window_days} days"
        )
    if adjusted is None:
        return (head if observed is None else f"{head} (no adjusted estimate)"), figures
    if w is None:
        adjusted_text = f"adjusted: {_hidden(min_users)}"
    elif low is None or high is None:
        adjusted_text = f"adjusted: {pct(w)}"
    else:
        adjusted_text = f"adjusted: {pct(w)}, 95% interval {pct(low)} to {pct(high)}"
    return f"{head} ({adjusted_text})", figures


def _first_row(frame: pl.DataFrame) -> dict[str, Any] | None:
    return frame.row(0, named=True) if frame.height else None


def _impact_clause(impact: pl.DataFrame, min_users: int) -> tuple[str, str, dict[str, Any]]:
    """Return (clause, explanation, figures): the experiment's run-rate if any, else adjusted."""
    experiments = impact.filter(pl.col("method") == "experiment").sort("experiment_id")
    visible = experiments.filter(pl.col("run_rate_usd").is_not_null())
    if visible.height:
        row: dict[str, Any] | None = visible.row(0, named=True)
        source = (
            f"the randomised holdout experiment {row['experiment_id']} (intent to treat), "
            "a causal estimate"
        )
    else:
        row = _first_row(impact.filter(pl.col("method") == "adjusted"))
        why = (
            f"the randomised holdout experiment is {_hidden(min_users)} in an arm"
            if experiments.height
            else "there is no randomised holdout in this period"
        )
        source = f"the adjusted estimate ({why})"
    v = _value(row, "run_rate_usd")
    low, high = _value(row, "run_rate_ci_low"), _value(row, "run_rate_ci_high")
    figures = {
        "impact_method": _value(row, "method"),
        "impact_experiment_id": _value(row, "experiment_id"),
        "annualised_impact_usd": v,
        "annualised_impact_ci_low": low,
        "annualised_impact_ci_high": high,
    }
    if row is None:
        note = "No downstream impact estimate for this period yet (no complete window)."
        return "no downstream impact estimate yet", note, figures
    if v is None:
        return f"downstream impact {_hidden(min_users)}", f"Downstream impact: {source}.", figures
    interval = f" (95% interval {usd(low)} to {usd(high)})" if None not in (low, high) else ""
    note = (
        f"Downstream impact comes from {source}: incremental revenue per day of the period "
        f"x 365 = {usd(v)} a year{interval}."
    )
    attributed = _value(row, "attributed_revenue_usd")
    if attributed is not None:
        note += (
            f" Last-touch attribution credits {usd(attributed)} to the assistant over the same "
            "days; attributed revenue includes purchases that would have happened anyway."
        )
    return f"downstream impact {usd(v)} a year", note, figures


CAVEAT = (
    "The observed comparison includes self-selection (people who shop more use the assistant "
    "more) and is not the effect of the assistant; the adjusted estimate corrects for "
    "pre-period behaviour, marketplace and channel only; a randomised holdout is the causal "
    "measure."
)


def headline(
    *,
    monthly_segments: pl.DataFrame,
    lift_by_method: pl.DataFrame,
    impact: pl.DataFrame,
    period: ReportPeriod,
    data_start: date,
    window_days: int,
    min_users: int,
) -> Headline:
    """Return the headline of the period from floored frames (segment ``all``)."""
    months = _overall_months(monthly_segments, period)
    users_text, users_figures = _users_clause(months, period, min_users)
    growth_text, growth_note, growth_figures = _growth_clause(months, data_start, min_users)
    lift_text, lift_figures = _lift_clause(lift_by_method, window_days, min_users)
    impact_text, impact_note, impact_figures = _impact_clause(impact, min_users)
    first = f"{users_text}; {growth_text}; {lift_text}; {impact_text}."
    return Headline(
        sentences=[
            first[0].upper() + first[1:],
            f"This year is {period.year}: users are counted from "
            f"{max(date(period.year, 1, 1), data_start).isoformat()} to "
            f"{period.end.isoformat()}. {growth_note}",
            impact_note,
            CAVEAT,
        ],
        figures={
            "period": period.label,
            **users_figures,
            **growth_figures,
            **lift_figures,
            **impact_figures,
        },
    )
