"""Thin Prefect flows around the library pipeline: one task per stage, artifacts for the run.

Every task calls one ``attribution.pipeline.PipelineRun`` stage, the same code the CLI runs.
Tasks that touch files (ingest, build-and-publish, report, record) retry on transient errors
(I/O, a locked warehouse) and never on data or gate errors (``flows.retry``): the build is one
transaction, so a retried build starts from the last published state. The pure step (the
run's markdown summary) does not retry. ``nightly`` and ``backfill`` are in ``flows.nightly``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from attribution.config import Settings, load_settings
from attribution.pipeline import PipelineRun
from attribution.progress import SilentReporter
from flows.retry import retry_unless_data_error

ARTIFACT_KEY = "attribution-run"
REPORT_ARTIFACT_KEY = "attribution-report"
_RETRY = {"retry_delay_seconds": 2, "retry_condition_fn": retry_unless_data_error}


class LoggerReporter(SilentReporter):
    """Sends the pipeline's progress to the Prefect run logger (one line per finished stage)."""

    def finish(self, stage: str, detail: str = "") -> None:
        get_run_logger().info("%s: %s", stage, detail)

    def note(self, message: str) -> None:
        get_run_logger().info("%s", message)


@task(name="ingest-partitions", retries=2, cache_policy=NO_CACHE, **_RETRY)
def ingest_partitions(run: PipelineRun) -> dict[str, Any]:
    """Load the run's landing partitions into the warehouse (file-touching)."""
    return run.ingest()


@task(name="build-gate-publish", retries=1, cache_policy=NO_CACHE, **_RETRY)
def build_gate_publish(run: PipelineRun) -> dict[str, Any]:
    """Rebuild what the new data changes, run the gate, publish by committing (file-touching)."""
    return run.build()


@task(name="write-report", retries=2, cache_policy=NO_CACHE, **_RETRY)
def write_report(run: PipelineRun) -> dict[str, Any]:
    """Write the report and exports, swapped into place atomically (file-touching)."""
    return run.report()


@task(name="record-run", retries=2, cache_policy=NO_CACHE, **_RETRY)
def record_run(run: PipelineRun) -> None:
    """Write the run's row into ``_runs`` (file-touching)."""
    run.record()


@task(name="summarise-run")
def run_markdown(summary: dict[str, Any]) -> str:
    """Pure step: the run as markdown (headline KPIs, rows per stage, gate, report)."""
    return summary_markdown(summary)


def summary_markdown(summary: dict[str, Any]) -> str:
    """Return the run summary as markdown for the Prefect UI."""
    report = summary.get("report") or {}
    lines = [
        f"# {summary['mode'].capitalize()} run {summary['run_id']}: {summary['outcome']}",
        "",
    ]
    if summary.get("message"):
        lines += [f"> {summary['message']}", ""]
    headline = report.get("headline") or []
    if headline:
        lines += ["## Headline", "", *[f"- {sentence}" for sentence in headline], ""]
    lines += [
        "## Run",
        "",
        "| item | value |",
        "|---|---|",
        f"| partitions | {summary['first_date'] or 'all'} .. {summary['last_date'] or 'all'} |",
        f"| window rebuilt | {summary['start_date']} .. {summary['end_date']} |",
        f"| why | {summary['window_reason']} |",
        f"| gate | {summary['gate']} |",
        f"| published | {'yes' if summary['published'] else 'no'} |",
        f"| expectations | {summary['expectations']} |",
        f"| report | {report.get('index_html', 'not written')} |",
        f"| suppressed cells (privacy floor) | {report.get('suppressed_cells', '-')} |",
        f"| settings hash | {summary['settings_hash']} |",
        f"| code version | {summary['code_version']} |",
        "",
        "## Rows per stage",
        "",
        "| stage | rows in | rows out | seconds |",
        "|---|---:|---:|---:|",
    ]
    for stage, figures in summary["stages"].items():
        lines.append(
            f"| {stage} | {figures['rows_in']:,} | {figures['rows_out']:,} | "
            f"{figures['seconds']:.1f} |"
        )
    ingest = summary.get("ingest") or {}
    if ingest:
        lines += [
            "",
            f"Ingest: {ingest.get('files', 0):,} files, {ingest.get('rows_read', 0):,} rows read, "
            f"{ingest.get('rows_loaded', 0):,} loaded, {ingest.get('duplicates', 0):,} "
            f"duplicates, {ingest.get('quarantined', 0):,} quarantined.",
        ]
    failing = {k: v for k, v in (summary.get("audits") or {}).items() if v}
    if failing:
        lines += ["", "Failing audits: " + ", ".join(f"{k} ({v})" for k, v in failing.items())]
    return "\n".join(lines) + "\n"


