"""Exports, manifest, PNG images and the atomic publish of the report folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pytest
from report_warehouse import chromium_or_skip, report_warehouse

import attribution.exports as exports
import attribution.report as report
from attribution.charts import CHARTS
from attribution.config import Settings
from attribution.publish_dir import exchange_paths, staged_directory
from attribution.report import floored_tables, write_report
from attribution.report_data import TABLE_FLOORS, read_report_frames
from attribution.report_period import parse_period
from attribution.warehouse import connect

SETTINGS = Settings(report_png="never")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return report_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def published(warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "report"
    return out, write_report(warehouse, out, SETTINGS, period="2026")


@pytest.fixture(scope="module")
def floored(warehouse) -> dict[str, pl.DataFrame]:
    con = connect(warehouse, read_only=True)
    try:
        frames = read_report_frames(con, SETTINGS, parse_period("2026"))
    finally:
        con.close()
    return {name: f.frame for name, f in floored_tables(frames, 50).items()}


def test_every_table_is_exported_as_csv_and_parquet(published):
    out, result = published
    names = {p.name for p in result.exports}
    for table in TABLE_FLOORS:
        assert {f"{table}.csv", f"{table}.parquet"} <= names
    assert all(p.is_file() and p.parent == out / "data" for p in result.exports)


def test_parquet_reads_back_equal_with_types(published, floored):
    out, _ = published
    for name, frame in floored.items():
        back = pl.read_parquet(out / "data" / f"{name}.parquet")
        assert back.schema == frame.schema, name
        assert back.equals(frame, null_equal=True), name


def test_csv_reads_back_equal(published, floored):
    out, _ = published
    for name, frame in floored.items():
        back = pl.read_csv(out / "data" / f"{name}.csv", schema=frame.schema)
        assert back.equals(frame, null_equal=True), name


def test_exports_cover_the_period_only(published):
    out, _ = published
    days = pl.read_parquet(out / "data" / "kpi_daily_segments.parquet")["date"]
    months = pl.read_parquet(out / "data" / "kpi_monthly.parquet")["month"]
    assert days.dt.year().unique().to_list() == [2026]
    assert months.dt.year().unique().to_list() == [2026]
    lift = pl.read_parquet(out / "data" / "lift_by_method.parquet")
    assert set(lift["period_grain"]) == {"year"}


def test_manifest_lists_files_rows_and_suppressed_cells(published, floored):
    out, result = published
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["period"] == "2026" and manifest["privacy_min_users"] == 50
    assert manifest["settings_hash"] == SETTINGS.settings_hash()
    assert manifest["charts"] == list(CHARTS)
    assert manifest["headline"] == result.headline
    for name, entry in manifest["tables"].items():
        assert entry["rows"] == floored[name].height
        assert entry["suppressed_cells"] == result.suppressed_cells[name]
        assert (out / entry["csv"]).is_file() and (out / entry["parquet"]).is_file()
    assert manifest["images"] == [] and "never" in manifest["png_note"]


# --- atomic publish -----------------------------------------------------------------------------


def test_a_failure_half_way_leaves_the_previous_report_untouched(warehouse, tmp_path, monkeypatch):
    out = tmp_path / "report"
    write_report(warehouse, out, SETTINGS, period="2026-03")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def exports_then_fail(*args, **kwargs):
        raise OSError("disk full (simulated) after the exports were written")

    monkeypatch.setattr(report, "write_chart_images", exports_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(warehouse, out, SETTINGS, period="2026")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging folder left


def test_publishing_replaces_the_whole_folder(warehouse, tmp_path):
    out = tmp_path / "report"
    write_report(warehouse, out, SETTINGS, period="2026")
    (out / "data" / "stale.csv").write_text("old")
    write_report(warehouse, out, SETTINGS, period="2026-03")
    assert not (out / "data" / "stale.csv").exists()
    assert json.loads((out / "manifest.json").read_text())["period"] == "2026-03"


def test_a_folder_that_is_not_a_report_is_never_replaced(warehouse, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="not a report folder"):
        write_report(warehouse, out, SETTINGS)
    assert (out / "notes.txt").read_text() == "precious"


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not exchange_paths(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


@pytest.mark.parametrize("exchange", [True, False])
def test_staged_directory_swaps_in_and_cleans_up(tmp_path, monkeypatch, exchange):
    import attribution.publish_dir as publish_dir

    if not exchange:  # the two-rename fallback
        monkeypatch.setattr(publish_dir, "exchange_paths", lambda *_: False)
    target = tmp_path / "site"
    target.mkdir()
    (target / "old").write_text("old")
    with staged_directory(target) as staging:
        (staging / "new").write_text("new")
        assert not (target / "new").exists()  # nothing visible before the swap
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


# --- PNG images -------------------------------------------------------------------------------


def test_png_images_of_every_chart_in_one_batch(warehouse, tmp_path, capsys):
    chromium_or_skip()
    started = time.perf_counter()
    result = write_report(warehouse, tmp_path / "png", Settings(report_png="always"))
    total = time.perf_counter() - started
    assert [p.name for p in result.images] == [f"{c}.png" for c in CHARTS]
    for path in result.images:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    assert result.png_note is None
    with capsys.disabled():
        print(
            f"\nPNG batch: {len(result.images)} images in {result.png_seconds:.1f} s "
            f"(report {total:.1f} s, HTML {result.html_bytes:,} bytes)"
        )


def test_without_chromium_auto_skips_with_a_note_and_always_fails(warehouse, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "find_chromium", lambda: None)
    result = write_report(warehouse, tmp_path / "auto", Settings(report_png="auto"))
    assert result.images == [] and "apt-get install" in result.png_note
    assert "apt-get install" in result.index_html.read_text(encoding="utf-8")
    with pytest.raises(exports.ChromiumNotFound, match="apt-get install"):
        write_report(warehouse, tmp_path / "always", Settings(report_png="always"))
    assert not (tmp_path / "always").exists()


def test_browser_path_points_at_the_binary(monkeypatch, tmp_path):
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(fake))
    assert exports.find_chromium() == str(fake)
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "missing"))
    assert exports.find_chromium() != str(tmp_path / "missing")


def test_a_report_folder_of_the_earlier_layout_is_replaced(warehouse, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text("<html>old</html>")
    (out / "kpi_daily.csv").write_text("date\n")
    write_report(warehouse, out, SETTINGS, period="2026-03")
    assert not (out / "kpi_daily.csv").exists() and (out / "manifest.json").is_file()
