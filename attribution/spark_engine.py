"""The Spark engine: the ``sql/`` models transpiled to Spark SQL and run by PySpark on the lake.

``attribution run --engine spark --lake DIR`` (docs/spark.md):

1. ingest stays DuckDB: the landing files are checked and loaded into the warehouse's raw
   tables as in every run (quarantine, conservation, ``_runs``), then the raw tables are
   written to the lake (``attribution.lake``: hive-partitioned Parquet);
2. every SQL model of staging, intermediate and marts runs on Spark in the order and with the
   parameters of a full DuckDB build (``warehouse.models``, ``warehouse.model_parameters`` for
   the data's first to last day): the model's DuckDB SQL is transpiled by
   ``portability.to_spark_sql`` and run by ``spark.sql`` with bound parameters against temp
   views of the lake tables; views stay Spark temp views, tables are written to the lake and
   read back from it;
3. the data-driven model: Spark computes the aggregated journeys (one row per distinct path)
   and the rule totals per touch type, the unchanged Python Markov/Shapley code reads them;
4. the lift: Spark computes its estimators' sums (``lift_aggregates``: per period, segment
   and side; per propensity fit and covariate) and Python only combines them and solves the
   propensity model's k x k Newton systems; its three tables are written to the lake
   (local or object store);
5. the KPI layer on Spark, then the audits (``sql/audits``) on Spark: offending rows per audit.

Nothing here runs at import time and pyspark is imported only inside functions.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from attribution import lake as lk
from attribution.config import Settings
from attribution.pipeline import BUILD_LAYERS, KPI_LAYERS
from attribution.warehouse import (
    Model,
    bound_parameters,
    model_parameters,
    models,
    sql_dir,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DATA_DRIVEN_TABLE = "fct_attribution_by_touch_type"
LIFT_TABLES: tuple[str, ...] = ("fct_conversion_lift", "fct_lift_balance", "fct_lift_overlap")
DEFAULT_MASTER = "local[2]"

# Session settings (stack-notes): UTC everywhere, naive timestamps like DuckDB's TIMESTAMP,
# Parquet timestamps in microseconds, no console progress bars.
SESSION_SETTINGS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.showConsoleProgress": "false",
}
# Only for a local master: few shuffle partitions and no web UI (a cluster keeps its own).
LOCAL_SETTINGS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false",
}
_SPARK_TYPES = {
    pl.Date: "DATE",
    pl.Int64: "BIGINT",
    pl.Int32: "INT",
    pl.String: "STRING",
    pl.Float64: "DOUBLE",
    pl.Boolean: "BOOLEAN",
}


def spark_session(
    master: str | None = DEFAULT_MASTER,
    app_name: str = "attribution",
    extra: Mapping[str, str] | None = None,
) -> SparkSession:
    """Return a Spark session with the engine's settings and ``extra`` ones (``master=None``:
    the one spark-submit gives); an active session is reused with these settings applied."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = dict(SESSION_SETTINGS)
    if master and master.startswith("local"):
        settings |= LOCAL_SETTINGS
    settings |= dict(extra or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --- SQL -------------------------------------------------------------------------------------


def model_spark_sql(model: Model) -> str:
    """Return the model's SELECT in Spark SQL (``portability.to_spark_sql``)."""
    from attribution.portability import to_spark_sql

    return to_spark_sql(model.sql)


# --- lake tables on Spark ----------------------------------------------------------------------


def register_lake_table(spark: SparkSession, lake: str, table: str) -> DataFrame:
    """Create (or replace) the temp view ``table`` over the lake folder; return it."""
    frame = spark.read.parquet(lk.table_location(lake, table))
    if lk.PARTITION_COLUMN in frame.columns:
        frame = frame.drop(lk.PARTITION_COLUMN)
    frame.createOrReplaceTempView(table)
    return frame


def write_spark_table(
    spark: SparkSession, frame: DataFrame, lake: str, table: str, day_column: str | None
) -> int:
    """Replace the lake table with ``frame`` (by day when ``day_column``), re-register the temp
    view over what was written, and return its rows. A result without rows is written as one
    file with the schema (an empty partitioned write leaves no file to read)."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    location = lk.table_location(lake, table)
    if day_column:
        frame.withColumn(lk.PARTITION_COLUMN, F.col(day_column).cast("date")).write.mode(
            "overwrite"
        ).partitionBy(lk.PARTITION_COLUMN).parquet(location)
    else:
        frame.write.mode("overwrite").parquet(location)
    try:
        written = register_lake_table(spark, lake, table)
    except AnalysisException:  # nothing written: no row
        spark.createDataFrame([], frame.schema).coalesce(1).write.mode("overwrite").parquet(
            location
        )
        written = register_lake_table(spark, lake, table)
    return written.count()


def _spark_frame(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    """Return a Spark DataFrame of a small polars frame (column types kept)."""
    schema = ", ".join(f"`{name}` {_SPARK_TYPES[dtype]}" for name, dtype in frame.schema.items())
    return spark.createDataFrame(frame.rows(), schema)


def register_config_views(spark: SparkSession, settings: Settings) -> None:
    """Create the settings tables SQL joins against (cfg_windows, cfg_marketplaces) as views."""
    spark.createDataFrame(
        [(days,) for days in settings.windows_days], "window_days INT"
    ).createOrReplaceTempView("cfg_windows")
    spark.createDataFrame(
        sorted(settings.marketplaces.items()), "marketplace STRING, currency STRING"
    ).createOrReplaceTempView("cfg_marketplaces")


def run_models_on_spark(
    spark: SparkSession,
    lake: str,
    settings: Settings,
    start_date: date,
    end_date: date,
    layers: tuple[str, ...],
) -> Iterator[tuple[Model, int | None]]:
    """Run every model of ``layers`` for the window as a full build does; yield (model, rows
    written) as each finishes (None for a view, kept as a Spark temp view)."""
    parameters = model_parameters(settings, start_date, end_date)
    for model in models(layers):
        frame = spark.sql(model_spark_sql(model), args=bound_parameters(model.sql, parameters))
        if model.materialized == "view":
            frame.createOrReplaceTempView(model.name)
            yield model, None
        else:
            yield model, write_spark_table(spark, frame, lake, model.name, model.date_column)


def run_audits_on_spark(
    spark: SparkSession, settings: Settings, start_date: date, end_date: date
) -> dict[str, int]:
    """Run every ``sql/audits`` query on Spark for the window; offending rows per audit."""
    from attribution.portability import to_spark_sql

    parameters = model_parameters(settings, start_date, end_date)
    counts: dict[str, int] = {}
    for path in sorted((sql_dir() / "audits").glob("*.sql")):
        sql = path.read_text(encoding="utf-8").strip().rstrip(";")
        counts[path.stem] = spark.sql(
            to_spark_sql(sql), args=bound_parameters(sql, parameters)
        ).count()
    return counts


# --- the Python statistics ---------------------------------------------------------------------


def data_driven_on_spark(
    spark: SparkSession, settings: Settings, start_date: date, end_date: date
) -> pl.DataFrame:
    """Return ``fct_attribution_by_touch_type``'s rows with its inputs computed by Spark.

    Spark reduces the journeys to one row per distinct (path, converted) with a count and a
    total value, and the rule models to one row per touch type; only those reach Python, so
    the Markov and Shapley code reads a few thousand rows whatever the number of users.
    """
    from attribution.journeys import (
        AGGREGATED_SCHEMA,
        RULE_TOTALS_SCHEMA,
        aggregated_journeys_sql,
        data_driven_from,
        rule_totals_sql,
        with_period,
    )
    from attribution.portability import to_spark_sql

    touch = settings.data_driven_touch_column
    # the journey queries pass the portability lint (tests/test_sql_portability.py)
    journeys_sql = to_spark_sql(aggregated_journeys_sql(touch), "journeys.aggregated_journeys_sql")
    rules_sql = to_spark_sql(rule_totals_sql(touch), "journeys.rule_totals_sql")

    def rows_of(sql: str, schema: dict[str, Any]) -> Callable[[int], pl.DataFrame]:
        def read(window: int) -> pl.DataFrame:
            args = {"window_days": window, "start_date": start_date, "end_date": end_date}
            rows = [tuple(row) for row in spark.sql(sql, args=args).collect()]
            return pl.DataFrame(rows, schema=schema, orient="row")

        return read

    frame = data_driven_from(
        rows_of(journeys_sql, AGGREGATED_SCHEMA),
        rows_of(rules_sql, RULE_TOTALS_SCHEMA),
        settings.windows_days,
        settings.data_driven_order,
        touch,
    )
    return with_period(frame, start_date, end_date)


_MATERIALIZED = re.compile(r"\bas\s+materialized\s*\(", re.IGNORECASE)


def spark_lift_sql(sql: str) -> str:
    """Return one of the lift's DuckDB queries as Spark SQL (``portability.to_spark_sql``,
    which refuses lint findings): the unit queries of ``attribution.lift`` lose their
    ``AS MATERIALIZED`` hints first (Spark has no such hint; it plans each CTE itself)."""
    from attribution.portability import to_spark_sql

    return to_spark_sql(_MATERIALIZED.sub("as (", sql))


@dataclass
class SparkLiftEngine:
    """``lift_aggregates.Engine`` on a Spark session: relations are cached temp views, queries
    return polars frames (only aggregates are collected)."""

    spark: SparkSession
    cached: dict[str, DataFrame] = field(default_factory=dict)

    def _frame(self, sql: str, params: Mapping[str, Any]) -> DataFrame:
        return self.spark.sql(spark_lift_sql(sql), args=bound_parameters(sql, params))

    def query(self, sql: str, params: Mapping[str, Any], *, plain: bool = False) -> pl.DataFrame:
        frame = self._frame(sql, params)
        rows = [tuple(row) for row in frame.collect()]
        if not rows:
            return pl.DataFrame(schema=dict.fromkeys(frame.columns, pl.Null))
        return pl.DataFrame(rows, schema=frame.columns, orient="row", infer_schema_length=None)

    def create(self, name: str, sql: str, params: Mapping[str, Any]) -> None:
        self.drop(name)
        frame = self._frame(sql, params).persist()
        frame.count()
        frame.createOrReplaceTempView(name)
        self.cached[name] = frame

    def register(self, name: str, frame: pl.DataFrame) -> None:
        self.drop(name)
        _spark_frame(self.spark, frame).createOrReplaceTempView(name)

    def drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        if name in self.cached:
            self.cached.pop(name).unpersist()


def _expected_shares(spark: SparkSession) -> dict[str, float]:
    """Return the design holdout share per experiment (``cfg_experiments`` if registered)."""
    from attribution.lift import EXPERIMENT_SHARES_SQL, holdout_shares_with

    exists = spark.catalog.tableExists("cfg_experiments")
    return holdout_shares_with(spark.sql(EXPERIMENT_SHARES_SQL).collect() if exists else [])


def lift_rows_on_spark(
    spark: SparkSession, settings: Settings, start_date: date, end_date: date
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (lift rows, balance rows, overlap rows) computed from Spark aggregates
    (``lift_aggregates``: Python receives rows per group, fit and covariate, never units)."""
    from attribution import lift_aggregates as la

    engine = SparkLiftEngine(spark)
    windows = tuple(settings.windows_days)
    try:
        la.create_unit_relations(engine, start_date, end_date, windows)
        lift_rows, balance, overlap = la.visitor_day_rows(engine, windows, start_date, end_date)
        lift_rows += la.experiment_rows(
            engine, windows, start_date, end_date, _expected_shares(spark)
        )
    finally:
        la.drop_unit_relations(engine)
        for name in list(engine.cached):
            engine.drop(name)
    return lift_rows, balance, overlap


