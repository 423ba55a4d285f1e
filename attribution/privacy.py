"""The privacy floor: no exported or displayed cell describes fewer than K distinct users.

A table's floor is a registry of populations: each names an expression over the row that counts
distinct users (a column such as ``buyers``, or ``least(engaged_users, comparison_users)`` for a
lift that compares two groups) and the metric columns that describe those users. Where a row's
population is below K (or unknown), its metric cells are set to null; key columns are kept, so a
reader sees that the row exists and that its numbers are withheld. Population columns are listed
among their own metrics: a population below K is itself suppressed.

Every column of a floored table must be a key or covered by a population: a new metric column
that nobody registered makes ``floor_table`` raise instead of leaking.

This is a threshold rule per cell. It does not do complementary suppression: overlapping segments
(``all`` and ``marketplace=*``) can still be subtracted from each other. See docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Population:
    """Metric columns that describe the distinct users counted by ``users``."""

    users: pl.Expr
    metrics: tuple[str, ...]

    @property
    def user_columns(self) -> tuple[str, ...]:
        """Return the columns the population expression reads."""
        return tuple(dict.fromkeys(self.users.meta.root_names()))

    def describe(self) -> str:
        """Return a readable form such as ``least(engaged_users, comparison_users)``."""
        columns = self.user_columns
        return columns[0] if len(columns) == 1 else f"least({', '.join(columns)})"


@dataclass(frozen=True)
class TableFloor:
    """A table's keys (say nothing about users) and the populations of its metric columns."""

    keys: tuple[str, ...]
    populations: tuple[Population, ...]


@dataclass(frozen=True)
class FlooredFrame:
    """A frame after the floor and the number of cells it suppressed (visible before, null now)."""

    frame: pl.DataFrame
    suppressed_cells: int


def users(column: str) -> pl.Expr:
    """Return the population expression of one distinct-user column."""
    return pl.col(column)


def least(*columns: str) -> pl.Expr:
    """Return the smallest of several distinct-user columns, null if any of them is null.

    (``pl.min_horizontal`` skips nulls; an unknown population must never count as large.)
    """
    any_null = pl.any_horizontal([pl.col(c).is_null() for c in columns])
    return pl.when(any_null).then(None).otherwise(pl.min_horizontal(columns))


def applicable_populations(
    columns: list[str] | tuple[str, ...], floor: TableFloor
) -> tuple[Population, ...]:
    """Return the populations whose user columns are all present, limited to present metrics."""
    present = set(columns)
    found = []
    for population in floor.populations:
        if set(population.user_columns) <= present:
            metrics = tuple(m for m in population.metrics if m in present)
            if metrics:
                found.append(Population(population.users, metrics))
    return tuple(found)


def unprotected_columns(columns: list[str] | tuple[str, ...], floor: TableFloor) -> list[str]:
    """Return the columns that are neither keys nor metrics of an applicable population."""
    covered = set(floor.keys)
    for population in applicable_populations(columns, floor):
        covered.update(population.metrics)
    return [c for c in columns if c not in covered]


def suppression_flags(
    columns: list[str] | tuple[str, ...], floor: TableFloor, min_users: int
) -> dict[str, pl.Expr]:
    """Return per metric column a boolean expression: True where a population of the cell is < K.

    A null population counts as below K. The expressions read the frame as given, so populations
    are judged before anything is nulled.
    """
    flags: dict[str, list[pl.Expr]] = {}
    for population in applicable_populations(columns, floor):
        small = population.users.is_null() | (population.users < min_users)
        for metric in population.metrics:
            flags.setdefault(metric, []).append(small)
    return {metric: pl.any_horizontal(exprs) for metric, exprs in flags.items()}


def floor_frame(frame: pl.DataFrame, floor: TableFloor, min_users: int) -> FlooredFrame:
    """Return the frame with every metric cell of a population below ``min_users`` set to null.

    Raises ``ValueError`` if a column is neither a key nor covered by an applicable population.
    """
    if min_users < 1:
        raise ValueError("min_users must be >= 1")
    loose = unprotected_columns(frame.columns, floor)
    if loose:
        raise ValueError(
            f"columns with no registered population (privacy floor): {loose}; add them to the "
            "table's keys or to a population"
        )
    flags = suppression_flags(frame.columns, floor, min_users)
    if not flags or frame.is_empty():
        return FlooredFrame(frame, 0)
    counts = frame.select(
        [
            (flag & pl.col(metric).is_not_null()).sum().alias(metric)
            for metric, flag in flags.items()
        ]
    )
    floored = frame.with_columns(
        [
            pl.when(flag).then(None).otherwise(pl.col(metric)).alias(metric)
            for metric, flag in flags.items()
        ]
    )
    return FlooredFrame(floored, int(sum(counts.row(0))))
