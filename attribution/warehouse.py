"""Connect to the warehouse and run the ``sql/`` models in layer order with bound window parameters.

Each model file is one SELECT. Its first line states the grain; a ``-- materialized:`` line says
how it is written:

* ``view``: ``CREATE OR REPLACE VIEW <stem> AS <select>`` (staging: clean, no business rules);
* ``table``: ``CREATE OR REPLACE TABLE <stem> AS <select>`` (small reference tables);
* ``incremental(<date column>)``: the model is a function of the window [$start_date, $end_date];
  the rows of that window are deleted and the SELECT's rows inserted, in one transaction, so a rerun
  of the same window gives identical tables and other windows are untouched.
* ``incremental(<month column>, month)``: the same at month grain: the rows of every month that
  intersects the window ([$start_month, $end_date], ``$start_month`` = first day of the start
  date's month) are replaced; the SELECT must produce exactly those months.

An incremental model may also declare ``-- sliced_by: <table>[(<date column>)][, <n> rows]``:
its rows of a day depend only on the rows of that day of ``<table>`` (date column: the model's own
unless named) and on inputs the model reads around them (a lookback or lookahead), so a window can
be built as consecutive slices of days, each holding at most ``<n>`` (default ``SLICE_ROWS``) rows
of ``<table>`` (a day above the limit is a slice of its own), with the same rows as one build.
Each slice binds its own ``$start_date`` / ``$end_date``; a rule that needs the end of the data
(not of the slice) binds ``$data_end_date``. Memory then grows with the slice, not with the
window (at workload L, ``fct_attribution`` and ``fct_conversion_lift`` run out of 1 GB of DuckDB
memory in one piece; docs/performance.md, "Memory").

The pipeline runs every stage of a build inside one outer transaction (``atomic``): the
transactions opened here then join it, and a failed gate rolls the whole build back.

Parameters are bound (``$name``), never formatted into SQL text. Only the parameters a file uses
are passed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from attribution.config import Settings
from attribution.run_lock import WarehouseBusy

LAYERS: tuple[str, ...] = ("staging", "intermediate", "marts", "kpi")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_MATERIALIZED = re.compile(
    r"^--\s*materialized:\s*(view|table|incremental\((\w+)(?:,\s*(month))?\))\s*$", re.M
)
_SLICED_BY = re.compile(r"^--\s*sliced_by:\s*(\w+)(?:\((\w+)\))?(?:\s*,\s*(\d+)\s+rows)?\s*$", re.M)
# default rows of a sliced model's driving table per slice: ~2.6M ledger rows of fct_attribution,
# well under 1 GB of DuckDB memory (measured at workload L, docs/performance.md "Memory"); a model
# may declare its own (", <n> rows" after the table)
SLICE_ROWS = 250_000


def sql_dir() -> Path:
    """Return the folder holding the SQL models (source tree, or the copy inside the wheel)."""
    source_tree = Path(__file__).resolve().parent.parent / "sql"
    if source_tree.is_dir():
        return source_tree
    return Path(__file__).resolve().parent / "_sql"


@dataclass(frozen=True)
class Model:
    """One SQL model file: its table name, layer, materialisation and SELECT text."""

    name: str
    layer: str
    materialized: str
    date_column: str | None
    sql: str
    path: Path
    by_month: bool = False
    sliced_by: str | None = None  # built in slices of days of this table (see module docstring)
    slice_column: str | None = None  # the date column of ``sliced_by``
    slice_rows: int | None = None  # rows of ``sliced_by`` per slice (None: ``SLICE_ROWS``)

    @property
    def grain(self) -> str:
        return self.sql.splitlines()[0].lstrip("- ").strip()


def load_model(path: Path) -> Model:
    """Return the Model parsed from one SQL file (stem = table name)."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("--"):
        raise ValueError(f"{path}: the first line must state the grain as a comment")
    match = _MATERIALIZED.search(text)
    if match is None:
        raise ValueError(
            f"{path}: missing '-- materialized: view|table|incremental(col[, month])' line"
        )
    kind = match.group(1)
    date_column = match.group(2)
    if _SLICED_BY.search(text) is not None and (date_column is None or match.group(3) == "month"):
        raise ValueError(f"{path}: only a daily incremental model can be sliced_by a table")
    return Model(
        name=path.stem,
        layer=path.parent.name,
        materialized="incremental" if date_column else kind,
        date_column=date_column,
        sql=text.strip().rstrip(";"),
        path=path,
        by_month=match.group(3) == "month",
        **_slicing(text, date_column),
    )


