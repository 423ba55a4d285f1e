"""Many nights in a row over a long history (the CI-sized version of benchmarks/bench_nights.py):
after 60 days and 10 nightly runs the tables equal a full rebuild of the 70 days, and what a night
restates (recorded in ``_runs``: each model's window and rows written) does not grow with the
history: bounded by the lateness of the data and the windows, far below the 60 days built."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

from warehouse_diff import table_changes

from attribution.config import Settings
from attribution.pipeline import run_pipeline
from attribution.warehouse import connect, models

SETTINGS = Settings(windows_days=(1, 7), report_png="never")
FIRST = date(2026, 9, 1)
HISTORY, NIGHTS = 60, 10
# a night restates at most: the generator's latest order update (16 days after the order) plus
# the largest window and the session day before; whole months for the monthly KPI model
MAX_RESTATED_DAYS = 16 + 7 + 2
DAILY_INCREMENTAL = [m.name for m in models() if m.materialized == "incremental" and not m.by_month]


def run(landing: Path, warehouse: Path, first: date, last: date) -> None:
    dates = {"run_date": first} if first == last else {"start_date": first, "end_date": last}
    summary = run_pipeline(
        SETTINGS, landing_dir=landing, warehouse_path=warehouse, expectations=False, **dates
    )
    assert summary.published


def test_ten_nights_after_sixty_days_equal_a_rebuild_and_restate_a_bounded_window(
    tmp_path: Path,
) -> None:
    from attribution.generate import generate_landing

    landing, nightly, rebuilt = tmp_path / "landing", tmp_path / "n.duckdb", tmp_path / "r.duckdb"
    generate_landing(
        landing, users=200, days=HISTORY + NIGHTS, seed=7, start_date=FIRST, settings=SETTINGS
    )
    nights = [FIRST + timedelta(days=HISTORY + i) for i in range(NIGHTS)]
    run(landing, nightly, FIRST, nights[0] - timedelta(days=1))
    for night in nights:
        run(landing, nightly, night, night)
    run(landing, rebuilt, FIRST, nights[-1])

    assert table_changes(rebuilt, nightly) == {}
    con = connect(nightly, read_only=True)
    recorded = con.execute(
        "SELECT run_date, model_windows, model_rows, window_reason FROM _runs "
        "WHERE mode = 'nightly' ORDER BY run_date"
    ).fetchall()
    table_rows = {
        name: con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
        for name in DAILY_INCREMENTAL
    }
    con.close()
    assert [r[0] for r in recorded] == nights
    for night, windows, rows, reason in recorded:
        windows, rows = json.loads(windows), json.loads(rows)
        # the Python lift stage kept the published rows of the settled day/week/month periods
        # (the tables still equal the rebuild's, above): nothing after the lift's window
        kept = re.search(
            r"lift kept the day/week/month periods through (\S+) \(([\d,]+) of", reason
        )
        assert kept and int(kept.group(2).replace(",", "")) > 0, (night, reason)
        assert date.fromisoformat(kept.group(1)) < date.fromisoformat(
            windows["fct_conversion_lift"][0]
        ), night
        for name in DAILY_INCREMENTAL:
            if windows[name] is None:
                continue
            first, last = (date.fromisoformat(d) for d in windows[name])
            assert last == night and (last - first).days < MAX_RESTATED_DAYS, (night, name)
            # a bounded window writes a bounded share of the table (a full restatement: all)
            assert rows[name] < table_rows[name] / 2, (night, name, rows[name])
        month = date.fromisoformat(windows["kpi_monthly_segments"][0])
        assert month >= (night - timedelta(days=MAX_RESTATED_DAYS)).replace(day=1), night
