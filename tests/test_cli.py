"""The CLI answers --help without heavy imports and reports errors in one readable line."""

import subprocess
import sys

from typer.testing import CliRunner

from attribution.cli import app


def test_help_imports_no_heavy_module():
    code = (
        "import sys, attribution.cli as c\n"
        "heavy = [m for m in ('prefect', 'great_expectations', 'duckdb', 'polars', 'plotly') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "attribution.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    for command in (
        "generate",
        "run",
        "backfill",
        "serve",
        "report",
        "demo",
        "explain",
        "lift",
        "notebooks",
    ):
        assert command in done.stdout


def test_missing_landing_and_warehouse_are_clear_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--landing", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "Landing folder not found" in result.output
    result = runner.invoke(app, ["report", "--warehouse", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "Warehouse not found" in result.output


def test_demo_refuses_to_replace_a_foreign_warehouse(tmp_path):
    import duckdb

    foreign = tmp_path / "mine.duckdb"
    duckdb.connect(str(foreign)).close()
    result = CliRunner().invoke(app, ["demo", "--warehouse", str(foreign)])
    assert result.exit_code == 2 and "was not made by `attribution demo`" in result.output
    assert foreign.exists()


def test_failed_run_is_one_readable_line(tmp_path):
    landing = tmp_path / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "broken.csv.gz").write_bytes(b"not gzip at all")
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--landing",
            str(tmp_path / "landing"),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--quiet",
            "--no-expectations",
        ],
    )
    assert result.exit_code == 1
    assert "Run failed: IngestError" in result.output and "broken.csv.gz" in result.output
