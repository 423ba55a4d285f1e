"""The nightly command line: `run --date yesterday --quiet` for cron, backfill, bad dates,
progress lines off a terminal and progress bars on one."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Landing, interaction, order, visit
from rich.console import Console
from typer.testing import CliRunner

from attribution.cli import app
from attribution.cli_progress import PlainReporter, RichReporter
from attribution.run_dates import resolve_run_date
from attribution.warehouse import connect


@pytest.fixture
def yesterday_landing(landing: Landing) -> tuple[Landing, date]:
    day = datetime.now(UTC).date() - timedelta(days=1)
    for d in (day - timedelta(days=1), day):
        ts = f"{d}T10:00:00Z"
        landing.csv("visits", "v.csv", [visit(ts=ts)], dt=str(d))
        landing.csv("interactions", "i.csv", [interaction(event_id=f"e{d}", ts=ts)], dt=str(d))
        landing.csv("orders", "o.csv", [order(order_id=f"o{d}", ts=f"{d}T11:00:00Z")], dt=str(d))
    return landing, day


def _args(landing: Landing, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--landing",
        str(landing.root),
        "--warehouse",
        str(tmp_path / "w.duckdb"),
        "--no-report",
        "--no-expectations",
        *extra,
    ]


def test_run_date_yesterday_quiet_prints_nothing_and_loads_only_that_day(
    yesterday_landing: tuple[Landing, date], tmp_path: Path
) -> None:
    landing, day = yesterday_landing
    result = CliRunner().invoke(
        app, ["run", "--date", "yesterday", "--quiet", *_args(landing, tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == ""
    con = connect(tmp_path / "w.duckdb", read_only=True)
    assert con.execute("SELECT mode, run_date, outcome FROM _runs").fetchall() == [
        ("nightly", day, "succeeded")
    ]
    assert con.execute("SELECT count(*) FROM raw_orders").fetchall() == [(1,)]
    con.close()


def test_backfill_command_loads_the_range_and_reports_progress_lines(
    yesterday_landing: tuple[Landing, date], tmp_path: Path
) -> None:
    landing, day = yesterday_landing
    first = day - timedelta(days=1)
    result = CliRunner().invoke(
        app, ["backfill", "--start", str(first), "--end", str(day), *_args(landing, tmp_path)]
    )
    assert result.exit_code == 0, result.output
    # off a terminal: one line per finished stage, then the outcome
    for stage in ("ingest:", "sessions:", "attribution:", "lift:", "kpi:", "gate: passed"):
        assert stage in result.output, stage
    assert f"window {first} .. {day}" in result.output
    con = connect(tmp_path / "w.duckdb", read_only=True)
    assert con.execute("SELECT mode, first_date, last_date FROM _runs").fetchall() == [
        ("backfill", first, day)
    ]
    con.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--date", "last tuesday"], "use YYYY-MM-DD, 'yesterday' or 'today'"),
        (["backfill", "--start", "2024-02-05", "--end", "2024-02-01"], "is before --start"),
    ],
)
def test_bad_dates_are_clear_errors(landing: Landing, tmp_path: Path, args, message) -> None:
    landing.root.mkdir(parents=True, exist_ok=True)
    result = CliRunner().invoke(app, [*args, *_args(landing, tmp_path)])
    assert result.exit_code == 2 and message in result.output


def test_resolve_run_date_reads_yesterday_in_the_schedule_time_zone() -> None:
    late_utc = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # already 11 March in Berlin
    assert resolve_run_date("yesterday", "UTC", now=late_utc) == date(2026, 3, 9)
    assert resolve_run_date("yesterday", "Europe/Berlin", now=late_utc) == date(2026, 3, 10)
    assert resolve_run_date(None, "UTC", now=late_utc) == date(2026, 3, 9)
    assert resolve_run_date("today", "UTC", now=late_utc) == date(2026, 3, 10)
    assert resolve_run_date("2024-02-01") == date(2024, 2, 1)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        resolve_run_date("02/01/2024")


def test_progress_bars_on_a_terminal_and_plain_lines_off_one() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    with RichReporter(console) as bars:
        bars.start("ingest", 2)
        bars.advance("ingest", "a.csv (loaded)")
        bars.advance("ingest", "b.csv (loaded)")
        bars.finish("ingest", "2 rows read")
        bars.note("Ingest run r1")
    drawn = screen.getvalue()
    assert "ingest" in drawn and "2/2" in drawn and "Ingest run r1" in drawn

    lines: list[str] = []
    plain = PlainReporter(lines.append)
    plain.start("ingest", 2)
    plain.advance("ingest", "a.csv (loaded)")
    plain.finish("ingest", "2 rows read")
    plain.note("done")
    assert lines == ["ingest: 2 rows read", "done"]
