"""Order-independent digests of warehouse tables, to prove two builds give identical tables."""

from __future__ import annotations

from pathlib import Path

import duckdb

# Run bookkeeping: differs between runs by design (ids, timestamps, one row per run).
BOOKKEEPING_TABLES = frozenset({"_runs", "_ingest_files", "_loaded_files", "_demo_warehouse"})
# Columns naming the load that wrote a row, or when.
VOLATILE_COLUMNS = frozenset({"_run_id", "_loaded_at", "run_id", "loaded_at"})


def table_digest(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, str]:
    """Return (rows, order-independent hash of every row) of a table, volatile columns left out."""
    columns = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
    kept = ", ".join(f'"{c}"' for c in columns if c not in VOLATILE_COLUMNS)
    row = con.execute(
        f'SELECT count(*), coalesce(sum(hash(t)), 0)::VARCHAR FROM (SELECT {kept} FROM "{table}") t'
    ).fetchall()[0]
    return int(row[0]), row[1]


def warehouse_digests(path: Path | str) -> dict[str, tuple[int, str]]:
    """Return the digest of every table and view of a warehouse file except bookkeeping."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' ORDER BY 1"
            ).fetchall()
        ]
        return {name: table_digest(con, name) for name in names if name not in BOOKKEEPING_TABLES}
    finally:
        con.close()


def differing_tables(a: dict[str, tuple[int, str]], b: dict[str, tuple[int, str]]) -> list[str]:
    """Return the tables whose digests differ (or that exist on one side only)."""
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))