def _spark_value(value: Any, data_type: Any) -> Any:
    """Return a Python lift value for a Spark column: a float bound for a DECIMAL column is
    rounded as DuckDB casts DOUBLE to DECIMAL(p, s) (``value x 10^s`` as a double, rounded half
    away from zero; checked on 20,000 values), not as Spark's cast does (the shortest decimal
    spelling: 62.04575 is 62.0458 on DuckDB, 62.0457 from its exact binary value)."""
    from pyspark.sql.types import DecimalType

    if value is None or not isinstance(data_type, DecimalType):
        return value
    scaled = value * 10.0**data_type.scale
    units = math.floor(abs(scaled) + 0.5)
    return Decimal(units if scaled >= 0 else -units).scaleb(-data_type.scale)


def lift_on_spark(
    spark: SparkSession, lake: str, settings: Settings, start_date: date, end_date: date
) -> dict[str, int]:
    """Compute the lift stage's rows from Spark aggregates and write its three tables to the
    lake, as ``lift.write_lift_tables`` writes them in DuckDB; rows per table.

    ``fct_conversion_lift`` keeps the SQL model's daily observed rows (with their p-values) and
    gains every other row; p_value_bh is adjusted over each family as on DuckDB.
    """
    from pyspark.sql.types import StructField, StructType
    from pyspark.sql.types import _parse_datatype_string as _parse_type

    from attribution import lift

    lift_rows, balance, overlap = lift_rows_on_spark(spark, settings, start_date, end_date)
    python_rows = lift._frame(lift_rows)
    table = spark.table(LIFT_TABLES[0])
    sql_rows = [row.asDict() for row in table.where(lift._SQL_OWNED).collect()]
    counts = ["conversions_engaged", "n_engaged", "conversions_comparison", "n_comparison"]
    sql_p = lift.with_binomial_p(
        pl.DataFrame(
            [[r[c] for c in ("period_start", "segment", "window_days", *counts)] for r in sql_rows],
            schema=["period_start", "segment", "window_days", *counts],
            orient="row",
        )
    )
    every = lift.p_values_with_bh(sql_p, python_rows)
    python_rows = lift.with_bh_of(python_rows, every)
    sql_p_values = {
        (r["period_start"], r["segment"], r["window_days"]): (r["p_value"], r["p_value_bh"])
        for r in every.filter(
            (pl.col("method") == "observed") & (pl.col("period_grain") == "day")
        ).iter_rows(named=True)
    }
    for r in sql_rows:
        key = (r["period_start"], r["segment"], r["window_days"])
        r["p_value"], r["p_value_bh"] = sql_p_values.get(key, (None, None))
    # columns: the model's, then the lift's extra ones (as lift._ensure_lift_columns adds them)
    schema = StructType(
        [
            *table.schema.fields,
            *(
                StructField(c, _parse_type(_SPARK_TYPES[t]))
                for c, t in lift.LIFT_COLUMNS.items()
                if c not in table.columns
            ),
        ]
    )
    sql_frame = spark.createDataFrame(
        [tuple(r.get(f.name) for f in schema.fields) for r in sql_rows], schema
    )
    python_frame = spark.createDataFrame(
        [
            tuple(_spark_value(row.get(f.name), f.dataType) for f in schema.fields)
            for row in python_rows.iter_rows(named=True)
        ],
        schema,
    )
    written = {
        LIFT_TABLES[0]: write_spark_table(
            spark, sql_frame.union(python_frame), lake, LIFT_TABLES[0], "period_start"
        )
    }
    for name, rows in ((LIFT_TABLES[1], balance), (LIFT_TABLES[2], overlap)):
        frame = lift.diagnostics_frame(rows)
        if frame.is_empty():
            frame = pl.DataFrame(schema={"period_start": pl.Date})
        written[name] = write_spark_table(spark, _spark_frame(spark, frame), lake, name, None)
    return written


