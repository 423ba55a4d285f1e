"""What a build must rebuild so that its tables equal a full rebuild's.

Every SQL model is a function of an output window; a nightly run picks the window from the rows no
published build has covered yet (docs/operations.md, "What a nightly run rebuilds").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb

from attribution.config import Settings
from attribution.run_log import PUBLISHED_RUNS_SQL, last_published_build
from attribution.warehouse import scalar


@dataclass(frozen=True)
class BuildWindow:
    """The output window a build rebuilds, the first day of data, and why."""

    start: date
    end: date
    data_start: date
    full: bool
    reason: str


def data_date_range(con: duckdb.DuckDBPyConnection) -> tuple[date, date] | None:
    """Return the first and last UTC date with interactions, visits or orders (None if empty)."""
    row = con.execute(
        """
        SELECT min(d), max(d) FROM (
            SELECT cast(ts AS DATE) AS d FROM raw_interactions
            UNION ALL SELECT cast(ts AS DATE) FROM raw_visits
            UNION ALL SELECT cast(ts AS DATE) FROM raw_orders
        )
        """
    ).fetchall()[0]
    if row[0] is None:
        return None
    return row[0], row[1]


def earliest_unpublished_date(con: duckdb.DuckDBPyConnection) -> tuple[date | None, bool]:
    """Return the earliest day that rows not yet published can change, and whether a new
    products catalogue was loaded (it changes the brand/category scope of every line).

    An interaction can extend a session that started the day before, hence ``- 1``.
    """
    not_published = f"_run_id NOT IN ({PUBLISHED_RUNS_SQL})"
    earliest = scalar(
        con,
        f"""
        SELECT min(d) FROM (
            SELECT cast(min(ts) AS DATE) - 1 AS d FROM raw_interactions WHERE {not_published}
            UNION ALL SELECT cast(min(ts) AS DATE) FROM raw_visits WHERE {not_published}
            UNION ALL SELECT cast(min(ts) AS DATE) FROM raw_orders WHERE {not_published}
            UNION ALL SELECT min("date") FROM raw_fx_rates WHERE {not_published}
        )
        """,
    )
    products = scalar(con, f"SELECT count(*) FROM raw_products WHERE {not_published}")
    return earliest, bool(products)


def plan_build_window(
    con: duckdb.DuckDBPyConnection, settings: Settings, *, full: bool, version: str
) -> BuildWindow | None:
    """Return what a build must rebuild so that its tables equal a full rebuild's (None: no data).

    Incremental: from the earliest day the unpublished rows can change, or the day after the
    last published build's window (conversion windows that close now), minus the largest window
    (attribution lookback, conversion lookahead), through the last day of data. A full rebuild
    when asked, on the first build, or when the settings, the code or the products catalogue
    changed since the last published build.
    """
    span = data_date_range(con)
    if span is None:
        return None
    data_start, data_end = span

    def everything(reason: str) -> BuildWindow:
        return BuildWindow(data_start, data_end, data_start, True, reason)

    if full:
        return everything("full run: every day rebuilt")
    last = last_published_build(con)
    if last is None:
        return everything("first build of this warehouse: every day rebuilt")
    if last.settings_hash != settings.settings_hash():
        return everything(
            f"settings changed since the last published build ({last.settings_hash} -> "
            f"{settings.settings_hash()}): every day rebuilt"
        )
    if last.code_version != version:
        return everything(
            f"code changed since the last published build ({last.code_version} -> {version}): "
            "every day rebuilt"
        )
    earliest, products_changed = earliest_unpublished_date(con)
    if products_changed:
        return everything("a products catalogue was loaded (brand/category scopes): every day")
    lookback = timedelta(days=settings.max_window_days)
    changed_from = last.end_date + timedelta(days=1)
    if earliest is not None:
        changed_from = min(changed_from, earliest)
    start = min(max(data_start, changed_from - lookback), data_end)
    why = f"new rows change days from {earliest}" if earliest else "no new rows"
    return BuildWindow(
        start,
        data_end,
        data_start,
        False,
        f"{why}; last published window ended {last.end_date}; restating from {start} "
        f"({settings.max_window_days} days of lookback) through {data_end}",
    )