def _slicing(text: str, date_column: str | None) -> dict[str, Any]:
    """The ``sliced_by`` / ``slice_column`` / ``slice_rows`` fields of a file's header (all
    None without a ``-- sliced_by:`` line; the column defaults to ``date_column``)."""
    sliced = _SLICED_BY.search(text)
    if sliced is None:
        return {"sliced_by": None, "slice_column": None, "slice_rows": None}
    return {
        "sliced_by": sliced.group(1),
        "slice_column": sliced.group(2) or date_column,
        "slice_rows": int(sliced.group(3)) if sliced.group(3) else None,
    }


def models(layers: tuple[str, ...] = LAYERS) -> list[Model]:
    """Return every model in run order: by layer, then by an explicit ``-- order: N`` or name."""
    found: list[Model] = []
    for layer in layers:
        folder = sql_dir() / layer
        layer_models = [load_model(path) for path in sorted(folder.glob("*.sql"))]
        layer_models.sort(key=lambda m: (_declared_order(m.sql), m.name))
        found.extend(layer_models)
    return found


def _declared_order(sql: str) -> int:
    match = re.search(r"^--\s*order:\s*(\d+)\s*$", sql, re.M)
    return int(match.group(1)) if match else 100


MEMORY_LIMIT = re.compile(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*")


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Return a connection to the warehouse file with UTC as the session time zone.

    ``memory_limit`` (e.g. ``"4GB"``) and ``threads`` set DuckDB's limits for this connection;
    above the memory limit DuckDB spills to ``<warehouse>.tmp`` beside the file. Raises
    ``WarehouseBusy`` when another process has the file open and DuckDB refuses the lock.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise WarehouseBusy(
            f"warehouse {path} is in use by another process, which keeps it open: "
            f"{str(exc).splitlines()[0]}. Close that connection, or try again when it has finished."
        ) from exc
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        # SET takes no bound parameters: the value is checked against a strict pattern first
        if not MEMORY_LIMIT.fullmatch(memory_limit):
            con.close()
            raise ValueError(f"memory_limit {memory_limit!r} is not a size such as '4GB'")
        con.execute(f"SET memory_limit = '{memory_limit.strip()}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def bound_parameters(sql: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return the subset of ``parameters`` that ``sql`` references; fail on a missing one."""
    wanted = set(_PARAM.findall(sql))
    missing = wanted - set(parameters)
    if missing:
        raise KeyError(f"SQL needs parameters it was not given: {sorted(missing)}")
    return {name: parameters[name] for name in sorted(wanted)}


def model_parameters(settings: Settings, start_date: date, end_date: date) -> dict[str, Any]:
    """Return every parameter a model may bind for the output window [start_date, end_date]."""
    return {
        **_window_parameters(start_date, end_date),
        "data_end_date": end_date,  # the last day of data, also when a model is built in slices
        "max_window_days": settings.max_window_days,
        "session_timeout_minutes": settings.session_timeout_minutes,
        "half_life_days": float(settings.half_life_days),
        "kpi_window_days": settings.kpi_window_days,
    }


def _window_parameters(start_date: date, end_date: date) -> dict[str, date]:
    return {
        "start_date": start_date,
        "end_date": end_date,
        "start_month": start_date.replace(day=1),
    }


def day_slices(
    day_rows: list[tuple[date, int]], start: date, end: date, max_rows: int
) -> list[tuple[date, date]]:
    """Return consecutive windows covering [start, end] exactly, each holding at most
    ``max_rows`` of the counted rows (``day_rows``: (day, rows) of the days that have any).
    A day above the limit is a slice of its own; days without rows join a neighbour."""
    slices: list[tuple[date, date]] = []
    first, held = start, 0
    for day, rows in sorted(day_rows):
        if not start <= day <= end:
            continue
        if held and held + rows > max_rows:
            slices.append((first, day - timedelta(days=1)))
            first, held = day, 0
        held += rows
    slices.append((first, end))
    return slices


def _slices_of(
    con: duckdb.DuckDBPyConnection, model: Model | Audit, start: date, end: date
) -> list[tuple[date, date]]:
    if model.sliced_by is None:
        return [(start, end)]
    rows = con.execute(
        f'SELECT "{model.slice_column}", count(*) FROM "{model.sliced_by}" '
        f'WHERE "{model.slice_column}" BETWEEN $start AND $end GROUP BY ALL',
        {"start": start, "end": end},
    ).fetchall()
    return day_slices(rows, start, end, model.slice_rows or SLICE_ROWS)


def write_config_tables(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Write the settings that SQL joins against (windows, marketplaces) as small tables."""
    con.execute("CREATE OR REPLACE TABLE cfg_windows (window_days INTEGER NOT NULL)")
    con.executemany(
        "INSERT INTO cfg_windows VALUES (?)", [(days,) for days in settings.windows_days]
    )
    con.execute(
        "CREATE OR REPLACE TABLE cfg_marketplaces (marketplace VARCHAR NOT NULL, "
        "currency VARCHAR NOT NULL)"
    )
    con.executemany(
        "INSERT INTO cfg_marketplaces VALUES (?, ?)", sorted(settings.marketplaces.items())
    )


def scalar(
    con: duckdb.DuckDBPyConnection, sql: str, parameters: Mapping[str, Any] | list | None = None
) -> Any:
    """Return the first column of the first row of a query (None if no row).

    Reads the whole result: in DuckDB 2 a result left half-read (``fetchone``) blocks the
    connection for relations and Arrow/polars output.
    """
    result = con.execute(sql, parameters).fetchall() if parameters else con.execute(sql).fetchall()
    return result[0][0] if result else None


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Return True if a table or view of that name exists in the main schema."""
    return bool(
        scalar(
            con,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_name = ?",
            [name],
        )
    )


def require_tables(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    """Raise ``LookupError`` naming the first table the warehouse does not have yet."""
    for table in tables:
        if not table_exists(con, table):
            raise LookupError(f"the warehouse has no {table}: run `attribution run` first")


def exact_money_sum(expression: str) -> str:
    """Return SQL summing ``expression`` x line_revenue_usd exactly (DECIMAL, 4 places).

    Each credit x revenue is cast to DECIMAL(38, 10) before the sum, so the total does not depend
    on the summation order (reruns are identical), as the window-sensitivity mart does.
    """
    return (
        f"cast(sum(cast({expression} * cast(line_revenue_usd AS DOUBLE) AS DECIMAL(38, 10))) "
        "AS DECIMAL(18, 4))"
    )


def run_model(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    parameters: Mapping[str, Any],
    *,
    rebuild: bool = False,
) -> int | None:
    """Materialise one model; return the rows written for tables (None for views).

    ``rebuild`` (a full build) replaces an incremental model's whole table instead of its
    window: the same rows, and a model whose columns changed gets its new schema. A name that
    exists as the other kind (a table that became a view, or the reverse) is dropped first.
    """
    params = bound_parameters(model.sql, parameters)
    if model.materialized == "view":
        if params:
            raise ValueError(f"{model.path}: a view cannot bind parameters {sorted(params)}")
        _drop_other_kind(con, model.name, keep="VIEW")
        con.execute(f'CREATE OR REPLACE VIEW "{model.name}" AS {model.sql}')
        return None
    if model.materialized == "table" or (rebuild and model.sliced_by is None):
        _drop_other_kind(con, model.name, keep="BASE TABLE")
        con.execute(f'CREATE OR REPLACE TABLE "{model.name}" AS {model.sql}', params)
        return _count(con, model.name)
    # incremental: replace the output window (whole months for by-month models) atomically
    first = parameters["start_month"] if model.by_month else parameters["start_date"]
    with atomic(con):
        if rebuild:  # a sliced model's full build: a new, empty table of the current schema
            _drop_other_kind(con, model.name, keep="BASE TABLE")
            con.execute(f'DROP TABLE IF EXISTS "{model.name}"')
        if not table_exists(con, model.name):
            con.execute(
                f'CREATE TABLE "{model.name}" AS SELECT * FROM ({model.sql}) AS q LIMIT 0',
                params,
            )
        con.execute(
            f'DELETE FROM "{model.name}" WHERE "{model.date_column}" BETWEEN $first AND $last',
            {"first": first, "last": parameters["end_date"]},
        )
        before = _count(con, model.name)
        for days in _slices_of(con, model, parameters["start_date"], parameters["end_date"]):
            sliced = bound_parameters(model.sql, {**parameters, **_window_parameters(*days)})
            con.execute(f'INSERT INTO "{model.name}" {model.sql}', sliced)
        written = _count(con, model.name) - before
    return written


def _drop_other_kind(con: duckdb.DuckDBPyConnection, name: str, *, keep: str) -> None:
    """Drop ``name`` if it exists as the other kind of relation than ``keep`` (VIEW/BASE TABLE)."""
    kind = scalar(
        con,
        "SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_name = ?",
        [name],
    )
    if kind is not None and kind != keep:
        con.execute(f'DROP {"VIEW" if kind == "VIEW" else "TABLE"} "{name}"')


_OPEN_TRANSACTIONS: set[int] = set()  # id() of connections inside an atomic() block


@contextmanager
def atomic(con: duckdb.DuckDBPyConnection, *, keep: bool = True) -> Iterator[None]:
    """Run the block in a transaction: commit on success (roll back with ``keep=False``, to
    measure or try without writing), roll back on error.

    Inside another ``atomic`` block on the same connection the block simply joins it (DuckDB
    has no nested transactions, and a refused BEGIN aborts the open one): the outermost block
    commits or rolls back everything.
    """
    key = id(con)
    if key in _OPEN_TRANSACTIONS:
        yield
        return
    con.execute("BEGIN TRANSACTION")
    _OPEN_TRANSACTIONS.add(key)
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT" if keep else "ROLLBACK")
    finally:
        _OPEN_TRANSACTIONS.discard(key)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(scalar(con, f'SELECT count(*) FROM "{table}"'))


def run_models(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    start_date: date,
    end_date: date,
    layers: tuple[str, ...] = LAYERS,
    *,
    rebuild: bool = False,
    window_of: Callable[[Model], tuple[date, date] | None] | None = None,
) -> Iterator[tuple[Model, int | None]]:
    """Run every model for the window, yielding (model, rows written) as each finishes;
    ``rebuild`` replaces incremental tables whole (a full build over every day of data).

    ``window_of`` gives a model its own output window instead (a nightly build restates each
    incremental model from its own first changed day); None: the model is not run (0 rows).
    """
    write_config_tables(con, settings)
    for model in models(layers):
        window = window_of(model) if window_of else (start_date, end_date)
        if window is None:
            yield model, 0
            continue
        parameters = model_parameters(settings, *window)
        yield model, run_model(con, model, parameters, rebuild=rebuild)


@dataclass(frozen=True)
class Audit:
    """One ``sql/audits`` query: a SELECT of the offending rows of the window (none = passed).

    ``-- sliced_by: <table>(<date column>)[, <n> rows]`` says every offending row belongs to one
    day of that table's column, so the window's offending rows are the sum over consecutive
    slices of days (as a sliced model is built): the audit's memory then grows with the slice,
    not with the window.
    """

    name: str
    sql: str
    path: Path
    sliced_by: str | None = None
    slice_column: str | None = None
    slice_rows: int | None = None


def load_audit(path: Path) -> Audit:
    """Return the Audit parsed from one ``sql/audits`` file (stem = audit name)."""
    text = path.read_text(encoding="utf-8")
    slicing = _slicing(text, None)
    if slicing["sliced_by"] is not None and slicing["slice_column"] is None:
        raise ValueError(f"{path}: an audit's sliced_by must name its date column: <table>(<col>)")
    return Audit(name=path.stem, sql=text.strip().rstrip(";"), path=path, **slicing)


def audits() -> list[Audit]:
    """Return every audit of ``sql/audits``, by name."""
    return [load_audit(path) for path in sorted((sql_dir() / "audits").glob("*.sql"))]


SlicePlans = dict[tuple[str | None, str | None, int | None, date, date], list[tuple[date, date]]]


def offending_rows(
    con: duckdb.DuckDBPyConnection,
    audit: Audit,
    settings: Settings,
    start: date,
    end: date,
    plans: SlicePlans | None = None,
) -> int:
    """Return the audit's offending rows for [start, end] (summed over its slices of days).

    ``plans`` shares the slices between audits sliced alike (same table, column and rows a
    slice): ``run_audits`` plans them once per run instead of once per audit. A DuckDB error is
    raised again with its type kept and the audit named (at 5x L an audit ran out of memory and
    the run record did not say which).
    """
    parameters = model_parameters(settings, start, end)
    plans = {} if plans is None else plans
    key = (audit.sliced_by, audit.slice_column, audit.slice_rows, start, end)
    try:
        if key not in plans:
            plans[key] = _slices_of(con, audit, start, end)
        return sum(
            int(
                scalar(
                    con,
                    f"SELECT count(*) FROM ({audit.sql}) AS offending",
                    bound_parameters(audit.sql, {**parameters, **_window_parameters(*days)}),
                )
            )
            for days in plans[key]
        )
    except duckdb.Error as error:
        raise type(error)(f"audit {audit.name} ({audit.path.name}): {error}") from error


def run_audits(
    con: duckdb.DuckDBPyConnection, settings: Settings, start_date: date, end_date: date
) -> dict[str, int]:
    """Run every ``sql/audits`` query for the window; return offending-row counts per audit.

    Audits sliced alike share one plan of their slices (one scan of the slicing column)."""
    plans: SlicePlans = {}
    return {
        audit.name: offending_rows(con, audit, settings, start_date, end_date, plans)
        for audit in audits()
    }
