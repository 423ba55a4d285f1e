"""Settings: defaults, precedence (CLI > env > attribution.toml > pyproject), validation."""

import pytest
from pydantic import ValidationError

from attribution.config import Settings, load_settings


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("ATTRIBUTION_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults():
    s = load_settings()
    assert s.windows_days == (1, 7, 14, 30)
    assert s.half_life_days == 7
    assert s.session_timeout_minutes == 30
    assert s.reporting_currency == "USD"
    assert s.marketplaces["IN"] == "INR" and len(s.marketplaces) == 8
    assert s.kpi_window_days == 7


def test_precedence_pyproject_toml_env_cli(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.attribution]\nhalf_life_days = 3\nwindows_days = [2, 5]\n"
        "session_timeout_minutes = 10\n"
    )
    assert load_settings().windows_days == (2, 5)
    (tmp_path / "attribution.toml").write_text("half_life_days = 4\nwindows_days = [9]\n")
    assert (load_settings().half_life_days, load_settings().windows_days) == (4, (9,))
    # attribution.toml replaces the pyproject table whole
    assert load_settings().session_timeout_minutes == 30
    monkeypatch.setenv("ATTRIBUTION_HALF_LIFE_DAYS", "5")
    monkeypatch.setenv("ATTRIBUTION_WINDOWS_DAYS", "30,1")
    assert (load_settings().half_life_days, load_settings().windows_days) == (5, (1, 30))
    assert load_settings(half_life_days=6, windows_days=None).half_life_days == 6


def test_settings_are_frozen_and_validated():
    s = load_settings()
    with pytest.raises(ValidationError):
        s.half_life_days = 1  # type: ignore[misc]
    for bad in (
        {"windows_days": [0]},
        {"half_life_days": 0},
        {"reporting_currency": "EUR"},
        {"marketplaces": {"US": "dollars"}},
        {"no_such_setting": 1},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)


def test_settings_hash_tracks_meaning_not_paths():
    base = load_settings()
    assert load_settings(warehouse_path="elsewhere.duckdb").settings_hash() == base.settings_hash()
    assert load_settings(half_life_days=3).settings_hash() != base.settings_hash()
    # the privacy floor, PNGs and the schedule change no table: no restatement when they change
    for operational in (
        {"privacy_min_users": 10},
        {"report_png": "never"},
        {"schedule_cron": "30 3 * * *", "schedule_timezone": "Europe/Berlin"},
    ):
        assert load_settings(**operational).settings_hash() == base.settings_hash()


def test_schedule_timezone_must_be_an_iana_zone():
    with pytest.raises(ValidationError, match="IANA time zone"):
        load_settings(schedule_timezone="Mars/Base")


def test_duckdb_limits_are_operational_and_validated(monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_DUCKDB_MEMORY_LIMIT", "3GB")
    monkeypatch.setenv("ATTRIBUTION_DUCKDB_THREADS", "1")
    limited = load_settings()
    assert limited.duckdb_memory_limit == "3GB" and limited.duckdb_threads == 1
    # resource limits change no number: the settings hash ignores them
    assert limited.settings_hash() == Settings().settings_hash()
    for bad in ("lots", "3 parsecs", "1GB'; DROP TABLE x; --"):
        with pytest.raises(ValidationError):
            Settings(duckdb_memory_limit=bad)
    with pytest.raises(ValidationError):
        Settings(duckdb_threads=0)


def test_connect_applies_the_limits_and_refuses_a_bad_size(tmp_path):
    from attribution.warehouse import connect

    con = connect(tmp_path / "w.duckdb", memory_limit="1GB", threads=1)
    limit, threads = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')"
    ).fetchall()[0]
    con.close()
    assert limit.endswith("MiB") and 900 <= float(limit.split()[0]) <= 1000  # 1 GB = 953.6 MiB
    assert threads == 1
    with pytest.raises(ValueError, match="not a size"):
        connect(tmp_path / "w.duckdb", memory_limit="1GB'; SELECT 1; --")


def test_pipeline_connections_use_the_configured_limits(tmp_path, monkeypatch):
    from attribution import pipeline

    seen = {}

    def fake_connect(path, **limits):
        seen.update(limits)
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline, "connect", fake_connect)
    run = pipeline.PipelineRun(
        Settings(duckdb_memory_limit="2GB", duckdb_threads=2),
        landing_dir=tmp_path / "landing",
        warehouse_path=tmp_path / "w.duckdb",
    )
    with pytest.raises(RuntimeError, match="stop here"), run._connection():
        pass
    assert seen == {"memory_limit": "2GB", "threads": 2}