# --- the run ----------------------------------------------------------------------------------


@dataclass
class SparkBuild:
    """What a Spark build wrote: rows per lake table, views, seconds per stage, audits, and
    what it did not produce (and why)."""

    lake: str
    master: str | None
    start_date: date
    end_date: date
    tables: dict[str, int] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    audits: dict[str, int] = field(default_factory=dict)
    not_produced: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "engine": "spark",
            "lake": self.lake,
            "master": self.master,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "tables": dict(self.tables),
            "views": list(self.views),
            "seconds": dict(self.seconds),
            "audits": dict(self.audits),
            "not_produced": dict(self.not_produced),
        }


def build_on_spark(
    spark: SparkSession,
    lake: str | Path,
    settings: Settings,
    start_date: date,
    end_date: date,
    *,
    audits: bool = True,
    progress: Callable[[str], None] | None = None,
) -> SparkBuild:
    """Build every table from the lake's raw tables on Spark, as a full DuckDB build does for
    [start_date, end_date]; return what was written. The raw tables must be in the lake."""
    say = progress or (lambda _line: None)
    lake = str(lake)
    build = SparkBuild(lake, spark.sparkContext.master, start_date, end_date)

    def stage(name: str) -> _Timer:
        return _Timer(build.seconds, name)

    with stage("read_raw"):
        for table in lk.RAW_TABLE_DAYS:
            register_lake_table(spark, lake, table)
        register_config_views(spark, settings)

    def run_layers(layers: tuple[str, ...]) -> None:
        for model, rows in run_models_on_spark(spark, lake, settings, start_date, end_date, layers):
            if rows is None:
                build.views.append(model.name)
                say(f"{model.name}: Spark temp view")
            else:
                build.tables[model.name] = rows
                say(f"{model.name}: {rows:,} rows")

    with stage("models"):
        run_layers(BUILD_LAYERS)
    with stage("data_driven"):
        frame = data_driven_on_spark(spark, settings, start_date, end_date)
        build.tables[DATA_DRIVEN_TABLE] = write_spark_table(
            spark, _spark_frame(spark, frame), lake, DATA_DRIVEN_TABLE, None
        )
        say(f"{DATA_DRIVEN_TABLE}: {frame.height:,} rows (Markov and Shapley on Spark's paths)")
    with stage("lift"):
        written = lift_on_spark(spark, lake, settings, start_date, end_date)
        build.tables.update(written)
        say(
            f"lift: {written[LIFT_TABLES[0]]:,} rows (from Spark aggregates: rows per period, "
            "segment and side reach Python, never a visitor-day)"
        )
    with stage("kpi"):
        run_layers(KPI_LAYERS)
    if audits:
        with stage("audits"):
            build.audits = run_audits_on_spark(spark, settings, start_date, end_date)
            failed = {name: n for name, n in build.audits.items() if n}
            say(f"audits: {'passed' if not failed else f'offending rows {failed}'}")
    build.not_produced.setdefault(
        "views " + ", ".join(build.views),
        "kept as Spark temp views of the session (definitions in sql/), not written to the lake",
    )
    build.not_produced["report"] = "the report reads the DuckDB warehouse; not written"
    build.not_produced["expectations"] = "the Great Expectations suites run on DuckDB runs only"
    return build


