"""Great Expectations suites over the batches loaded by one ingest run.

Docs: ``docs/ingest.md`` ("Great Expectations"). The per-row contract rules live in
``attribution.ingest`` and check every row; this module is a second, independent look at what
actually landed in the raw tables: each source's batch of the run (``_run_id = run_id``) is
exported to pandas (GX 1.x has no DuckDB or polars source) and validated with a suite built from
the contract and the settings. Expectations are ``critical`` (a failure raises
``ExpectationsFailed``) or ``warning`` (reported only). Data Docs HTML is written under
``data_docs_dir``.

Great Expectations is imported lazily inside the functions that use it (about 3 s).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from attribution.config import ARMS, CHANNELS, EVENT_TYPES, ORDER_STATUSES, Settings
from attribution.contract import SOURCES, Source

__all__ = [
    "DATA_DOCS_SITE",
    "BatchValidation",
    "ExpectationOutcome",
    "ExpectationsFailed",
    "ExpectationsResult",
    "default_data_docs_dir",
    "validate_loaded_batches",
]

DATA_DOCS_SITE = "attribution_ingest"
RESULTS_SUBDIR = "_results"  # validation results (JSON) under data_docs_dir
CRITICAL = "critical"
WARNING = "warning"
_EXAMPLES = 5


@dataclass
class ExpectationOutcome:
    """One expectation's result on one batch."""

    source: str
    expectation: str  # e.g. "expect_column_values_to_be_in_set(channel)"
    severity: str  # critical | warning
    success: bool
    unexpected_count: int | None = None
    examples: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class BatchValidation:
    """The validation of one source's batch."""

    source: str
    rows_in_batch: int
    rows_validated: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return self.rows_validated < self.rows_in_batch

    @property
    def success(self) -> bool:
        return not any(o.severity == CRITICAL and not o.success for o in self.outcomes)


