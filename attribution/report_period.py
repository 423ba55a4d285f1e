"""The period a report covers: ``all``, a calendar year ``YYYY`` or a month ``YYYY-MM``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

ACCEPTED_FORMS = "'all' (all loaded data), 'YYYY' (a calendar year) or 'YYYY-MM' (a month)"

# fct_conversion_lift.period_grain of the lift rows that cover each kind of period
LIFT_GRAIN: dict[str, str] = {"all": "all", "year": "year", "month": "month"}


@dataclass(frozen=True)
class PeriodSpec:
    """A requested period before it meets the data: its kind and calendar bounds (None = open)."""

    label: str
    kind: str  # all | year | month
    first_day: date | None
    last_day: date | None

    @property
    def lift_grain(self) -> str:
        """Return the ``period_grain`` of the lift rows for this period."""
        return LIFT_GRAIN[self.kind]


@dataclass(frozen=True)
class ReportPeriod:
    """A period clipped to the loaded data: [start, end] both inclusive."""

    spec: PeriodSpec
    start: date
    end: date

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def first_month(self) -> date:
        return self.start.replace(day=1)

    @property
    def last_month(self) -> date:
        return self.end.replace(day=1)

    @property
    def year(self) -> int:
        """Return 'this year' of the report: the calendar year of the period's end."""
        return self.end.year

    def describe(self) -> str:
        """Return a readable description such as ``2026 (2026-01-01 to 2026-08-04)``."""
        name = "all loaded data" if self.spec.kind == "all" else self.spec.label
        return f"{name} ({self.start.isoformat()} to {self.end.isoformat()})"


def month_end(first: date) -> date:
    """Return the last day of the month that starts on ``first``."""
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def parse_period(text: str) -> PeriodSpec:
    """Return the PeriodSpec of ``all``, ``YYYY`` or ``YYYY-MM``; anything else is a ValueError."""
    value = text.strip()
    if value == "all":
        return PeriodSpec("all", "all", None, None)
    if re.fullmatch(r"\d{4}", value):
        year = int(value)
        if year >= 1:
            return PeriodSpec(value, "year", date(year, 1, 1), date(year, 12, 31))
    match = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if match and 1 <= int(match.group(2)) <= 12 and int(match.group(1)) >= 1:
        first = date(int(match.group(1)), int(match.group(2)), 1)
        return PeriodSpec(value, "month", first, month_end(first))
    raise ValueError(f"period {text!r} is not valid: use {ACCEPTED_FORMS}")


def clip_period(spec: PeriodSpec, data_start: date, data_end: date) -> ReportPeriod:
    """Return the period clipped to the loaded days [data_start, data_end].

    Raises ValueError when the period holds no loaded day.
    """
    start = max(spec.first_day or data_start, data_start)
    end = min(spec.last_day or data_end, data_end)
    if start > end:
        raise ValueError(
            f"period {spec.label} holds no data: the warehouse covers {data_start.isoformat()} "
            f"to {data_end.isoformat()}"
        )
    return ReportPeriod(spec, start, end)