def _publish_artifacts(summary: dict[str, Any]) -> None:
    create_markdown_artifact(
        markdown=run_markdown(summary),
        key=ARTIFACT_KEY,
        description=f"attribution {summary['mode']} run summary",
    )
    index = (summary.get("report") or {}).get("index_html")
    if index:
        create_link_artifact(
            link=Path(index).resolve().as_uri(),
            link_text="KPI report",
            key=REPORT_ARTIFACT_KEY,
            description="The published KPI report (offline HTML)",
        )


def run_stages(run: PipelineRun) -> dict[str, Any]:
    """Run the stages as tasks, record the run, publish the artifacts; return the summary.

    Re-raises the first failure (after recording it) so that the flow run fails with it.
    """
    try:
        ingest_partitions(run)
        build_gate_publish(run)
        if run.report_dir is not None and run.summary.published:
            write_report(run)
        run.succeed()
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        record_run(run)
        _publish_artifacts(run.summary.as_json())
    return run.summary.as_json()


def make_run(
    settings: Settings,
    *,
    mode: str,
    first_date: date | None,
    last_date: date | None,
    expectations: bool,
    report: bool,
) -> PipelineRun:
    """Return a PipelineRun for a flow: paths from the settings, progress to the run logger."""
    return PipelineRun(
        settings,
        landing_dir=settings.landing_dir,
        warehouse_path=settings.warehouse_path,
        mode=mode,
        first_date=first_date,
        last_date=last_date,
        report_dir=settings.report_dir if report else None,
        expectations=expectations,
        progress=LoggerReporter(),
    )


@task(name="spark-build", cache_policy=NO_CACHE)
def spark_build(settings: Settings, lake: str, spark_master: str) -> dict[str, Any]:
    """Ingest (DuckDB), then every model on Spark into the lake (no retry: a full rebuild)."""
    from attribution.spark_engine import not_produced_lines, run_spark_pipeline

    summary = run_spark_pipeline(
        settings,
        landing_dir=settings.landing_dir,
        warehouse_path=settings.warehouse_path,
        lake=lake,
        master=spark_master,
        progress=get_run_logger().info,
    )
    for line in not_produced_lines(summary["spark"]) if "spark" in summary else []:
        get_run_logger().warning("%s", line)
    return summary


@flow(name="attribution-pipeline")
def pipeline_flow(
    landing_dir: str,
    warehouse_path: str,
    run_date: date | None = None,
    expectations: bool = True,
    report_dir: str | None = None,
    engine: str = "duckdb",
    lake: str | None = None,
    spark_master: str = "local[2]",
) -> dict[str, Any]:
    """Run the pipeline for a landing folder: everything, or the nightly increment of a date.

    ``engine="spark"`` (with ``lake``): a full build on Spark into the lake (docs/spark.md).
    """
    settings = load_settings(
        landing_dir=landing_dir, warehouse_path=warehouse_path, report_dir=report_dir
    )
    if engine == "spark":
        if lake is None or run_date is not None:
            raise ValueError("the spark engine needs a lake and builds every day (no run_date)")
        summary = spark_build(settings, lake, spark_master)
        _publish_artifacts(summary)
        return summary
    if engine != "duckdb":
        raise ValueError(f"engine {engine!r}: use duckdb or spark")
    run = make_run(
        settings,
        mode="nightly" if run_date else "full",
        first_date=run_date,
        last_date=run_date,
        expectations=expectations,
        report=report_dir is not None,
    )
    return run_stages(run)
