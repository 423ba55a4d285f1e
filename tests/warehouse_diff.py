"""Row-level differences between two warehouse files: EXCEPT ALL both ways, per table."""

from __future__ import annotations

from pathlib import Path

import duckdb
from digests import BOOKKEEPING_TABLES, VOLATILE_COLUMNS


def _relations(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[str]]:
    """Return table/view name -> its columns minus the volatile ones, for one attached file."""
    found: dict[str, list[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name, ordinal_position",
        [db],
    ).fetchall():
        if table not in BOOKKEEPING_TABLES:
            columns = found.setdefault(table, [])
            if column not in VOLATILE_COLUMNS:
                columns.append(column)
    return found


def table_changes(
    before: Path, after: Path, tables: list[str] | None = None
) -> dict[str, tuple[list[tuple], list[tuple]]]:
    """Return, per table that differs, (rows only in ``before``, rows only in ``after``) as
    multisets (EXCEPT ALL both ways), sorted; bookkeeping tables and the columns naming the load
    (run ids, load times) left out. A table on one side only, or whose columns differ, is
    reported with the marker row ('<missing>',) or ('<columns>', ...)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("ATTACH ? AS a (READ_ONLY)", [str(before)])
    con.execute("ATTACH ? AS b (READ_ONLY)", [str(after)])
    try:
        left, right = _relations(con, "a"), _relations(con, "b")
        changes: dict[str, tuple[list[tuple], list[tuple]]] = {}
        for name in tables or sorted(set(left) | set(right)):
            if name not in left or name not in right:
                missing = [("<missing>",)]
                changes[name] = (
                    missing if name not in left else [],
                    missing if name not in right else [],
                )
                continue
            if left[name] != right[name]:
                changes[name] = ([("<columns>", *left[name])], [("<columns>", *right[name])])
                continue
            cols = ", ".join(f'"{c}"' for c in left[name])
            only = [
                sorted(
                    con.execute(
                        f'SELECT {cols} FROM {x}.main."{name}" EXCEPT ALL '
                        f'SELECT {cols} FROM {y}.main."{name}"'
                    ).fetchall(),
                    key=repr,
                )
                for x, y in (("a", "b"), ("b", "a"))
            ]
            if only[0] or only[1]:
                changes[name] = (only[0], only[1])
        return changes
    finally:
        con.close()


def compared_columns(warehouse: Path, table: str) -> list[str]:
    """Return the columns of ``table`` that ``table_changes`` compares (its rows' fields)."""
    con = duckdb.connect()
    con.execute("ATTACH ? AS a (READ_ONLY)", [str(warehouse)])
    try:
        return _relations(con, "a")[table]
    finally:
        con.close()
