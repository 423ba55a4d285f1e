"""The data lake: one folder of Parquet files per table, readable by DuckDB and by Spark.

Layout under a lake root (a local folder here; ``s3://``/``abfss://`` on a cluster, written
and read by Spark only):

* ``<lake>/<table>/dt=YYYY-MM-DD/*.parquet`` for date-grained tables (the raw logs by event day,
  incremental models by their date column): the ``dt`` folder is a copy of that day, so a reader
  can prune days, and the table's own columns stay in the files unchanged (``dt`` is dropped on
  read);
* ``<lake>/<table>/*.parquet`` for small tables (FX rates, products, assignments, settings,
  the data-driven and lift summaries), and for a table without rows (one file with the schema:
  an empty partitioned write leaves no file to read the schema from).

Timestamps are written as naive ``TIMESTAMP`` (microseconds, UTC wall clock) by both engines:
DuckDB's ``TIMESTAMP`` and Spark's ``TIMESTAMP_NTZ`` are the same Parquet type.

Docs: docs/spark.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

PARTITION_COLUMN = "dt"
# raw tables written by ingest (DuckDB) and the timestamp that gives their day
RAW_TABLE_DAYS: dict[str, str | None] = {
    "raw_interactions": "ts",
    "raw_orders": "ts",
    "raw_visits": "ts",
    "raw_assignments": None,
    "raw_fx_rates": None,
    "raw_products": None,
}


def is_object_store(lake: str | Path) -> bool:
    """Return True for a lake on an object store (``s3://``, ``abfss://``, ``gs://``...)."""
    return "://" in str(lake)


def table_location(lake: str | Path, table: str) -> str:
    """Return the folder (local path or URI) that holds ``table`` in the lake."""
    root = str(lake).rstrip("/")
    return f"{root}/{table}"


def _local_folder(lake: str | Path, table: str) -> Path:
    if is_object_store(lake):
        raise ValueError(
            f"{lake} is an object store: DuckDB here reads and writes local lakes only "
            "(its httpfs extension cannot be installed offline); Spark reads object stores"
        )
    return Path(table_location(lake, table))


def is_partitioned(lake: str | Path, table: str) -> bool:
    """Return True if the local lake table is split into ``dt=`` folders."""
    folder = _local_folder(lake, table)
    return any(p.is_dir() and p.name.startswith(f"{PARTITION_COLUMN}=") for p in folder.iterdir())


def _sql_string(value: str) -> str:
    """Return ``value`` as a SQL string literal (DuckDB binds no parameters in CREATE VIEW)."""
    return "'" + value.replace("'", "''") + "'"


def duckdb_reader_sql(lake: str | Path, table: str) -> str:
    """Return a DuckDB SELECT of a local lake table's own columns (``dt`` dropped)."""
    folder = _local_folder(lake, table)
    if not folder.is_dir():
        raise FileNotFoundError(f"the lake has no table {table} (no folder {folder})")
    if is_partitioned(lake, table):
        files = _sql_string(str(folder / f"{PARTITION_COLUMN}=*" / "*.parquet"))
        return (
            f"SELECT * EXCLUDE ({PARTITION_COLUMN}) "
            f"FROM read_parquet({files}, hive_partitioning = true)"
        )
    return f"SELECT * FROM read_parquet({_sql_string(str(folder / '*.parquet'))})"


def register_duckdb_views(
    con: duckdb.DuckDBPyConnection, lake: str | Path, tables: list[str] | tuple[str, ...]
) -> None:
    """Create (or replace) one DuckDB view per lake table, named after it."""
    for table in tables:
        con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {duckdb_reader_sql(lake, table)}')


def write_duckdb_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    lake: str | Path,
    day_column: str | None,
    *,
    source: str | None = None,
) -> int:
    """Replace the lake table ``table`` with the rows of DuckDB relation ``source`` (default:
    the table of the same name); partitioned by ``cast(day_column AS DATE)`` when given and
    the table has rows. Returns the rows written."""
    folder = _local_folder(lake, table)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    relation = f'"{source or table}"'
    rows = int(con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0])
    if day_column and rows:
        # COPY takes no bound parameters: the folder is written as an escaped string literal
        con.execute(
            f'COPY (SELECT *, cast("{day_column}" AS DATE) AS {PARTITION_COLUMN} '
            f"FROM {relation}) TO {_sql_string(str(folder))} "
            f"(FORMAT parquet, PARTITION_BY ({PARTITION_COLUMN}), OVERWRITE_OR_IGNORE true)"
        )
    else:
        target = _sql_string(str(folder / "part-0.parquet"))
        con.execute(f"COPY (SELECT * FROM {relation}) TO {target} (FORMAT parquet)")
    return rows


def export_raw_tables(con: duckdb.DuckDBPyConnection, lake: str | Path) -> dict[str, int]:
    """Write every raw table of the warehouse to the lake (logs by event day); rows per table."""
    return {
        table: write_duckdb_table(con, table, lake, day) for table, day in RAW_TABLE_DAYS.items()
    }
