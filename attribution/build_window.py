"""What a build must rebuild so that its tables equal a full rebuild's.

Every SQL model is a function of an output window. A nightly run restates each incremental model
over its own window ``[start, end]``: ``start`` is the earliest day its output can change, derived
from what the rows no published build has covered yet change (``Changes``) and from the windows of
the models it reads (``RESTATED_FROM``); ``end`` is the last day of data. See docs/operations.md,
"What a nightly run rebuilds".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta

import duckdb

from attribution.config import Settings
from attribution.run_log import PUBLISHED_RUNS_SQL, last_published_build
from attribution.warehouse import Model, models, scalar, table_exists

ModelWindow = tuple[date, date]


@dataclass(frozen=True)
class Changes:
    """The earliest day each kind of change touches (None: no change of that kind)."""

    interactions: date | None = None  # the day of the earliest new interaction event
    sessions: date | None = None  # the earliest session day new interactions can change
    visits: date | None = None  # the day of the earliest new visit
    orders: date | None = None  # the earliest order date of any version of a changed order
    fx_rates: date | None = None  # the earliest date of a new rate (it applies from that day)
    closing: date | None = None  # the day after the last published window, if data goes beyond
    # known after the lift stage: the earliest period of the lift rows the KPI models read that
    # changed (daily rows, month rows); the Python lift stage rewrites its rows every night
    lift_days: date | None = None
    lift_months: date | None = None


@dataclass(frozen=True)
class Feed:
    """One input of a model: a kind of change or an upstream model, and ``reach``, how many days
    before a changed day of that input the model's output can change (days, or the name of a
    ``Settings`` attribute such as ``max_window_days``)."""

    source: str
    reach: int | str = 0

    def first_changed_day(
        self, known: Mapping[str, date | None], settings: Settings
    ) -> date | None:
        """Return the earliest output day this input can change (None: the input is unchanged)."""
        day = known[self.source]  # KeyError: an unknown source, or a model that runs later
        if day is None:
            return None
        days = self.reach if isinstance(self.reach, int) else int(getattr(settings, self.reach))
        return day - timedelta(days=days)


# What each incremental model reads, and how far back a change of it reaches (from the SQL).
RESTATED_FROM: dict[str, tuple[Feed, ...]] = {
    # a new event joins or starts sessions from the day before it (see Changes.sessions)
    "int_interaction_sessions": (Feed("sessions"),),
    "assistant_sessions": (Feed("int_interaction_sessions"),),
    "int_session_products": (Feed("int_interaction_sessions"),),
    # a line's row is on its order date; a new rate is the latest one from its date on
    "int_order_lines": (Feed("orders"), Feed("fx_rates")),
    "int_orders": (Feed("int_order_lines"),),
    # a line's ledger rows are on its order date; a session on day s is a touch of orders on days
    # >= s only (the sessions of the lookback are read, not restated)
    "fct_attribution": (
        Feed("int_order_lines"),
        Feed("assistant_sessions"),
        Feed("int_session_products"),
    ),
    "fct_attribution_lag": (Feed("fct_attribution"),),
    "fct_attribution_window_sensitivity": (Feed("fct_attribution"),),
    # a visitor-day counts the orders of the following max_window_days; a row appears once its
    # window lies inside the data (days from the last published end + 1 - max_window_days)
    "fct_conversion_lift": (
        Feed("visits"),
        Feed("assistant_sessions"),
        Feed("int_orders", "max_window_days"),
        Feed("closing", "max_window_days"),
    ),
    # every source read for the output days; lift rows compared before and after the lift stage
    "kpi_daily_segments": (
        Feed("interactions"),
        Feed("assistant_sessions"),
        Feed("visits"),
        Feed("int_order_lines"),
        Feed("fct_attribution"),
        Feed("lift_days"),
    ),
    # by month: a month changes with its own days (later months read it as the previous month,
    # the same month a year ago, the year to date); is_complete depends on the end of data
    "kpi_monthly_segments": (
        Feed("interactions"),
        Feed("assistant_sessions"),
        Feed("visits"),
        Feed("int_order_lines"),
        Feed("fct_attribution"),
        Feed("lift_months"),
        Feed("closing"),
    ),
}
# A model without a rule restates from every change minus the largest window (the old one-window
# rule: safe for anything that looks back or ahead at most that far).
WHOLE_NIGHT: tuple[Feed, ...] = tuple(Feed(kind, "max_window_days") for kind in asdict(Changes()))


@dataclass(frozen=True)
class BuildWindow:
    """What a build rebuilds: every model through ``end``; incremental models of a nightly build
    from their own first day (``model_starts``; None: not restated), views and tables whole.

    ``start`` is the earliest day any model restates (the audits check ``[start, end]``).
    """

    start: date
    end: date
    data_start: date
    full: bool
    reason: str
    changes: Changes = field(default_factory=Changes)
    model_starts: Mapping[str, date | None] = field(default_factory=dict)

    def window_of(self, model: Model) -> ModelWindow | None:
        """Return the output window ``model`` restates in this build (None: not restated)."""
        if self.full or model.materialized != "incremental":
            return self.start, self.end
        start = self.model_starts[model.name]
        return None if start is None else (start, self.end)

    def restated_days(self, model: Model) -> ModelWindow | None:
        """Return the days ``model`` rewrites in this build (whole months for a by-month model;
        None: not restated)."""
        window = self.window_of(model)
        if window is None or not model.by_month:
            return window
        return window[0].replace(day=1), window[1]

    def restated_windows(self) -> dict[str, ModelWindow | None]:
        """Return the days every incremental model rewrites in this build."""
        return {m.name: self.restated_days(m) for m in models() if m.materialized == "incremental"}

    def with_changes(self, settings: Settings, **changed: date | None) -> BuildWindow:
        """Return this window with more changes known (the lift rows), model starts re-derived."""
        if self.full:
            return self
        return incremental_window(
            replace(self.changes, **changed), settings, self.data_start, self.end, self.reason
        )


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


_NEW = f"_run_id NOT IN ({PUBLISHED_RUNS_SQL})"
# The earliest day each kind of unpublished row changes (one query per kind).
CHANGE_SQL: dict[str, str] = {
    "interactions": f"SELECT cast(min(ts) AS DATE) FROM raw_interactions WHERE {_NEW}",
    # an event can extend a session that started the day before; an event with a given session
    # id belongs to that session wherever its other events lie
    "sessions": f"""
        SELECT min(d) FROM (
            SELECT cast(min(ts) AS DATE) - 1 AS d FROM raw_interactions WHERE {_NEW}
            UNION ALL
            SELECT cast(min(r.ts) AS DATE)
            FROM raw_interactions AS r
            INNER JOIN (
                SELECT DISTINCT user_id, nullif(trim(session_id), '') AS session_id
                FROM raw_interactions WHERE {_NEW}
            ) AS n ON n.user_id = r.user_id AND n.session_id = nullif(trim(r.session_id), '')
        )
    """,
    "visits": f"SELECT cast(min(ts) AS DATE) FROM raw_visits WHERE {_NEW}",
    # every version of every line of a changed order: a new version can move the order's date
    "orders": f"""
        SELECT cast(min(ts) AS DATE) FROM raw_orders
        WHERE order_id IN (SELECT order_id FROM raw_orders WHERE {_NEW})
    """,
    "fx_rates": f'SELECT min("date") FROM raw_fx_rates WHERE {_NEW}',
}


def unpublished_changes(con: duckdb.DuckDBPyConnection, closing: date | None) -> Changes:
    """Return the earliest day each kind of row not yet published changes; ``closing`` is the
    first day whose conversion windows close in this build (None: the data did not grow)."""
    found = {kind: scalar(con, sql) for kind, sql in CHANGE_SQL.items()}
    return Changes(**found, closing=closing)


def products_changed(con: duckdb.DuckDBPyConnection) -> bool:
    """Return True if a products catalogue not yet published was loaded (it changes the
    brand/category scope of every line: everything is rebuilt)."""
    return bool(scalar(con, f"SELECT count(*) FROM raw_products WHERE {_NEW}"))


def settled_lift_through(con: duckdb.DuckDBPyConnection, window: BuildWindow) -> date | None:
    """Return the last day through which the Python lift stage keeps the published rows of the
    day, week and month periods (those periods end on or before it); None: recompute them all.

    A period's rows are a function of its visitor-days only, and the lift model restates every
    visitor-day whose covariates, engagement or outcome a change can reach (from ``RESTATED_FROM``:
    a window before the oldest changed order, and every day whose conversion windows close now).
    The exception is the holdout flag, one per user over all time: an unpublished experiment
    assignment of a user active on a settled day keeps nothing. A full build keeps nothing.
    """
    start = None if window.full else window.model_starts.get("fct_conversion_lift")
    if start is None or start <= window.data_start:
        return None
    through = start - timedelta(days=1)
    if table_exists(con, "raw_assignments"):
        reassigned = scalar(
            con,
            f"SELECT count(*) FROM raw_assignments WHERE {_NEW} AND user_id IN ("
            "SELECT user_id FROM stg_visits WHERE visit_date <= $through "
            "UNION ALL SELECT user_id FROM assistant_sessions WHERE session_date <= $through)",
            {"through": through},
        )
        if reassigned:
            return None
    return through


# The lift rows the KPI models read: daily observed rows (kpi_daily_segments) and month observed and
# adjusted rows (kpi_monthly_segments) at the KPI window. The Python lift stage rewrites its rows
# over every day each night, so which of them changed is found by comparing, not predicted.
KPI_LIFT_ROWS_SQL = """
    SELECT * FROM fct_conversion_lift
    WHERE experiment_id IS NULL AND window_days = $kpi_window_days
        AND ((period_grain = 'day' AND method = 'observed')
            OR (period_grain = 'month' AND method IN ('observed', 'adjusted')))
