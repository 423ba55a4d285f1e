"""Scheduling that really runs: a real Prefect server with the served deployment, and the OS route
(the systemd unit and the crontab of deploy/, run as written). docs/operations.md, Scheduling.

Nothing is mocked: the Prefect test runs `prefect server start` and `attribution serve` as
processes and asks the server to run the deployment; the OS test runs the commands of the unit
and the crontab with the placeholder install directory /srv/attribution mapped to a temporary one.
Every wait has a timeout, and every process is stopped (its whole process group) in a finally.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Landing, fx_rate, interaction, order, visit

from attribution.run_dates import resolve_run_date
from attribution.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
VENV = Path(sys.prefix)  # the uv environment running the tests
PLACEHOLDER = "/srv/attribution"  # install directory named in every file of deploy/
SERVER_START_TIMEOUT_S = 120
DEPLOYMENT_TIMEOUT_S = 90
RUN_TIMEOUT_S = 240
OS_RUN_TIMEOUT_S = 300


# --- helpers -----------------------------------------------------------------------------------


def _tiny_landing(root: Path, days: list[str]) -> Landing:
    """A landing folder with one visit, one interaction and one order per ``dt=`` day."""
    landing = Landing(root)
    for n, day in enumerate(days):
        landing.csv("visits", "v.csv", [visit(ts=f"{day}T09:00:00Z")], dt=day)
        landing.csv(
            "interactions",
            "i.csv",
            [interaction(event_id=f"e{n}", session_id=f"s{n}", ts=f"{day}T10:00:00Z")],
            dt=day,
        )
        landing.csv("orders", "o.csv", [order(order_id=f"o{n}", ts=f"{day}T11:00:00Z")], dt=day)
    landing.csv("fx_rates", "fx.csv", [fx_rate()])
    return landing


def _base_env(prefect_home: Path) -> dict[str, str]:
    """This process's environment without any Prefect API, with its own PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ATTRIBUTION_"))}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        GX_ANALYTICS_ENABLED="false",
    )
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; also kill what is left of it."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    with suppress(
        ProcessLookupError, PermissionError
    ):  # children (flow-run processes) outliving their leader
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def _process(
    args: list[str], *, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen]:
    """Run ``args`` in its own process group, output to ``log``; always stopped on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            _stop(proc)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_until(
    what: str, check: Callable[[], object], timeout_s: float, proc: subprocess.Popen, log: Path
):
    """Return ``check()`` once truthy; fail with the log if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what}: process exited with {proc.returncode}\n{_tail(log)}")
        result = check()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s} s\n{_tail(log)}")


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class _Phases:
    """Prints seconds since the last phase (shown by pytest -s, or with a failure)."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        print(f"{now - self._last:6.1f} s  {name}")
        self._last = now


def _published_runs(warehouse: Path) -> list[tuple[str, date, str]]:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(
            "SELECT mode, run_date, outcome FROM _runs WHERE outcome = 'succeeded'"
        ).fetchall()
    finally:
        con.close()


# --- the Prefect route -------------------------------------------------------------------------


@pytest.mark.flow
def test_served_deployment_is_scheduled_and_runs_on_a_real_prefect_server(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    day = "2024-02-01"
    landing = _tiny_landing(tmp_path / "landing", [day])
    warehouse, report = tmp_path / "warehouse.duckdb", tmp_path / "report"
    env = _base_env(tmp_path / "prefect-home")
    port = str(_free_port())
    api_url = f"http://127.0.0.1:{port}/api"
    server_env = {**env, "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    server_cmd = [sys.executable, "-m", "prefect", "server", "start"]
    server_cmd += ["--host", "127.0.0.1", "--port", port, "--no-ui"]
    serve_cmd = [str(VENV / "bin" / "attribution"), "serve", "--cron", "0 2 * * *"]
    serve_cmd += ["--timezone", "Europe/Berlin", "--landing", str(landing.root)]
    serve_cmd += ["--warehouse", str(warehouse), "--out", str(report), "--name", "nightly"]
    # The runner polls every 10 s by default; 1 s keeps the test short.
    serve_env = {**env, "PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    phase = _Phases()

    with (
        _process(server_cmd, env=server_env, cwd=tmp_path, log=server_log) as server,
        temporary_settings({PREFECT_API_URL: api_url}),
    ):
        _wait_until(
            "Prefect server health",
            lambda: _healthy(api_url),
            SERVER_START_TIMEOUT_S,
            server,
            server_log,
        )
        phase("server healthy")
        with (
            _process(serve_cmd, env=serve_env, cwd=tmp_path, log=serve_log) as serve,
            get_client(sync_client=True) as client,
        ):

            def deployment():
                try:
                    return client.read_deployment_by_name("attribution-nightly/nightly")
                except Exception:  # ObjectNotFound until serve has registered it
                    return None

            found = _wait_until("deployment", deployment, DEPLOYMENT_TIMEOUT_S, serve, serve_log)
            phase("deployment registered")
            assert [(s.schedule.cron, s.schedule.timezone) for s in found.schedules] == [
                ("0 2 * * *", "Europe/Berlin")
            ]
            assert found.parameters == {
                "landing_dir": str(landing.root),
                "warehouse_path": str(warehouse),
                "report_dir": str(report),
            }
            assert not found.paused

            # The server's scheduler really creates the nightly runs, at 02:00 Berlin time.
            def scheduled():
                runs = client.read_flow_runs(limit=20)
                return [
                    r.expected_start_time
                    for r in runs
                    if r.deployment_id == found.id and r.auto_scheduled
                ]

            starts = _wait_until("scheduled runs", scheduled, 60, serve, serve_log)
            phase("nightly runs scheduled")
            local = [t.astimezone(ZoneInfo("Europe/Berlin")) for t in starts]
            assert {(t.hour, t.minute) for t in local} == {(2, 0)}

            # A run scheduled for 02:00 Berlin on 2024-02-02 that starts (much) later, as a
            # scheduled run does after downtime: no run_date, so it processes the night it was
            # scheduled for (yesterday of its scheduled start), not yesterday of today.
            flow_run = run_deployment(
                "attribution-nightly/nightly",
                parameters={},
                scheduled_time=datetime(2024, 2, 2, 1, 0, tzinfo=UTC),
                timeout=RUN_TIMEOUT_S,
                poll_interval=1,
                as_subflow=False,
            )
            phase("flow run finished")
            assert flow_run.state is not None and flow_run.state.is_completed(), (
                f"{flow_run.state}\n{_tail(serve_log)}"
            )

            # A graceful stop (SIGTERM, as systemd sends) pauses the schedule.
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
            assert client.read_deployment(found.id).paused
            phase("serve stopped, schedule paused")

    assert _published_runs(warehouse) == [("nightly", date(2024, 2, 1), "succeeded")]
    assert (report / "index.html").is_file()


# --- the OS route: deploy/systemd and deploy/cron as written -----------------------------------


def _unit(path: Path) -> dict[str, list[str]]:
    """Return a systemd unit's settings as ``{"Section.Key": [values...]}`` (repeats kept)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def _crontab(path: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Return a crontab's variables and its jobs as (five schedule fields, command)."""
    variables: dict[str, str] = {}
    jobs: list[tuple[str, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assignment = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if assignment:
            variables[assignment[1]] = assignment[2].strip().strip("\"'")
            continue
        fields = line.split(None, 5)
        jobs.append((" ".join(fields[:5]), fields[5]))
    return variables, jobs


def _install(root: Path) -> None:
    """Make ``root`` look like the documented install directory (.venv, logs/, landing/)."""
    (root / ".venv").symlink_to(VENV, target_is_directory=True)
    (root / "logs").mkdir()


def _minimal_env(root: Path) -> dict[str, str]:
    """What cron and systemd give a job before its own variables: PATH, HOME, LANG."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"}


