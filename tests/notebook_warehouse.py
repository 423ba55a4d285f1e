"""One warehouse for the analyst-API and notebook tests, built once per test session.

Generated data: 1500 users over 45 days from 2026-03-02, seed 11, run by the real pipeline
(expectations off). The generator switches the assistant from shopbot-v1 to shopbot-v2 over a
7-day ramp starting at 45% of the period, each session drawing its version from the day's ramp
share, and plants no difference between the versions.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from attribution.config import Settings
from attribution.generate import generate_landing
from attribution.pipeline import run_pipeline

USERS, DAYS, SEED, START = 1500, 45, 11, date(2026, 3, 2)


def notebook_warehouse(factory: pytest.TempPathFactory) -> Path:
    """Return the session's notebook warehouse, building it on first use."""
    root = factory.getbasetemp() / "notebook-warehouse"
    path = root / "warehouse.duckdb"
    if path.is_file():
        return path
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    landing = root / "landing"
    generate_landing(
        landing, users=USERS, days=DAYS, seed=SEED, start_date=START, settings=Settings()
    )
    building = root / "building.duckdb"
    run_pipeline(Settings(), landing_dir=landing, warehouse_path=building, expectations=False)
    building.rename(path)
    return path