class _Timer:
    """Adds the wall-clock seconds of a ``with`` block to ``seconds[name]``."""

    def __init__(self, seconds: dict[str, float], name: str) -> None:
        self.seconds, self.name = seconds, name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.started
        self.seconds[self.name] = round(self.seconds.get(self.name, 0.0) + elapsed, 3)


def data_span(warehouse_path: Path) -> tuple[date, date] | None:
    """Return the first and last day of loaded logs in the warehouse (None: nothing loaded)."""
    from attribution.build_window import data_date_range
    from attribution.warehouse import connect

    con = connect(warehouse_path, read_only=True)
    try:
        return data_date_range(con)
    finally:
        con.close()


def export_raw_to_lake(warehouse_path: Path, lake: str | Path) -> dict[str, int]:
    """Write the warehouse's raw tables to the lake; rows per table."""
    from attribution.warehouse import connect

    con = connect(warehouse_path, read_only=True)
    try:
        return lk.export_raw_tables(con, lake)
    finally:
        con.close()


def run_spark_pipeline(
    settings: Settings,
    *,
    landing_dir: Path,
    warehouse_path: Path,
    lake: str | Path,
    master: str | None = DEFAULT_MASTER,
    spark: SparkSession | None = None,
    audits: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest the landing folder (DuckDB), export the raw tables to the lake, build every table
    on Spark into the lake; return the run summary with the Spark build under ``spark``.

    The ingest is recorded in ``_runs`` (not published: the DuckDB tables are not rebuilt).
    Uses ``spark`` if given, else the active session, else starts one on ``master`` and stops
    it at the end.
    """
    from attribution.pipeline import PipelineRun

    if lk.is_object_store(lake):
        raise ValueError(
            f"the raw tables are exported by DuckDB, which writes local lakes only here: {lake}; "
            "on a cluster, copy a local lake's raw_* folders to the object store and run "
            "build_on_spark there (docs/spark.md)"
        )
    say = progress or (lambda _line: None)
    run = PipelineRun(
        settings,
        landing_dir=landing_dir,
        warehouse_path=warehouse_path,
        mode="full",
        expectations=False,
        progress=say,
    )
    own = False  # stop only a session this call started (not the caller's, not an active one)
    try:
        run.ingest()
        span = data_span(warehouse_path)
        if span is None:
            run.summary.outcome, run.summary.message = "empty", "no logs loaded yet"
            return run.summary.as_json()
        started = time.perf_counter()
        exported = export_raw_to_lake(warehouse_path, lake)
        say(f"lake {lake}: raw tables written ({sum(exported.values()):,} rows)")
        export_seconds = round(time.perf_counter() - started, 3)
        if spark is None:
            from pyspark.sql import SparkSession

            own = SparkSession.getActiveSession() is None
            spark = spark_session(master)
        build = build_on_spark(spark, lake, settings, span[0], span[1], audits=audits, progress=say)
        build.seconds["export_raw"] = export_seconds
        build.tables.update(exported)
        s = run.summary
        s.start_date, s.end_date = span
        s.window_reason = "spark engine: full build of every day into the lake"
        s.model_rows = dict(build.tables)
        s.audits = dict(build.audits)
        failed = {name: n for name, n in build.audits.items() if n}
        s.message = f"engine spark; lake {lake}" + (
            f"; audits found offending rows: {failed}" if failed else ""
        )
        run.succeed()
        return run.summary.as_json() | {"spark": build.as_json()}
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        run.record()
        if own and spark is not None:
            spark.stop()


def not_produced_lines(spark_summary: Mapping[str, Any]) -> list[str]:
    """Return one line per table or output the Spark run did not produce, with the reason."""
    return [f"not produced: {what}: {why}" for what, why in spark_summary["not_produced"].items()]


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry: build every table from the raw tables already in the lake.

    ``spark-submit [cluster options] attribution/spark_engine.py --lake URI --start D --end D``
    (docs/spark.md). Prints the build as JSON; exit code 1 when an audit finds offending rows.
    """
    import argparse
    import json

    from attribution.config import load_settings

    parser = argparse.ArgumentParser(description="Build every table on Spark into the lake.")
    parser.add_argument("--lake", required=True, help="lake root: a folder, s3://, abfss://...")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day")
    parser.add_argument("--master", default=None, help="default: the one spark-submit gives")
    parser.add_argument("--no-audits", action="store_true", help="skip sql/audits")
    args = parser.parse_args(argv)
    from pyspark.sql import SparkSession

    own = SparkSession.getActiveSession() is None  # a notebook's or job's session stays up
    spark = spark_session(args.master)
    try:
        build = build_on_spark(
            spark,
            args.lake,
            load_settings(),
            args.start,
            args.end,
            audits=not args.no_audits,
            progress=print,
        )
    finally:
        if own:
            spark.stop()
    summary = build.as_json()
    for line in not_produced_lines(summary):
        print(line, file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 1 if any(build.audits.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
