"""One warehouse for the report tests, built once per test session by the real pipeline.

Generated data: 300 users over 430 days from 2025-06-01 (more than a year, so that July 2026 has
a year-over-year comparison; the last day, 2026-08-04, lies well before the run time). Small
groups fall below the default privacy floor (50 users), large ones do not: both paths are used.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from attribution.config import Settings
from attribution.generate import generate_landing
from attribution.pipeline import run_pipeline

USERS, DAYS, START = 300, 430, date(2025, 6, 1)


def generated_warehouse(
    factory: pytest.TempPathFactory, name: str, *, users: int, days: int, seed: int, start: date
) -> Path:
    """Return the session's warehouse ``name`` of generated data, building it on first use.

    The real pipeline runs (expectations off) into a temporary file that is renamed when done, so
    an interrupted build is never taken for a finished one.
    """
    root = factory.getbasetemp() / name
    path = root / "warehouse.duckdb"
    if path.is_file():
        return path
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    landing = root / "landing"
    generate_landing(
        landing, users=users, days=days, seed=seed, start_date=start, settings=Settings()
    )
    building = root / "building.duckdb"
    run_pipeline(Settings(), landing_dir=landing, warehouse_path=building, expectations=False)
    building.rename(path)
    return path


def report_warehouse(factory: pytest.TempPathFactory) -> Path:
    """Return the session's report warehouse, building it on first use."""
    return generated_warehouse(
        factory, "report-warehouse", users=USERS, days=DAYS, seed=3, start=START
    )


def chromium_or_skip() -> str:
    """Return a Chromium binary; skip without one locally, fail without one in CI (CI=true)."""
    from attribution.exports import find_chromium

    found = find_chromium()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs Chromium for the PNG and browser tests: apt-get install chromium")
        pytest.skip("no Chromium installed (apt-get install chromium)")
    return found
