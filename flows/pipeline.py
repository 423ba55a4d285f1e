"""Thin Prefect flow around the library pipeline: one task per run, a markdown artifact summary."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from attribution.config import load_settings
from attribution.pipeline import run_pipeline


@task(name="run-pipeline")
def run_pipeline_task(
    landing_dir: str, warehouse_path: str, run_date: date | None, expectations: bool
) -> dict[str, Any]:
    """Run ingest, expectations, models and audits; return the JSON summary."""
    settings = load_settings(landing_dir=landing_dir, warehouse_path=warehouse_path)
    summary = run_pipeline(
        settings,
        landing_dir=Path(landing_dir),
        warehouse_path=Path(warehouse_path),
        run_date=run_date,
        expectations=expectations,
    )
    return summary.as_json()


def summary_markdown(summary: dict[str, Any]) -> str:
    """Return the run summary as a small markdown table for the Prefect UI."""
    rows = [
        ("outcome", summary["outcome"]),
        ("window", f"{summary['start_date']} .. {summary['end_date']}"),
        *[(f"ingest {k}", f"{v:,}") for k, v in summary["ingest"].items()],
        *[(f"rows {k}", f"{v:,}") for k, v in summary["model_rows"].items() if v is not None],
        ("expectations", summary["expectations"]),
        ("audits failing", str(sum(1 for n in summary["audits"].values() if n))),
    ]
    body = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"# Run {summary['run_id']}\n\n| item | value |\n|---|---|\n{body}\n"


@flow(name="attribution-pipeline")
def pipeline_flow(
    landing_dir: str,
    warehouse_path: str,
    run_date: date | None = None,
    expectations: bool = True,
) -> dict[str, Any]:
    """Run the whole pipeline for a landing folder (everything, or the nightly increment)."""
    summary = run_pipeline_task(landing_dir, warehouse_path, run_date, expectations)
    create_markdown_artifact(
        key="attribution-run-summary",
        markdown=summary_markdown(summary),
        description="Attribution pipeline run summary",
    )
    return summary
