"""Serve the nightly flow as a scheduled Prefect deployment: ``attribution serve``.

A Prefect schedule only fires when two long-running processes exist: a Prefect server
(``prefect server start``; its scheduler service creates the flow runs) and this serve process
(it polls the server and executes the runs). A temporary server, the one Prefect starts by
itself when ``PREFECT_API_URL`` is not set, cannot schedule anything, so serving refuses to start
without ``PREFECT_API_URL``. The OS alternative (cron or a systemd timer calling
``attribution run --date yesterday``) needs neither. Set-up for both: ``docs/operations.md``
("Scheduling") and ``deploy/``.

Thin on purpose: it checks the inputs, then hands the real flow (``flows.nightly.nightly``) to
``Flow.serve``. No business logic lives here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEPLOYMENT_FLOW_NAME = "attribution-nightly"
API_URL_EXAMPLE = "http://127.0.0.1:4200/api"
API_WAIT_SECONDS = 60.0

_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


class _Configured:
    """Marker: read the API URL from Prefect's settings."""


CONFIGURED = _Configured()


class ServeError(RuntimeError):
    """``attribution serve`` cannot start; the message says why and what to do (print it)."""


def deployment_name(name: str = "nightly") -> str:
    """Return the full deployment name, ``"attribution-nightly/<name>"``."""
    return f"{DEPLOYMENT_FLOW_NAME}/{name}"


def check_serve_preconditions(
    *, cron: str, timezone: str, api_url: str | _Configured | None = CONFIGURED
) -> str | None:
    """Return a readable error if serving cannot produce a real nightly schedule, else None.

    ``api_url`` is the Prefect API URL to check (None or "" = not set); by default the one
    configured for this process (``PREFECT_API_URL``, from the environment or the Prefect
    profile). Pure when ``api_url`` is given.

    >>> check_serve_preconditions(api_url=API_URL_EXAMPLE, cron="0 2 * * *", timezone="UTC")
    >>> check_serve_preconditions(api_url=None, cron="0 2 * * *", timezone="UTC").split(":")[0]
    'PREFECT_API_URL is not set'
    """
    if isinstance(api_url, _Configured):
        api_url = configured_api_url()
    if not api_url:
        return (
            "PREFECT_API_URL is not set: a schedule needs a long-running Prefect server. Start one "
            "with `prefect server start` (or the prefect-server systemd unit in deploy/), then "
            f"`export PREFECT_API_URL={API_URL_EXAMPLE}` and run `attribution serve` again. "
            "Without it Prefect would start a temporary server, which cannot schedule flows. "
            "Without any Prefect server, use cron or a systemd timer calling "
            "`attribution run --date yesterday` (docs/operations.md, Scheduling)."
        )
    if not api_url.startswith(("http://", "https://")):
        return f"PREFECT_API_URL={api_url!r} is not an http(s) URL (e.g. {API_URL_EXAMPLE})"
    return cron_error(cron) or timezone_error(timezone)


def configured_api_url() -> str | None:
    """Return the ``PREFECT_API_URL`` this process would use (environment or profile)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def cron_error(cron: str) -> str | None:
    """Return why ``cron`` is not a five-field cron expression Prefect accepts, else None."""
    from prefect.schedules import validate_cron_string

    fields = cron.split()
    if len(fields) != len(_CRON_FIELDS):
        return (
            f"cron expression {cron!r} has {len(fields)} fields; use five "
            f"({', '.join(_CRON_FIELDS)}), e.g. '0 2 * * *' for 02:00 every day"
        )
    try:
        validate_cron_string(cron)
    except ValueError as exc:
        return (
            f"cron expression {cron!r} is not valid ({exc}); fields are "
            f"{', '.join(_CRON_FIELDS)}, e.g. '0 2 * * *' for 02:00 every day"
        )
    return None


def timezone_error(timezone: str) -> str | None:
    """Return why ``timezone`` is not an IANA time zone known to Python and Prefect, else None."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    hint = f"time zone {timezone!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return hint
    try:  # the server validates against its own list: fail here, not at deployment time
        CronSchedule(cron="0 2 * * *", timezone=timezone)
    except ValidationError:
        return f"{hint}; Prefect does not accept it"
    return None


def serve_nightly(
    *,
    cron: str,
    timezone: str,
    landing_dir: str,
    warehouse_path: str,
    report_dir: str,
    name: str = "nightly",
) -> None:
    """Serve ``attribution-nightly/<name>`` on ``cron`` in ``timezone``; block until stopped.

    Each scheduled run gets the paths as parameters and ``run_date`` None, so it processes
    'yesterday' in ``timezone`` (exported as ``ATTRIBUTION_SCHEDULE_TIMEZONE`` to the runs).
    Runs never overlap (one DuckDB writer). On SIGTERM/Ctrl-C the schedule is paused and its
    pending runs are deleted; the next start resumes it.

    Raises ``ServeError`` (message ready to print) when PREFECT_API_URL is unset, the server
    does not answer within ``API_WAIT_SECONDS``, or the cron expression or time zone is invalid.
    """
    api_url = configured_api_url()
    problem = check_serve_preconditions(api_url=api_url, cron=cron, timezone=timezone)
    if problem:
        raise ServeError(problem)
    _wait_for_api(api_url, API_WAIT_SECONDS)

    from flows.nightly import nightly

    _serve(
        nightly,
        cron=cron,
        timezone=timezone,
        parameters={
            "landing_dir": str(Path(landing_dir).resolve()),
            "warehouse_path": str(Path(warehouse_path).resolve()),
            "report_dir": str(Path(report_dir).resolve()),
        },
        name=name,
    )


def _wait_for_api(api_url: str, timeout_s: float) -> None:
    """Return once the Prefect API answers its health check; ServeError after ``timeout_s``."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    error: Exception | None = None
    with get_client(sync_client=True) as client:
        while True:
            error = client.api_healthcheck()
            if error is None:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(2.0)
    raise ServeError(
        f"the Prefect API at {api_url} does not answer ({type(error).__name__}: {error}) after "
        f"{timeout_s:.0f} s: is `prefect server start` running there? "
        "(`curl <PREFECT_API_URL>/health` should print true)"
    )


def _serve(flow, *, cron: str, timezone: str, parameters: dict[str, str], name: str) -> None:
    """Serve ``flow`` with an explicit-time-zone cron schedule (split out for stand-in flows)."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    # 'yesterday' in the runs (run_date None) must mean the schedule's calendar day: the runs
    # execute in child processes that read settings from this environment.
    os.environ["ATTRIBUTION_SCHEDULE_TIMEZONE"] = timezone
    flow.serve(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters=parameters,
        description=f"Nightly attribution run at '{cron}' ({timezone}) for the previous day.",
        tags=["attribution", "nightly"],
        limit=1,  # DuckDB allows one writer: never two runs at once
        pause_on_shutdown=True,
        print_starting_message=True,
        entrypoint_type=EntrypointType.MODULE_PATH,  # flows.nightly.nightly, from any cwd
    )
