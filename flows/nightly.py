"""The nightly and backfill flows: the same stages over one day's or a range's partitions.

``nightly(run_date)`` ingests that day's landing partitions, rebuilds only what the new rows can
change (``attribution.pipeline.plan_build_window``), runs the publishing gate, publishes the
tables and the report. ``backfill(start, end)`` does the same over a range of partitions. A run
date is ``YYYY-MM-DD``, ``yesterday`` or ``today`` (in ``schedule_timezone``); None means
yesterday, which is what the served deployment's scheduled runs use: the day before the run's
*scheduled* start, so a run that starts late (a busy worker, a restart) still processes the night
it was scheduled for.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from attribution.config import Settings, load_settings
from attribution.run_dates import resolve_run_date
from flows.pipeline import make_run, run_stages


def scheduled_start() -> datetime | None:
    """Return this flow run's scheduled start time (now for a run started by hand)."""
    moment = flow_run.scheduled_start_time
    return moment if isinstance(moment, datetime) else None


@flow(name="attribution-nightly")
def nightly(
    run_date: str | None = None,
    landing_dir: str | None = None,
    warehouse_path: str | None = None,
    report_dir: str | None = None,
    expectations: bool = True,
) -> dict[str, Any]:
    """Ingest one day's partitions, rebuild what they change, gate, publish tables and report."""
    settings = load_settings(
        landing_dir=landing_dir, warehouse_path=warehouse_path, report_dir=report_dir
    )
    day = resolve_run_date(run_date, settings.schedule_timezone, now=scheduled_start())
    return _publish_partitions(settings, "nightly", day, day, expectations)


@flow(name="attribution-backfill")
def backfill(
    start: str,
    end: str,
    landing_dir: str | None = None,
    warehouse_path: str | None = None,
    report_dir: str | None = None,
    expectations: bool = True,
) -> dict[str, Any]:
    """Ingest the partitions of [start, end] and rebuild, gate and publish as nightly does."""
    settings = load_settings(
        landing_dir=landing_dir, warehouse_path=warehouse_path, report_dir=report_dir
    )
    first = resolve_run_date(start, settings.schedule_timezone)
    last = resolve_run_date(end, settings.schedule_timezone)
    return _publish_partitions(settings, "backfill", first, last, expectations)


def _publish_partitions(
    settings: Settings, mode: str, first: date, last: date, expectations: bool
) -> dict[str, Any]:
    """Run the stages over the partitions [first, last], report included; return the summary."""
    run = make_run(
        settings,
        mode=mode,
        first_date=first,
        last_date=last,
        expectations=expectations,
        report=True,
    )
    return run_stages(run)
