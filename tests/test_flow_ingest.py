"""The Prefect flow around ingest + expectations (runs under the Prefect test harness)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import Landing, interaction, order

from attribution.ingest import IngestError

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def test_ingest_flow_loads_validates_and_summarises(landing: Landing, tmp_path: Path) -> None:
    from flows.ingest import ingest_flow

    landing.csv(
        "interactions",
        "a.csv",
        [interaction(), interaction(event_id="e2", channel="x")],
        dt="2024-02-01",
    )
    landing.csv("interactions", "a.csv", [interaction(event_id="later")], dt="2024-02-02")
    landing.jsonl("orders", "o.jsonl", [order()], dt="2024-02-01")
    warehouse = tmp_path / "wh" / "warehouse.duckdb"

    summary = ingest_flow(str(landing.root), str(warehouse), run_date=date(2024, 2, 1))

    json.dumps(summary)  # JSON-serialisable
    assert summary["totals"]["rows_read"] == 3
    assert summary["totals"]["rows_loaded"] == 2
    assert summary["totals"]["quarantined"] == 1
    assert summary["rules"] == {"invalid_channel": 1}
    assert summary["expectations"]["success"] is True
    index = Path(summary["expectations"]["data_docs_index"])
    assert index == warehouse.parent.resolve() / "data_docs" / "index.html"
    assert index.is_file()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT event_id FROM raw_interactions").fetchall() == [("e1",)]
        assert con.execute("SELECT count(*) FROM raw_orders").fetchone() == (1,)
        (run_id,) = con.execute("SELECT DISTINCT _run_id FROM raw_interactions").fetchone()
    assert run_id == summary["run_id"]


def test_ingest_flow_fails_on_an_unreadable_file_without_retrying(
    landing: Landing, tmp_path: Path
) -> None:
    from flows.ingest import ingest_flow

    landing.bytes("visits", "broken.csv.gz", b"not gzip")
    warehouse = tmp_path / "warehouse.duckdb"
    with pytest.raises(IngestError, match=r"visits/broken\.csv\.gz"):
        ingest_flow(str(landing.root), str(warehouse))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # One attempt only: a data error is not retried.
        assert con.execute("SELECT status, count(*) FROM _ingest_files GROUP BY 1").fetchall() == [
            ("failed", 1)
        ]


def test_retry_condition_retries_transient_errors_only() -> None:
    from prefect.states import Failed

    from attribution.expectations import ExpectationsFailed, ExpectationsResult
    from attribution.pipeline import GateFailed
    from flows.retry import retry_unless_data_error

    def retried(exc: BaseException) -> bool:
        return retry_unless_data_error(None, None, Failed(data=exc))

    assert retried(OSError("disk hiccup"))
    assert retried(duckdb.IOException("Could not set lock on file"))
    assert not retried(IngestError("a.csv: missing required column(s) ts"))
    assert not retried(ExpectationsFailed(ExpectationsResult(run_id="r")))
    assert not retried(GateFailed(["audits found offending rows: x (1)"]))