"""
KEPT_LIFT_ROWS = "_kpi_lift_rows_before_build"


def keep_kpi_lift_rows(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    """Copy the lift rows the KPI models read into a temporary table before the build changes
    them; return False if there is no lift table yet."""
    if not table_exists(con, "fct_conversion_lift"):
        return False
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {KEPT_LIFT_ROWS} AS {KPI_LIFT_ROWS_SQL}",
        {"kpi_window_days": settings.kpi_window_days},
    )
    return True


def changed_kpi_lift_periods(
    con: duckdb.DuckDBPyConnection, settings: Settings, *, kept: bool, data_start: date
) -> dict[str, date | None]:
    """Return the earliest daily and month period (``lift_days``, ``lift_months``) whose KPI lift
    rows differ from the copy kept before the build (every period from ``data_start`` if none
    was kept), and drop the copy."""
    if not kept:
        return {"lift_days": data_start, "lift_months": data_start}
    columns = ", ".join(
        f'"{r[0]}"' for r in con.execute(f"DESCRIBE temp.{KEPT_LIFT_ROWS}").fetchall()
    )
    row = con.execute(
        f"""
        WITH after AS (SELECT {columns} FROM ({KPI_LIFT_ROWS_SQL})),
        before AS (SELECT {columns} FROM temp.{KEPT_LIFT_ROWS}),
        changed AS (
            (SELECT * FROM after EXCEPT ALL SELECT * FROM before)
            UNION ALL
            (SELECT * FROM before EXCEPT ALL SELECT * FROM after)
        )
        SELECT
            min(period_start) FILTER (WHERE period_grain = 'day'),
            min(period_start) FILTER (WHERE period_grain = 'month')
        FROM changed
        """,
        {"kpi_window_days": settings.kpi_window_days},
    ).fetchall()[0]
    con.execute(f"DROP TABLE temp.{KEPT_LIFT_ROWS}")
    return {"lift_days": row[0], "lift_months": row[1]}


def restatement_starts(
    changes: Changes, settings: Settings, names: Iterable[str]
) -> dict[str, date | None]:
    """Return the earliest day each model (``names``, in run order) can change: the earliest of
    its feeds' changed days, each moved back by the feed's reach (None: no feed changed)."""
    known: dict[str, date | None] = asdict(changes)
    for name in names:
        days = [
            feed.first_changed_day(known, settings) for feed in RESTATED_FROM.get(name, WHOLE_NIGHT)
        ]
        known[name] = earliest(days)
    return {name: known[name] for name in names}


def earliest(days: Iterable[date | None]) -> date | None:
    """Return the earliest of the days that are not None (None if there are none)."""
    return min((day for day in days if day is not None), default=None)


def incremental_window(
    changes: Changes, settings: Settings, data_start: date, data_end: date, why: str
) -> BuildWindow:
    """Return the nightly window: each incremental model from its first changed day (never
    before the data starts; None when that is after the data ends) through ``data_end``."""
    names = [m.name for m in models() if m.materialized == "incremental"]
    starts = {
        name: clipped(start, data_start, data_end)
        for name, start in restatement_starts(changes, settings, names).items()
    }
    start = earliest(starts.values()) or data_end
    return BuildWindow(start, data_end, data_start, False, why, changes, starts)


def clipped(start: date | None, data_start: date, data_end: date) -> date | None:
    """Return ``start`` moved to the first day of data, or None if it lies after the last day."""
    if start is None or start > data_end:
        return None
    return max(start, data_start)


def plan_build_window(
    con: duckdb.DuckDBPyConnection, settings: Settings, *, full: bool, version: str
) -> BuildWindow | None:
    """Return what a build must rebuild so that its tables equal a full rebuild's (None: no data).

    Incremental: each incremental model from the earliest day the unpublished rows can change
    its output (``RESTATED_FROM``) through the last day of data. A full rebuild when asked, on
    the first build, or when the settings, the code or the products catalogue changed since the
    last published build.
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
    if products_changed(con):
        return everything("a products catalogue was loaded (brand/category scopes): every day")
    closing = last.end_date + timedelta(days=1) if data_end > last.end_date else None
    changes = unpublished_changes(con, closing)
    return incremental_window(
        changes, settings, data_start, data_end, changes_reason(changes, last.end_date)
    )


