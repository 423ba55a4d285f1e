"""The input half of the data contract as data: sources, their columns, keys and raw tables.

Docs: ``docs/data-contract.md`` section 1. Row rules themselves live in ``attribution.ingest``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One contract column: name, DuckDB type in the raw table, and whether it is required."""

    name: str
    duckdb_type: str
    required: bool = True


@dataclass(frozen=True)
class Source:
    """One landing source: its columns, its key and the raw table it loads into."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    optional_source: bool = False
    # True: a later delivery of a key with other values is a correction (loaded; staging keeps
    # the latest delivery); only a repeat of the key's current values is a duplicate.
    corrections: bool = False

    @property
    def raw_table(self) -> str:
        return f"raw_{self.name}"

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(col.name for col in self.columns if col.required)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The contract columns outside the key (what a correction changes)."""
        return tuple(col.name for col in self.columns if col.name not in self.key)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(col.name for col in self.columns)


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "interactions",
            (
                Column("event_id", "VARCHAR"),
                Column("user_id", "VARCHAR"),
                Column("ts", "TIMESTAMP"),
                Column("session_id", "VARCHAR", required=False),
                Column("marketplace", "VARCHAR"),
                Column("channel", "VARCHAR"),
                Column("event_type", "VARCHAR"),
                Column("product_ids", "VARCHAR[]", required=False),
                Column("model_version", "VARCHAR", required=False),
            ),
            key=("event_id",),
        ),
        Source(
            "orders",
            (
                Column("order_id", "VARCHAR"),
                Column("line_no", "INTEGER"),
                Column("user_id", "VARCHAR"),
                Column("ts", "TIMESTAMP"),
                Column("marketplace", "VARCHAR"),
                Column("product_id", "VARCHAR"),
                Column("quantity", "INTEGER"),
                Column("amount", "DECIMAL(18,4)"),
                Column("currency", "VARCHAR"),
                Column("status", "VARCHAR", required=False),
                Column("updated_at", "TIMESTAMP", required=False),
            ),
            # Every version of a line is kept; the latest updated_at is the line's state.
            key=("order_id", "line_no", "updated_at"),
        ),
        Source(
            "visits",
            (
                Column("user_id", "VARCHAR"),
                Column("ts", "TIMESTAMP"),
                Column("marketplace", "VARCHAR"),
                Column("channel", "VARCHAR"),
            ),
            key=("user_id", "ts", "marketplace", "channel"),
        ),
        Source(
            "assignments",
            (
                Column("user_id", "VARCHAR"),
                Column("experiment_id", "VARCHAR"),
                Column("arm", "VARCHAR"),
                Column("assigned_at", "TIMESTAMP"),
            ),
            key=("user_id", "experiment_id"),
            optional_source=True,
        ),
        Source(
            "fx_rates",
            (
                Column("date", "DATE"),
                Column("currency", "VARCHAR"),
                Column("rate_to_usd", "DECIMAL(18,8)"),
            ),
            key=("date", "currency"),
            corrections=True,
        ),
        Source(
            "products",
            (
                Column("product_id", "VARCHAR"),
                Column("brand", "VARCHAR"),
                Column("category", "VARCHAR"),
            ),
            key=("product_id",),
            optional_source=True,
        ),
    )
}

FILE_SUFFIXES: tuple[str, ...] = (
    ".csv",
    ".csv.gz",
    ".jsonl",
    ".jsonl.gz",
    ".parquet",
)
