"""Prefect 3 flow: landing folder -> raw tables + quarantine -> Great Expectations.

A thin wrapper: every task calls ``attribution.ingest`` / ``attribution.expectations``.
The file-touching tasks retry twice on transient errors (I/O, a locked warehouse) but not on
data errors (``IngestError``, ``ExpectationsFailed``), which would fail the same way again.
Retrying the load is safe: each file is committed on its own and a file whose bytes were already
loaded is skipped. Docs: ``docs/ingest.md``.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, get_run_logger, task

from attribution.config import load_settings
from attribution.expectations import default_data_docs_dir, validate_loaded_batches
from attribution.ingest import ensure_raw_schema, ingest_landing
from flows.retry import retry_unless_data_error


def _run_id() -> str:
    from prefect.runtime import flow_run

    run = flow_run.get_id()
    return str(run) if run else uuid.uuid4().hex


@task(
    name="load-landing",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_unless_data_error,
)
def load_landing(
    landing_dir: str, warehouse_path: str, run_id: str, run_date: date | None
) -> dict[str, Any]:
    """Ingest the landing folder into the warehouse (file-touching)."""
    settings = load_settings()
    Path(warehouse_path).parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(warehouse_path) as con:
        ensure_raw_schema(con)
        result = ingest_landing(con, Path(landing_dir), settings, run_id=run_id, run_date=run_date)
    logger = get_run_logger()
    for line in result.lines():
        logger.info(line)
    return result.to_dict()


@task(
    name="validate-batches",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_unless_data_error,
)
def validate_batches(warehouse_path: str, run_id: str) -> dict[str, Any]:
    """Great Expectations over the run's batches; writes Data Docs (file-touching)."""
    settings = load_settings()
    docs_dir = default_data_docs_dir(settings, Path(warehouse_path))
    with duckdb.connect(warehouse_path) as con:
        result = validate_loaded_batches(con, run_id, settings, docs_dir)
    logger = get_run_logger()
    for line in result.lines():
        logger.info(line)
    return result.to_dict()


@task(name="summarise")
def summarise(ingest: dict[str, Any], expectations: dict[str, Any]) -> dict[str, Any]:
    """Pure step: the flow's JSON-serialisable summary."""
    return {
        "run_id": ingest["run_id"],
        "run_date": ingest["run_date"],
        "totals": ingest["totals"],
        "rules": ingest["rules"],
        "files": [
            {
                k: f[k]
                for k in (
                    "source",
                    "file",
                    "rows_read",
                    "rows_loaded",
                    "duplicates",
                    "quarantined",
                    "status",
                )
            }
            for f in ingest["files"]
        ],
        "warnings": ingest["warnings"],
        "expectations": {
            "success": expectations["success"],
            "batches": expectations["batches"],
            "data_docs_index": expectations["data_docs_index"],
        },
    }


@flow(name="ingest")
def ingest_flow(
    landing_dir: str, warehouse_path: str, run_date: date | None = None
) -> dict[str, Any]:
    """Load ``landing_dir`` (only ``dt=run_date`` partitions plus undated files when a date is
    given) into the DuckDB warehouse at ``warehouse_path`` and validate what was loaded."""
    run_id = _run_id()
    ingest = load_landing(landing_dir, warehouse_path, run_id, run_date)
    expectations = validate_batches(warehouse_path, run_id)
    return summarise(ingest, expectations)


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(ingest_flow(sys.argv[1], sys.argv[2]), indent=2))
