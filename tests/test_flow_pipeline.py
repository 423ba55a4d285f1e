"""The whole pipeline as a Prefect flow (under the Prefect test harness)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Landing, fx_rate, interaction, order, visit

from attribution.warehouse import connect

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def test_pipeline_flow_builds_every_table_and_records_the_run(
    landing: Landing, tmp_path: Path
) -> None:
    from flows.pipeline import pipeline_flow

    landing.csv("visits", "v.csv", [visit()], dt="2024-02-01")
    landing.csv("interactions", "i.csv", [interaction()], dt="2024-02-01")
    landing.csv("orders", "o.csv", [order()], dt="2024-02-01")
    landing.csv("fx_rates", "fx.csv", [fx_rate()])
    warehouse = tmp_path / "warehouse.duckdb"

    summary = pipeline_flow(str(landing.root), str(warehouse), expectations=False)

    json.dumps(summary)  # artifacts and flow results must be JSON-serialisable
    assert summary["outcome"] == "succeeded"
    assert summary["start_date"] == "2024-02-01"
    con = connect(warehouse, read_only=True)
    assert con.execute(
        "SELECT session_id, scope, window_days, last_touch FROM fct_attribution "
        "WHERE window_days = 1 ORDER BY scope"
    ).fetchall() == [("s1", "product", 1, 1.0), ("s1", "user", 1, 1.0)]
    assert con.execute("SELECT outcome FROM _runs").fetchall() == [("succeeded",)]
    con.close()