@dataclass
class ExpectationsResult:
    """All batches of one run."""

    run_id: str
    batches: list[BatchValidation] = field(default_factory=list)
    data_docs_index: Path | None = None
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return all(b.success for b in self.batches)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for b in self.batches for o in b.outcomes if not o.success]

    @property
    def critical_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.failures if o.severity == CRITICAL]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.failures if o.severity == WARNING]

    def summary_line(self) -> str:
        """One line, e.g. ``passed: 2 batches, 31 expectations, 1 warning``."""
        if not self.batches:
            return "skipped: no rows loaded in this run"
        n = sum(len(b.outcomes) for b in self.batches)
        verdict = "passed" if self.success else "FAILED"
        text = f"{verdict}: {len(self.batches)} batches, {n} expectations"
        if self.critical_failures:
            text += f", {len(self.critical_failures)} critical failures"
        text += f", {len(self.warnings)} warning{'' if len(self.warnings) == 1 else 's'}"
        if self.data_docs_index:
            text += f" (Data Docs: {self.data_docs_index})"
        return text

    def lines(self) -> list[str]:
        out = [f"Expectations for run {self.run_id} ({self.seconds:.1f} s)"]
        if not self.batches:
            out.append("no rows loaded in this run: nothing to validate")
        for b in self.batches:
            passed = sum(o.success for o in b.outcomes)
            sample = f", sample of {b.rows_validated}" if b.sampled else ""
            verdict = "ok" if b.success else "FAILED"
            out.append(
                f"{b.source}: {b.rows_in_batch} rows{sample}: "
                f"{passed}/{len(b.outcomes)} expectations passed: {verdict}"
            )
        for o in self.failures:
            out.append("  " + _describe(o))
        if self.data_docs_index:
            out.append(f"Data Docs: {self.data_docs_index}")
        return out

    def render(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict:
        """JSON-serialisable summary."""
        return {
            "run_id": self.run_id,
            "success": self.success,
            "seconds": round(self.seconds, 3),
            "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None,
            "batches": [
                {
                    "source": b.source,
                    "rows_in_batch": b.rows_in_batch,
                    "rows_validated": b.rows_validated,
                    "success": b.success,
                    "expectations": len(b.outcomes),
                    "failed": [asdict(o) for o in b.outcomes if not o.success],
                }
                for b in self.batches
            ],
        }


class ExpectationsFailed(RuntimeError):
    """At least one critical expectation failed; ``result`` holds the details."""

    def __init__(self, result: ExpectationsResult) -> None:
        self.result = result
        failed = result.critical_failures
        lines = [f"{len(failed)} critical expectation(s) failed in run {result.run_id}:"]
        lines += ["  " + _describe(o) for o in failed]
        if result.data_docs_index:
            lines.append(f"Data Docs: {result.data_docs_index}")
        super().__init__("\n".join(lines))


def _describe(o: ExpectationOutcome) -> str:
    what = f"[{o.severity}] {o.source}: {o.expectation}"
    if o.error:
        return f"{what}: error {o.error}"
    count = f"{o.unexpected_count} unexpected" if o.unexpected_count is not None else "failed"
    examples = f" (e.g. {', '.join(o.examples)})" if o.examples else ""
    return f"{what}: {count}{examples}"


def default_data_docs_dir(settings: Settings, warehouse_path: Path) -> Path:
    """settings.data_docs_dir, else ``data_docs`` beside the warehouse file."""
    if settings.data_docs_dir is not None:
        return Path(settings.data_docs_dir)
    return Path(warehouse_path).resolve().parent / "data_docs"


# --------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------


def _suite_spec(source: Source, settings: Settings) -> list[tuple[str, dict[str, Any], str]]:
    """(GX expectation class name, kwargs, severity) for one source."""
    spec: list[tuple[str, dict[str, Any], str]] = []
    for column in source.required_columns:
        spec.append(("ExpectColumnValuesToNotBeNull", {"column": column}, CRITICAL))
    if source.corrections:
        pass  # a batch may hold a key's delivery and its correction (staging keeps the latest)
    elif len(source.key) == 1:
        spec.append(("ExpectColumnValuesToBeUnique", {"column": source.key[0]}, CRITICAL))
    else:
        spec.append(
            ("ExpectCompoundColumnsToBeUnique", {"column_list": list(source.key)}, CRITICAL)
        )
    value_sets = {
        "marketplace": sorted(settings.marketplaces),
        "channel": list(CHANNELS),
        "event_type": list(EVENT_TYPES),
        "status": list(ORDER_STATUSES),
        "arm": list(ARMS),
    }
    for column, values in value_sets.items():
        if column in source.column_names:
            spec.append(
                ("ExpectColumnValuesToBeInSet", {"column": column, "value_set": values}, CRITICAL)
            )
    between = "ExpectColumnValuesToBeBetween"
    if source.name == "interactions":
        spec.append(
            (
                "ExpectColumnValueLengthsToBeBetween",
                {"column": "event_id", "min_value": 1, "max_value": 256},
                WARNING,
            )
        )
        spec.append(
            ("ExpectColumnValuesToNotBeNull", {"column": "model_version", "mostly": 0.95}, WARNING)
        )
    if source.name == "orders":
        known = sorted({*settings.currencies, settings.reporting_currency})
        spec += [
            (between, {"column": "quantity", "min_value": 1}, CRITICAL),
            (between, {"column": "amount", "min_value": 0}, CRITICAL),
            ("ExpectColumnValuesToBeInSet", {"column": "currency", "value_set": known}, CRITICAL),
            (
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "updated_at", "column_B": "ts", "or_equal": True},
                CRITICAL,
            ),
            (
                "ExpectColumnPairValuesToBeInSet",
                {
                    "column_A": "marketplace",
                    "column_B": "currency",
                    "value_pairs_set": sorted(settings.marketplaces.items()),
                },
                WARNING,
            ),
            (between, {"column": "quantity", "max_value": 1000}, WARNING),
        ]
    if source.name == "fx_rates":
        spec += [
            (between, {"column": "rate_to_usd", "min_value": 0, "strict_min": True}, CRITICAL),
            (between, {"column": "rate_to_usd", "min_value": 1e-6, "max_value": 1e4}, WARNING),
        ]
    if source.name == "assignments":
        spec.append(
            (
                "ExpectColumnDistinctValuesToContainSet",
                {"column": "arm", "value_set": list(ARMS)},
                WARNING,
            )
        )
    return spec


def _batch_sql(source: Source, limit: int | None) -> str:
    """SELECT of the run's batch; list columns as JSON text, decimals as DOUBLE for pandas."""
    cols = []
    for col in source.columns:
        name = f'"{col.name}"'
        typ = col.duckdb_type.upper()
        if typ.endswith("[]"):
            cols.append(f"CAST(to_json({name}) AS VARCHAR) AS {name}")
        elif typ.startswith("DECIMAL"):
            cols.append(f"CAST({name} AS DOUBLE) AS {name}")
        else:
            cols.append(name)
    sql = f"SELECT {', '.join(cols)} FROM {source.raw_table} WHERE list_contains($run_ids, _run_id)"
    if limit is not None:
        # Deterministic sample: the rows with the smallest hash of (file, row).
        sql += f" ORDER BY hash(_file, _row), _file, _row LIMIT {int(limit)}"
    return sql


