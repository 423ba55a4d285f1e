"""Run dates as people and schedulers write them: ``YYYY-MM-DD``, ``yesterday`` or ``today``.

A nightly run processes one UTC landing partition (``dt=YYYY-MM-DD``). ``yesterday`` and
``today`` are read in the schedule's time zone (``schedule_timezone``, default UTC), so a cron
entry at 02:00 Europe/Berlin asks for the Berlin calendar's previous day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

RELATIVE_DAYS: dict[str, int] = {"today": 0, "yesterday": 1}


def resolve_run_date(
    value: str | date | None, timezone: str = "UTC", *, now: datetime | None = None
) -> date:
    """Return the run date meant by ``value`` (None = yesterday) in ``timezone``.

    Raises ``ValueError`` with the accepted forms for anything else.
    """
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = "yesterday" if value is None else str(value).strip().lower()
    if text in RELATIVE_DAYS:
        moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
        return moment.date() - timedelta(days=RELATIVE_DAYS[text])
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"run date {value!r}: use YYYY-MM-DD, 'yesterday' or 'today'") from None


def date_range(start: date, end: date) -> list[date]:
    """Return every date from ``start`` to ``end``, both inclusive (empty if end < start)."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