def _days_for_yesterday(timezone: str) -> list[str]:
    """'yesterday' in ``timezone``, and the day after in case midnight passes during the test."""
    yesterday = resolve_run_date("yesterday", timezone)
    return [yesterday.isoformat(), (yesterday + timedelta(days=1)).isoformat()]


@pytest.mark.e2e
def test_os_route_unit_and_crontab_run_yesterday_as_written(tmp_path: Path) -> None:
    service = _unit(DEPLOY / "systemd" / "attribution-nightly.service")
    timer = _unit(DEPLOY / "systemd" / "attribution-nightly.timer")
    variables, jobs = _crontab(DEPLOY / "cron" / "attribution.cron")

    # The documented contract of the files.
    assert service["Service.Type"] == ["oneshot"]
    assert service["Service.WorkingDirectory"] == [PLACEHOLDER]
    exec_start = shlex.split(service["Service.ExecStart"][0])
    expected = [f"{PLACEHOLDER}/.venv/bin/attribution", "run", "--date", "yesterday", "--quiet"]
    assert exec_start == expected
    service_env = dict(v.split("=", 1) for v in service["Service.Environment"])
    assert timer["Timer.Persistent"] == ["true"]
    assert timer["Timer.Unit"] == ["attribution-nightly.service"]
    (on_calendar,) = timer["Timer.OnCalendar"]
    timer_zone = on_calendar.split()[-1]
    assert re.fullmatch(r"\*-\*-\* \d\d:\d\d:\d\d \S+", on_calendar), on_calendar
    ZoneInfo(timer_zone)  # names a time zone
    assert service_env["ATTRIBUTION_SCHEDULE_TIMEZONE"] == timer_zone
    ((schedule, command),) = jobs
    assert schedule == "0 2 * * *"
    assert variables["CRON_TZ"] == variables["ATTRIBUTION_SCHEDULE_TIMEZONE"] == "UTC"
    assert not re.search(r"(?<!\\)%", command), "an unescaped % in a crontab is a newline"
    assert "attribution run --date yesterday --quiet" in command

    if shutil.which("systemd-analyze"):
        calendar = subprocess.run(
            ["systemd-analyze", "calendar", on_calendar],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert calendar.returncode == 0, calendar.stderr
        assert f"Normalized form: {on_calendar}" in calendar.stdout

    # Run both as written, at once, each in its own install directory (placeholder mapped).
    runs: dict[str, tuple[Path, subprocess.Popen, Path]] = {}
    try:
        for route in ("systemd", "cron"):
            root = tmp_path / route
            root.mkdir()
            _install(root)
            zone = service_env["ATTRIBUTION_SCHEDULE_TIMEZONE"] if route == "systemd" else "UTC"
            _tiny_landing(root / "landing", _days_for_yesterday(zone))
            local: Callable[[str], str] = lambda text, root=root: text.replace(  # noqa: E731
                PLACEHOLDER, str(root)
            )
            log = root / "logs" / f"{route}-test.log"
            if route == "systemd":
                env = _minimal_env(root) | {k: local(v) for k, v in service_env.items()}
                args = [local(exec_start[0]), *exec_start[1:]]
                cwd = Path(local(service["Service.WorkingDirectory"][0]))
            else:
                env = _minimal_env(root) | {k: local(v) for k, v in variables.items()}
                args = [env.get("SHELL", "/bin/sh"), "-c", local(command)]
                cwd = root  # cron starts jobs in HOME
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    args,
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            runs[route] = (root, proc, log)
        for route, (root, proc, log) in runs.items():
            try:
                proc.wait(OS_RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{route}: no exit within {OS_RUN_TIMEOUT_S} s\n{_tail(log)}")
            cron_log = root / "logs" / "nightly.log"
            output = _tail(cron_log if route == "cron" else log)
            assert proc.returncode == 0, f"{route}: exit {proc.returncode}\n{output}"
            assert output.strip() == "", f"{route}: --quiet printed\n{output}"
            ((mode, run_date, _),) = _published_runs(root / "warehouse.duckdb")
            assert mode == "nightly"
            assert run_date.isoformat() in _days_for_yesterday("UTC")
            assert (root / "report" / "index.html").is_file()
    finally:
        for _root, proc, _log in runs.values():
            _stop(proc, grace_s=5)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_units_verify_with_the_install_directory_in_place(tmp_path: Path) -> None:
    _install(tmp_path)
    for unit in (DEPLOY / "systemd").iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace(PLACEHOLDER, str(tmp_path)))
    units = [*sorted(tmp_path.glob("*.service")), tmp_path / "attribution-nightly.timer"]
    verify = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr


def test_serve_unit_runs_after_and_requires_the_prefect_server() -> None:
    serve = _unit(DEPLOY / "systemd" / "attribution-serve.service")
    server = _unit(DEPLOY / "systemd" / "prefect-server.service")
    assert serve["Unit.Requires"] == serve["Unit.After"] == ["prefect-server.service"]
    assert serve["Service.Restart"] == ["always"]
    args = shlex.split(serve["Service.ExecStart"][0])
    assert args[:2] == [f"{PLACEHOLDER}/.venv/bin/attribution", "serve"]
    assert args[args.index("--cron") + 1] == "0 2 * * *"
    assert args[args.index("--timezone") + 1] == "UTC"
    server_args = shlex.split(server["Service.ExecStart"][0])
    assert server_args[1:3] == ["server", "start"]
    url = f"http://{server_args[server_args.index('--host') + 1]}:"
    url += f"{server_args[server_args.index('--port') + 1]}/api"
    assert f"PREFECT_API_URL={url}" in serve["Service.Environment"]


def test_attribution_serve_without_a_prefect_api_url_exits_2_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    env = _base_env(tmp_path / "prefect-home")  # no PREFECT_API_URL
    done = subprocess.run(
        [str(VENV / "bin" / "attribution"), "serve", "--cron", "0 2 * * *"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "PREFECT_API_URL is not set" in message
    assert "prefect server start" in message
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()  # no temporary server started


# --- pure: what `attribution serve` refuses up front -------------------------------------------


def test_serve_refuses_without_a_prefect_api_url() -> None:
    from flows.serve import check_serve_preconditions

    message = check_serve_preconditions(api_url=None, cron="0 2 * * *", timezone="UTC")
    assert message is not None
    assert "PREFECT_API_URL is not set" in message
    assert "prefect server start" in message
    assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in message
    assert "temporary server" in message


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("61 2 * * *", "is not valid"),
        ("0 2 * *", "has 4 fields; use five"),
        ("0 0 2 * * *", "has 6 fields; use five"),
        ("H 2 * * *", "is not valid"),
    ],
)
def test_serve_refuses_a_bad_cron_expression(cron: str, expected: str) -> None:
    from flows.serve import check_serve_preconditions

    message = check_serve_preconditions(api_url="http://x/api", cron=cron, timezone="UTC")
    assert message is not None and expected in message and "'0 2 * * *'" in message


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "europe/berlin", "", "+02:00"])
def test_serve_refuses_an_unknown_time_zone(timezone: str) -> None:
    from flows.serve import check_serve_preconditions

    message = check_serve_preconditions(api_url="http://x/api", cron="0 2 * * *", timezone=timezone)
    assert message == (
        f"time zone {timezone!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)"
    )


def test_serve_accepts_a_good_set_up() -> None:
    from flows.serve import check_serve_preconditions, deployment_name

    for cron, timezone in [("0 2 * * *", "UTC"), ("30 1 * * MON-FRI", "Europe/Berlin")]:
        assert (
            check_serve_preconditions(
                api_url="http://127.0.0.1:4200/api", cron=cron, timezone=timezone
            )
            is None
        )
    assert deployment_name("nightly") == "attribution-nightly/nightly"