def _quiet_gx() -> None:
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    # GX imports pyspark when it is installed (for the Spark engine); pyspark then warns about
    # pandas 3 on stderr, which a --quiet cron run must not print (stack-notes: the warning
    # only concerns pyspark's pandas conversions, which the Spark engine does not use)
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )


def validate_loaded_batches(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    settings: Settings,
    data_docs_dir: Path,
    *,
    batch_run_ids: Sequence[str] | None = None,
) -> ExpectationsResult:
    """Validate every source batch loaded in ``run_id``; write Data Docs; raise on critical.

    ``batch_run_ids`` widens the batch to the rows of several loads (the pipeline's gate passes
    every load not yet covered by a published build, so a batch that failed once is checked again
    until it is fixed); the results are named after ``run_id``.

    A batch larger than ``settings.expectations_max_rows`` is validated on a deterministic
    sample of that many rows (smallest ``hash(_file, _row)``).
    """
    started = time.perf_counter()
    result = ExpectationsResult(run_id=run_id)
    run_ids = list(batch_run_ids) if batch_run_ids is not None else [run_id]
    batches: list[tuple[Source, int, Any]] = []
    for source in SOURCES.values():
        row = con.execute(
            f"SELECT count(*) FROM {source.raw_table} WHERE list_contains($run_ids, _run_id)",
            {"run_ids": run_ids},
        ).fetchone()
        n = int(row[0]) if row else 0
        if n == 0:
            continue
        limit = settings.expectations_max_rows if n > settings.expectations_max_rows else None
        frame = con.execute(_batch_sql(source, limit), {"run_ids": run_ids}).df()
        batches.append((source, n, frame))
    if not batches:
        result.seconds = time.perf_counter() - started
        return result

    _quiet_gx()
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    docs_dir = Path(data_docs_dir).resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    # Everything in memory except the validation results, kept under data_docs_dir/_results so
    # that the Data Docs index lists earlier runs too (the site drops pages without a result).
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir / RESULTS_SUBDIR),
        },
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={
            DATA_DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    datasource = context.data_sources.add_pandas("warehouse")
    gx_run_id = RunIdentifier(run_name=run_id, run_time=datetime.now(UTC))

    for source, n, frame in batches:
        asset = datasource.add_dataframe_asset(source.raw_table)
        batch_definition = asset.add_batch_definition_whole_dataframe(f"run {run_id}")
        suite = context.suites.add(gx.ExpectationSuite(name=source.raw_table))
        for class_name, kwargs, severity in _suite_spec(source, settings):
            expectation = getattr(gxe, class_name)(**kwargs, severity=severity)
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=source.raw_table, data=batch_definition, suite=suite)
        )
        validation = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": _EXAMPLES},
            run_id=gx_run_id,
        )
        batch = BatchValidation(source=source.name, rows_in_batch=n, rows_validated=len(frame))
        for item in validation.results:
            batch.outcomes.append(_outcome(source.name, item))
        result.batches.append(batch)

    # Render only this run's pages (earlier runs' pages stay); the index covers every run.
    new_results = [
        key for key in context.validation_results_store.list_keys() if key.run_id.run_name == run_id
    ]
    suites = [ExpectationSuiteIdentifier(name=source.raw_table) for source, _, _ in batches]
    context.build_data_docs(
        site_names=[DATA_DOCS_SITE], resource_identifiers=[*suites, *new_results]
    )
    result.data_docs_index = docs_dir / "index.html"
    result.seconds = time.perf_counter() - started
    if not result.success:
        raise ExpectationsFailed(result)
    return result


def _outcome(source: str, item: Any) -> ExpectationOutcome:
    config = item.expectation_config
    kwargs = config.kwargs
    target = kwargs.get("column") or ", ".join(
        str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs
    )
    if not target and "column_list" in kwargs:
        target = ", ".join(kwargs["column_list"])
    severity = getattr(config, "severity", CRITICAL)
    severity = getattr(severity, "value", severity)
    info = item.exception_info or {}
    error = info.get("exception_message") if info.get("raised_exception") else None
    res = item.result or {}
    examples = [str(v) for v in (res.get("partial_unexpected_list") or [])[:_EXAMPLES]]
    count = res.get("unexpected_count")
    return ExpectationOutcome(
        source=source,
        expectation=f"{config.type}({target})",
        severity=str(severity),
        success=bool(item.success),
        unexpected_count=int(count) if count is not None else None,
        examples=examples,
        error=error,
    )