# The kinds of change a reason names (sessions and closing follow from these and the last end).
REASON_LABELS: dict[str, str] = {
    "interactions": "interactions",
    "visits": "visits",
    "orders": "orders",
    "fx_rates": "FX rates",
}


def changes_reason(changes: Changes, last_end: date) -> str:
    """Return what changed, e.g. 'new rows change interactions from 2026-10-31, orders from
    2026-10-06; last published window ended 2026-10-30'."""
    found = asdict(changes)
    named = [f"{label} from {found[kind]}" for kind, label in REASON_LABELS.items() if found[kind]]
    what = f"new rows change {', '.join(named)}" if named else "no new rows"
    return f"{what}; last published window ended {last_end}"


def restated_summary(
    windows: Mapping[str, ModelWindow | None], group_of: Callable[[str], str]
) -> str:
    """Return the first restated day per group of models (``group_of`` names a model's group),
    e.g. 'orders from 2026-10-06, lift from 2026-09-06 (sessions not restated)'."""
    groups: dict[str, list[date | None]] = {}
    for name, window in windows.items():
        groups.setdefault(group_of(name), []).append(window[0] if window else None)
    firsts = {group: earliest(starts) for group, starts in groups.items()}
    restated = ", ".join(f"{group} from {day}" for group, day in firsts.items() if day)
    unchanged = ", ".join(group for group, day in firsts.items() if day is None)
    return (restated or "nothing") + (f" ({unchanged} not restated)" if unchanged else "")
