"""One warehouse for the analyst-API and notebook tests, built once per test session.

Generated data: 1500 users over 45 days from 2026-03-02, seed 11, run by the real pipeline
(expectations off). The generator switches the assistant from shopbot-v1 to shopbot-v2 over a
7-day ramp starting at 45% of the period, each session drawing its version from the day's ramp
share, and plants no difference between the versions.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from report_warehouse import generated_warehouse

USERS, DAYS, SEED, START = 1500, 45, 11, date(2026, 3, 2)


def notebook_warehouse(factory: pytest.TempPathFactory) -> Path:
    """Return the session's notebook warehouse, building it on first use."""
    return generated_warehouse(
        factory, "notebook-warehouse", users=USERS, days=DAYS, seed=SEED, start=START
    )
