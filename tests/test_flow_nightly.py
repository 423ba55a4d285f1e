"""The nightly and backfill Prefect flows under the Prefect test harness.

Nights, a rerun, backfill = full, a failed gate that fails the flow with a readable reason and
keeps the last good tables and report, the run's artifacts, which tasks retry.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from conftest import Landing
from digests import differing_tables, warehouse_digests
from test_nightly import DAYS, late_return_landing

from attribution.pipeline import run_pipeline

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def paths(landing: Landing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    late_return_landing(landing)
    # the flows read settings like the CLI: windows from the environment
    monkeypatch.setenv("ATTRIBUTION_WINDOWS_DAYS", "1,7")
    monkeypatch.setenv("ATTRIBUTION_PRIVACY_MIN_USERS", "1")
    monkeypatch.setenv("ATTRIBUTION_REPORT_PNG", "never")
    return {
        "landing_dir": str(landing.root),
        "warehouse_path": str(tmp_path / "w.duckdb"),
        "report_dir": str(tmp_path / "report"),
    }


def _flow_run_tasks(state) -> dict[str, int]:
    """Return run_count per task name (without the run suffix) of a finished flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    return {run.name.rsplit("-", 1)[0]: run.run_count for run in runs}


def _latest_artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return found[0] if found else None


def test_nightly_flow_publishes_tables_report_and_artifacts(paths: dict[str, str]) -> None:
    from flows.nightly import nightly

    for day in DAYS[:3]:
        summary = nightly(run_date=day.isoformat(), expectations=day == DAYS[0], **paths)
        assert summary["outcome"] == "succeeded" and summary["published"]
    assert summary["end_date"] == "2024-02-03"
    assert summary["expectations"] == "skipped"
    page = Path(paths["report_dir"]) / "index.html"
    assert page.is_file()

    markdown = _latest_artifact("attribution-run")
    assert markdown is not None
    assert "| gate | passed |" in markdown.data and "## Rows per stage" in markdown.data
    assert "| kpi |" in markdown.data and summary["run_id"] in markdown.data
    assert "## Headline" in markdown.data and "used the assistant this year" in markdown.data
    link = _latest_artifact("attribution-report")
    assert link is not None and page.resolve().as_uri() in link.data

    before = warehouse_digests(paths["warehouse_path"])
    rerun = nightly(run_date=DAYS[2].isoformat(), expectations=False, **paths)
    assert rerun["published"] and rerun["ingest"]["files_loaded"] == 0
    assert differing_tables(before, warehouse_digests(paths["warehouse_path"])) == []


def test_backfill_flow_equals_a_full_run(paths: dict[str, str], tmp_path: Path) -> None:
    from attribution.config import Settings
    from flows.nightly import backfill

    summary = backfill(
        start=DAYS[0].isoformat(), end=DAYS[-1].isoformat(), expectations=False, **paths
    )
    assert summary["mode"] == "backfill" and summary["outcome"] == "succeeded"
    full = tmp_path / "full.duckdb"
    run_pipeline(
        Settings(windows_days=(1, 7)),
        landing_dir=Path(paths["landing_dir"]),
        warehouse_path=full,
        expectations=False,
    )
    assert (
        differing_tables(warehouse_digests(full), warehouse_digests(paths["warehouse_path"])) == []
    )


def test_failed_gate_fails_the_flow_and_keeps_the_last_good_report(paths: dict[str, str]) -> None:
    from flows.nightly import nightly

    for day in DAYS[:11]:
        nightly(run_date=day.isoformat(), expectations=False, **paths)
    page = Path(paths["report_dir"]) / "index.html"
    good_report = page.read_bytes()
    good_tables = warehouse_digests(paths["warehouse_path"])

    state = nightly(
        run_date=date(2024, 2, 12).isoformat(), expectations=False, return_state=True, **paths
    )

    assert state.is_failed()
    assert "publishing gate failed" in state.message and "order_lines_missing_fx" in state.message
    assert page.read_bytes() == good_report
    changed = differing_tables(good_tables, warehouse_digests(paths["warehouse_path"]))
    assert [t for t in changed if not t.startswith(("raw_", "stg_"))] == []
    tasks = _flow_run_tasks(state)
    assert tasks["build-gate-publish"] == 1  # a gate failure is not retried
    assert "write-report" not in tasks
    markdown = _latest_artifact("attribution-run")
    assert "| gate | failed |" in markdown.data and "order_lines_missing_fx" in markdown.data


def test_file_touching_tasks_retry_and_pure_steps_do_not() -> None:
    from flows.pipeline import (
        build_gate_publish,
        ingest_partitions,
        record_run,
        run_markdown,
        write_report,
    )

    for touching in (ingest_partitions, build_gate_publish, write_report, record_run):
        assert touching.retries >= 1, touching.name
        assert touching.retry_condition_fn is not None
    assert not run_markdown.retries
