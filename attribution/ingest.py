"""Landing files -> DuckDB raw tables + quarantine: the I/O edge of the pipeline.

Docs: ``docs/ingest.md`` (rules table, conservation law, idempotence, what stops a run).

Every file is read by DuckDB into a temporary all-text table, every contract rule is checked in
one vectorised SQL pass, and the file's rows are then split three ways in one transaction:
loaded into ``raw_<source>``, skipped as duplicates, or written to ``quarantine``. For each file
``rows_read = rows_loaded + duplicates + quarantined`` is checked and recorded in
``_ingest_files``. A file whose bytes were already loaded for its source is skipped
(``_loaded_files``), so loading the same landing folder twice changes nothing but the run
bookkeeping.

This module never imports Prefect or Great Expectations.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import duckdb

from attribution.config import (
    ARMS,
    CHANNELS,
    EVENT_TYPES,
    ORDER_STATUSES,
    USER_ID_KEY_ENV,
    Settings,
    user_id_key,
)
from attribution.contract import FILE_SUFFIXES, SOURCES, Column, Source
from attribution.pseudonyms import key_check, pseudonyms

__all__ = [
    "BOOKKEEPING_TABLES",
    "FileResult",
    "IgnoredPath",
    "IngestError",
    "IngestResult",
    "LandingFile",
    "discover_files",
    "ensure_raw_schema",
    "ingest_landing",
]

QUARANTINE_TABLE = "quarantine"
LOADED_FILES_TABLE = "_loaded_files"
INGEST_FILES_TABLE = "_ingest_files"
# One row: whether user ids were pseudonymised, and with which key (a key check value, not the key).
PSEUDONYMISATION_TABLE = "_pseudonymisation"
PSEUDONYMISATION_OFF = "off"
BOOKKEEPING_TABLES: tuple[str, ...] = (
    QUARANTINE_TABLE,
    LOADED_FILES_TABLE,
    INGEST_FILES_TABLE,
    PSEUDONYMISATION_TABLE,
)

# Technical columns appended to every raw table.
RAW_EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_file", "VARCHAR"),
    ("_row", "BIGINT"),
    ("_run_id", "VARCHAR"),
    ("_loaded_at", "TIMESTAMP"),
)

STATUS_LOADED = "loaded"
STATUS_ALREADY_LOADED = "already_loaded"
STATUS_FAILED = "failed"

_PARTITION_RE = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")
_SUFFIXES_LONGEST_FIRST = tuple(sorted(FILE_SUFFIXES, key=len, reverse=True))
_FORMATS = {
    ".csv": ("csv", False),
    ".csv.gz": ("csv", True),
    ".jsonl": ("jsonl", False),
    ".jsonl.gz": ("jsonl", True),
    ".parquet": ("parquet", False),
}

# Temporary tables used while one file is processed (dropped before its transaction ends).
_T_IN = "_ingest_in"
_T_CHK = "_ingest_chk"
_T_DUP = "_ingest_dup"
_T_PSEUDONYMS = "_ingest_pseudonyms"  # a registered Arrow table: user_id -> pseudonym
_ROW_COL = "__ingest_row"  # 1-based parquet row number inside _T_IN


class IngestError(RuntimeError):
    """A file cannot be ingested at all (unreadable, missing a required column, path escape)."""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandingFile:
    """One discovered landing file."""

    source: str
    path: Path  # resolved absolute path
    rel: str  # posix path relative to the landing folder, as stored in _file / quarantine.file
    fmt: str  # csv | jsonl | parquet
    compressed: bool
    partition: date | None  # dt=YYYY-MM-DD, None for undated files


@dataclass(frozen=True)
class IgnoredPath:
    """A path in the landing folder that is not ingested, and why."""

    path: str
    reason: str


@dataclass
class FileResult:
    """What happened to one landing file."""

    source: str
    file: str
    sha256: str
    rows_read: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    status: str = STATUS_LOADED
    rules: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def conserved(self) -> bool:
        return self.rows_read == self.rows_loaded + self.duplicates + self.quarantined


@dataclass
class IngestResult:
    """Per-file statistics and totals of one ``ingest_landing`` call."""

    run_id: str
    run_date: date | None
    run_time: datetime
    loaded_at: datetime
    files: list[FileResult] = field(default_factory=list)
    ignored: list[IgnoredPath] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def files_loaded(self) -> int:
        return sum(f.status == STATUS_LOADED for f in self.files)

    @property
    def files_already_loaded(self) -> int:
        return sum(f.status == STATUS_ALREADY_LOADED for f in self.files)

    @property
    def loaded_sources(self) -> tuple[str, ...]:
        """Sources that received at least one row in this run."""
        return tuple(sorted({f.source for f in self.files if f.rows_loaded > 0}))

    @property
    def rules(self) -> dict[str, int]:
        """Quarantined rows per rule, over all files."""
        total: dict[str, int] = {}
        for f in self.files:
            for rule, n in f.rules.items():
                total[rule] = total.get(rule, 0) + n
        return dict(sorted(total.items()))

    @property
    def warnings(self) -> list[str]:
        return [f"ignored {item.path}: {item.reason}" for item in self.ignored]

    def totals(self) -> dict[str, int]:
        """Run totals as plain ints (rows_read = rows_loaded + duplicates + quarantined)."""
        return {
            "files": len(self.files),
            "files_loaded": self.files_loaded,
            "files_already_loaded": self.files_already_loaded,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
        }

    def lines(self, per_file: bool = True) -> list[str]:
        """A plain-text table of the run, one string per line (the CLI prints these).

        ``per_file=False`` gives one row per source (files counted) instead of one per file.
        """
        header = ("source", "file", "read", "loaded", "duplicates", "quarantined", "status")
        if per_file:
            rows = [
                (
                    f.source,
                    f.file,
                    str(f.rows_read),
                    str(f.rows_loaded),
                    str(f.duplicates),
                    str(f.quarantined),
                    f.status,
                )
                for f in self.files
            ]
        else:
            rows = []
            for source in sorted({f.source for f in self.files}):
                files = [f for f in self.files if f.source == source]
                statuses: dict[str, int] = {}
                for f in files:
                    statuses[f.status] = statuses.get(f.status, 0) + 1
                rows.append(
                    (
                        source,
                        f"{len(files)} files",
                        str(sum(f.rows_read for f in files)),
                        str(sum(f.rows_loaded for f in files)),
                        str(sum(f.duplicates for f in files)),
                        str(sum(f.quarantined for f in files)),
                        ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())),
                    )
                )
        total = (
            "total",
            f"{len(self.files)} files",
            str(self.rows_read),
            str(self.rows_loaded),
            str(self.duplicates),
            str(self.quarantined),
            f"{self.files_loaded} loaded, {self.files_already_loaded} already loaded",
        )
        widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(len(header))]
        numeric = {2, 3, 4, 5}

        def fmt(row: tuple[str, ...]) -> str:
            cells = [
                cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                for i, cell in enumerate(row)
            ]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        when = f"run_date {self.run_date.isoformat()}" if self.run_date else "full run"
        out = [f"Ingest run {self.run_id} ({when}, {self.seconds:.1f} s)", fmt(header), rule]
        out += [fmt(r) for r in rows]
        out += [rule, fmt(total)]
        if self.rules:
            out.append(
                "quarantined by rule: " + ", ".join(f"{k}={v}" for k, v in self.rules.items())
            )
        out += [f"warning: {w}" for w in self.warnings]
        return out

    def render(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict:
        """JSON-serialisable summary (no datetime or Decimal objects)."""
        return {
            "run_id": self.run_id,
            "run_date": self.run_date.isoformat() if self.run_date else None,
            "run_time": self.run_time.isoformat(),
            "loaded_at": self.loaded_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "files": [{**asdict(f), "seconds": round(f.seconds, 3)} for f in self.files],
            "ignored": [asdict(i) for i in self.ignored],
            "totals": self.totals(),
            "rules": self.rules,
            "loaded_sources": list(self.loaded_sources),
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


def _q(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: tuple[str, ...] | list[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw_* tables, quarantine, _loaded_files and _ingest_files if absent."""
    for source in SOURCES.values():
        cols = [f"{_q(c.name)} {c.duckdb_type}" for c in source.columns]
        cols += [f"{_q(name)} {typ}" for name, typ in RAW_EXTRA_COLUMNS]
        con.execute(f"CREATE TABLE IF NOT EXISTS {_q(source.raw_table)} ({', '.join(cols)})")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
            source VARCHAR, file VARCHAR, "row" BIGINT, rule VARCHAR, raw VARCHAR,
            loaded_at TIMESTAMP, run_id VARCHAR)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {LOADED_FILES_TABLE} (
            sha256 VARCHAR, file VARCHAR, source VARCHAR, loaded_at TIMESTAMP, run_id VARCHAR)"""
    )
    con.execute(f"CREATE TABLE IF NOT EXISTS {PSEUDONYMISATION_TABLE} (key_check VARCHAR)")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {INGEST_FILES_TABLE} (
            run_id VARCHAR, source VARCHAR, file VARCHAR, sha256 VARCHAR, rows_read BIGINT,
            rows_loaded BIGINT, duplicates BIGINT, quarantined BIGINT, status VARCHAR,
            loaded_at TIMESTAMP)"""
    )


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


def _file_format(name: str) -> tuple[str, bool] | None:
    lower = name.lower()
    for suffix in _SUFFIXES_LONGEST_FIRST:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return _FORMATS[suffix]
    return None


def _partition_date(name: str) -> date | None:
    match = _PARTITION_RE.fullmatch(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def discover_files(
    landing_dir: Path,
    run_date: date | None = None,
    *,
    date_span: tuple[date, date] | None = None,
) -> tuple[list[LandingFile], list[IgnoredPath]]:
    """Find the landing files to ingest (sorted by path) and the paths that are ignored.

    With ``run_date`` only ``dt=<run_date>`` partitions and undated files are taken; with
    ``date_span`` (first, last) the partitions of those dates, both ends inclusive. Other
    partitions are out of scope (not listed as ignored). Every path that is read or walked must
    resolve inside the landing folder (symlinks included), otherwise ``IngestError``.
    """
    if run_date is not None:
        if date_span is not None:
            raise ValueError("give run_date or date_span, not both")
        date_span = (run_date, run_date)
    root = Path(landing_dir)
    if not root.is_dir():
        raise IngestError(f"landing folder {root} does not exist or is not a folder")
    root_resolved = root.resolve()
    files: list[LandingFile] = []
    ignored: list[IgnoredPath] = []

    def check_inside(path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(root_resolved):
            raise IngestError(
                f"{path} resolves to {resolved}, outside the landing folder {root_resolved}: "
                "refusing to read it"
            )
        return resolved

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    def take(source: str, path: Path, partition: date | None) -> None:
        fmt = _file_format(path.name)
        if fmt is None:
            ignored.append(IgnoredPath(rel(path), "unsupported file type"))
            return
        resolved = check_inside(path)
        if not resolved.is_file():
            ignored.append(IgnoredPath(rel(path), "not a regular file"))
            return
        files.append(LandingFile(source, resolved, rel(path), fmt[0], fmt[1], partition))

    for entry in sorted(root.iterdir()):
        if not (entry.is_dir() and entry.name in SOURCES):
            reason = "unknown source folder" if entry.is_dir() else "not inside a source folder"
            ignored.append(IgnoredPath(rel(entry), reason))
            continue
        check_inside(entry)
        for sub in sorted(entry.iterdir()):
            if sub.is_dir():
                partition = _partition_date(sub.name)
                if partition is None:
                    ignored.append(IgnoredPath(rel(sub), "not a dt=YYYY-MM-DD partition folder"))
                    continue
                if date_span is not None and not date_span[0] <= partition <= date_span[1]:
                    continue
                check_inside(sub)
                for leaf in sorted(sub.iterdir()):
                    if leaf.is_dir():
                        ignored.append(IgnoredPath(rel(leaf), "folder inside a partition"))
                    else:
                        take(entry.name, leaf, partition)
            else:
                take(entry.name, sub, None)
    files.sort(key=lambda f: f.rel)
    return files, ignored


# --------------------------------------------------------------------------------------------
# Reading one file into an all-text temp table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Staged:
    """How to address the columns of a file staged in _T_IN."""

    row_expr: str  # 1-based row number, in terms of _T_IN columns
    text_exprs: dict[str, str]  # contract column -> text expression (absent optional: NULL)
    # (contract column, key in quarantine.raw, value as read in terms of alias i); keys that
    # come from the file are bound: key "$raw_keys[3]" with raw_params {"raw_keys": [...]}
    raw_fields: tuple[tuple[str, str, str], ...]
    join_col: str  # expression on alias i equal to the 1-based row number
    not_object_expr: str = "FALSE"
    extra_names_expr: str | None = None  # VARCHAR[] of the row's non-contract column names
    malformed_col: str | None = None  # _T_IN column: why a record could not be parsed (or NULL)
    raw_params: dict[str, list[str]] = field(default_factory=dict)


def _raw_sql(staged: _Staged, *, pseudonymised: bool) -> str:
    """The quarantined row as read, as JSON, in terms of aliases i (_T_IN) and c (_T_CHK).

    Only contract columns are kept, with the names of any other columns under
    ``_extra_columns`` (an unknown column may hold free text, e.g. a query); a JSON line that is
    not an object keeps only its type, a malformed record only why. Pseudonymised: ``user_id``
    is the row's pseudonym."""
    fields = ", ".join(
        f"{key}, {'c.' + _q('user_id') if pseudonymised and col == 'user_id' else expr}"
        for col, key, expr in staged.raw_fields
    )
    obj = f"json_object({fields})"
    if staged.extra_names_expr:
        extra = staged.extra_names_expr
        obj = (
            f"CASE WHEN len({extra}) > 0 THEN json_merge_patch({obj}, "
            f"json_object('_extra_columns', {extra})) ELSE {obj} END"
        )
    if staged.not_object_expr != "FALSE":
        not_object = staged.not_object_expr.replace("_raw", "i._raw")
        obj = f"CASE WHEN {not_object} THEN json_object('_not_an_object', json_type(i._raw)) ELSE {obj} END"
    if staged.malformed_col is not None:
        why = f"i.{_q(staged.malformed_col)}"
        obj = f"CASE WHEN {why} IS NOT NULL THEN json_object('_malformed', {why}) ELSE {obj} END"
    return obj


# DuckDB quotes the offending record ("Original Line: ..."): left out of our messages, which
# reach logs and _runs (the record may hold user ids, and may be megabytes long).
_ORIGINAL_LINE_RE = re.compile(
    r"Original Line:.*?(?=\n\n|\n(?:Expected Number|Invalid unicode|Maximum line|Possible)|\Z)",
    re.S,
)
_MESSAGE_LINE_CHARS = 300


def _short(exc: BaseException) -> str:
    """First lines of a DuckDB/OS error message, enough to see what went wrong (the offending
    record's content left out, each line at most a few hundred characters)."""
    text = _ORIGINAL_LINE_RE.sub("", str(exc)).strip().splitlines()
    kept = [
        line for line in text[:4] if line.strip() and not line.startswith(("LINE ", "Possible"))
    ]
    return " ".join(line.strip()[:_MESSAGE_LINE_CHARS] for line in kept) or type(exc).__name__


def _open_bytes(path: Path, compressed: bool) -> IO[bytes]:
    return gzip.open(path, "rb") if compressed else path.open("rb")


def _csv_header(path: Path, compressed: bool, rel: str) -> list[str]:
    try:
        with _open_bytes(path, compressed) as fh:
            first = fh.readline()
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"{rel}: cannot read the CSV header: {exc}") from exc
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), None)
    except UnicodeDecodeError as exc:
        raise IngestError(f"{rel}: line 1 (the CSV header) is not valid UTF-8: {exc}") from exc
    except csv.Error as exc:
        raise IngestError(f"{rel}: cannot read the CSV header: {exc}") from exc
    if not header or all(not name.strip() for name in header):
        raise IngestError(f"{rel}: empty file, no CSV header line")
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        raise IngestError(
            f"{rel}: the CSV header is one column ({header[0][:_MESSAGE_LINE_CHARS]!r}): "
            "fields must be separated by commas"
        )
    names = [name.strip() or f"column{i}" for i, name in enumerate(header)]
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise IngestError(f"{rel}: the CSV header repeats column {name!r}")
        seen.add(name.lower())
    return names


def _match_columns(source: Source, names: list[str], rel: str) -> dict[str, str]:
    """Contract column -> file column name (trimmed, case-insensitive); missing required: error."""
    by_lower = {name.strip().lower(): name for name in names}
    found = {c.name: by_lower[c.name] for c in source.columns if c.name in by_lower}
    missing = [c for c in source.required_columns if c not in found]
    if missing:
        raise IngestError(
            f"{rel}: missing required column(s) {', '.join(missing)} for source "
            f"{source.name} (found: {', '.join(names) or 'none'})"
        )
    return found


def _stage_csv(con: duckdb.DuckDBPyConnection, lf: LandingFile, source: Source) -> _Staged:
    names = _csv_header(lf.path, lf.compressed, lf.rel)
    found = _match_columns(source, names, lf.rel)
    # Positional column names c0, c1, ... avoid any clash with the file's own names (rowid ...).
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names))) + "}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_T_IN} AS
        SELECT * FROM read_csv($path, auto_detect = false, header = true, delim = ',',
            quote = '"', escape = '"', encoding = 'utf-8', strict_mode = true,
            compression = {_lit("gzip" if lf.compressed else "none")}, columns = {columns})""",
        {"path": str(lf.path)},
    )
    return _positional(names, found, row_expr="rowid + 1")


def _positional(names: list[str], found: dict[str, str], *, row_expr: str) -> _Staged:
    """Addressing for a staged table whose columns are c0, c1, ... in file order."""
    position = {name: i for i, name in enumerate(names)}
    extra = [n for n in names if n not in found.values()]
    # The file's column names are data: bound as $raw_keys / $extra_names, never SQL text.
    return _Staged(
        row_expr=row_expr,
        text_exprs={c: f"c{position[n]}" for c, n in found.items()},
        raw_fields=tuple(
            (c, f"$raw_keys[{k}]", f"i.c{position[n]}")
            for k, (c, n) in enumerate(found.items(), start=1)
        ),
        join_col=row_expr,
        extra_names_expr="CAST($extra_names AS VARCHAR[])" if extra else None,
        raw_params={"raw_keys": list(found.values()), "extra_names": extra},
    )


def _parquet_text_expr(name: str, duck_type: str) -> str:
    col = _q(name)
    upper = duck_type.upper()
    if upper.endswith("]") or upper.startswith(("STRUCT", "MAP", "UNION")):
        return f"CAST(to_json({col}) AS VARCHAR)"
    if upper.startswith("TIMESTAMP") and "TIME ZONE" not in upper:
        return f"CAST(CAST({col} AS TIMESTAMP) AS VARCHAR)"
    return f"CAST({col} AS VARCHAR)"


def _stage_parquet(con: duckdb.DuckDBPyConnection, lf: LandingFile, source: Source) -> _Staged:
    described = con.execute(
        "DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(lf.path)}
    ).fetchall()
    names = [row[0] for row in described]
    types = [row[1] for row in described]
    found = _match_columns(source, names, lf.rel)
    casts = "".join(
        f", {_parquet_text_expr(n, t)} AS c{i}"
        for i, (n, t) in enumerate(zip(names, types, strict=True))
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_T_IN} AS
        SELECT file_row_number + 1 AS {_ROW_COL}{casts}
        FROM read_parquet($path, file_row_number = true)""",
        {"path": str(lf.path)},
    )
    return _positional(names, found, row_expr=_ROW_COL)


def _stage_jsonl(con: duckdb.DuckDBPyConnection, lf: LandingFile, source: Source) -> _Staged:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_T_IN} AS
        SELECT json AS _raw,
               json_extract_string(json, $paths) AS _v
        FROM read_json_objects($path, format = 'newline_delimited',
            compression = {_lit("gzip" if lf.compressed else "none")})""",
        {"path": str(lf.path), "paths": [f"$.{c.name}" for c in source.columns]},
    )
    return _jsonl_staged(con, lf, source, row_expr="rowid + 1")


def _jsonl_staged(
    con: duckdb.DuckDBPyConnection,
    lf: LandingFile,
    source: Source,
    *,
    row_expr: str,
    malformed: str | None = None,
) -> _Staged:
    """Addressing of a staged JSON lines file (_raw, _v); a required key that no record has
    stops the file."""
    required = source.required_columns
    counts = con.execute(
        "SELECT count(_raw), "
        + ", ".join(f"count(*) FILTER (json_exists(_raw, {_lit('$.' + c)}))" for c in required)
        + f" FROM {_T_IN}"
    ).fetchone()
    assert counts is not None
    if counts[0] > 0:
        missing = [c for c, n in zip(required, counts[1:], strict=True) if n == 0]
        if missing:
            raise IngestError(
                f"{lf.rel}: missing required column(s) {', '.join(missing)} for source "
                f"{source.name} (no record has the key)"
            )
    names = source.column_names
    return _Staged(
        row_expr=row_expr,
        text_exprs={c: f"_v[{i}]" for i, c in enumerate(names, start=1)},
        raw_fields=tuple((c, _lit(c), f"json_extract(i._raw, {_lit('$.' + c)})") for c in names),
        join_col=row_expr,
        not_object_expr="json_type(_raw) IS DISTINCT FROM 'OBJECT'",
        extra_names_expr=f"list_filter(json_keys(i._raw), lambda k: k NOT IN {_in_list(names)})",
        malformed_col=malformed,
    )


# --------------------------------------------------------------------------------------------
# Files with malformed records: read again record by record in Python, bad records quarantined
# --------------------------------------------------------------------------------------------

MALFORMED_RULE = "malformed_record"
_MALFORMED_COL = "__malformed"
_T_RECORDS = "_ingest_records"  # a registered Arrow batch of records
_T_LINES = "_ingest_lines"  # JSON lines as text, before they are typed as JSON
_RECORD_BATCH = 100_000
_MAX_FIELD_CHARS = 256 * 1024 * 1024
# DuckDB errors that concern single records (the Python reader then quarantines them).
_CSV_RECORD_ERRORS = ("CSV Error on Line",)
_JSON_RECORD_ERRORS = ("Malformed JSON", "maximum_object_size", "invalid UTF-8")


def _append_records(
    con: duckdb.DuckDBPyConnection, columns: dict[str, list], *, first: bool, table: str = _T_IN
) -> None:
    """Create (first batch) or extend ``table`` with a batch of records given as text columns."""
    import pyarrow as pa  # only on this fallback path

    schema = pa.schema(
        [(_ROW_COL, pa.int64())] + [(name, pa.string()) for name in list(columns)[1:]]
    )
    con.register(_T_RECORDS, pa.table(columns, schema=schema))
    try:
        if first:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {_T_RECORDS}")
        else:
            con.execute(f"INSERT INTO {table} SELECT * FROM {_T_RECORDS}")
    finally:
        con.unregister(_T_RECORDS)


def _stage_csv_records(con: duckdb.DuckDBPyConnection, lf: LandingFile, source: Source) -> _Staged:
    """Stage a CSV file record by record: a record with another number of fields than the
    header, or with bytes that are not UTF-8, is kept as a malformed record (quarantined)."""
    names = _csv_header(lf.path, lf.compressed, lf.rel)
    found = _match_columns(source, names, lf.rel)
    keys = [_ROW_COL] + [f"c{i}" for i in range(len(names))] + [_MALFORMED_COL]
    columns: dict[str, list] = {key: [] for key in keys}
    first, number, line = True, 0, 1
    limit = csv.field_size_limit()
    csv.field_size_limit(_MAX_FIELD_CHARS)  # process-wide: restored below
    try:
        with (
            _open_bytes(lf.path, lf.compressed) as raw,
            io.TextIOWrapper(
                raw, encoding="utf-8-sig", errors="surrogateescape", newline=""
            ) as text,
        ):
            reader = csv.reader(text, strict=True)
            next(reader, None)  # the header
            while True:
                line = reader.line_num + 1
                try:
                    record = next(reader, None)
                except csv.Error as exc:
                    raise IngestError(
                        f"{lf.rel}: the record from line {line} cannot be read: {exc}"
                    ) from exc
                if record is None:
                    break
                if not record:  # a blank line is not a record
                    continue
                number += 1
                problem = None
                if len(record) != len(names):
                    problem = f"line {line}: expected {len(names)} fields, found {len(record)}"
                else:
                    try:
                        "".join(record).encode("utf-8")
                    except UnicodeEncodeError:
                        problem = f"line {line}: not valid UTF-8"
                columns[_ROW_COL].append(number)
                for i in range(len(names)):
                    columns[f"c{i}"].append(None if problem else record[i])
                columns[_MALFORMED_COL].append(problem)
                if len(columns[_ROW_COL]) >= _RECORD_BATCH:
                    _append_records(con, columns, first=first)
                    first, columns = False, {key: [] for key in keys}
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"{lf.rel}: cannot read the file: {exc}") from exc
    finally:
        csv.field_size_limit(limit)
    if first or columns[_ROW_COL]:
        _append_records(con, columns, first=first)
    return replace(_positional(names, found, row_expr=_ROW_COL), malformed_col=_MALFORMED_COL)


def _stage_jsonl_records(
    con: duckdb.DuckDBPyConnection, lf: LandingFile, source: Source
) -> _Staged:
    """Stage a JSON lines file line by line: a line that is not valid UTF-8 or not valid JSON
    is kept as a malformed record (quarantined); blank lines are not records."""
    keys = [_ROW_COL, "_text", _MALFORMED_COL]
    columns: dict[str, list] = {key: [] for key in keys}
    first, number = True, 0
    try:
        with _open_bytes(lf.path, lf.compressed) as fh:
            for line, data in enumerate(fh, start=1):
                if not data.strip():
                    continue
                number += 1
                text, problem = None, None
                try:
                    text = data.decode("utf-8")
                    json.loads(text)
                except UnicodeDecodeError:
                    text, problem = None, f"line {line}: not valid UTF-8"
                except json.JSONDecodeError as exc:
                    text = None
                    problem = f"line {line}: malformed JSON ({exc.msg} at character {exc.pos + 1})"
                columns[_ROW_COL].append(number)
                columns["_text"].append(text)
                columns[_MALFORMED_COL].append(problem)
                if len(columns[_ROW_COL]) >= _RECORD_BATCH:
                    _append_records(con, columns, first=first, table=_T_LINES)
                    first, columns = False, {key: [] for key in keys}
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"{lf.rel}: cannot read the file: {exc}") from exc
    if first or columns[_ROW_COL]:
        _append_records(con, columns, first=first, table=_T_LINES)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_T_IN} AS
        SELECT {_ROW_COL}, CAST(_text AS JSON) AS _raw,
               json_extract_string(CAST(_text AS JSON), $paths) AS _v, {_MALFORMED_COL}
        FROM {_T_LINES}""",
        {"paths": [f"$.{c.name}" for c in source.columns]},
    )
    con.execute(f"DROP TABLE {_T_LINES}")
    return _jsonl_staged(con, lf, source, row_expr=_ROW_COL, malformed=_MALFORMED_COL)


_STAGERS = {"csv": _stage_csv, "parquet": _stage_parquet, "jsonl": _stage_jsonl}
_RECORD_STAGERS = {
    "csv": (_stage_csv_records, _CSV_RECORD_ERRORS),
    "jsonl": (_stage_jsonl_records, _JSON_RECORD_ERRORS),
}


# --------------------------------------------------------------------------------------------
# Rules: one vectorised SQL pass per file
# --------------------------------------------------------------------------------------------

# Timestamps and dates before this are quarantined (past_timestamp / past_date): epoch-zero and
# year-1 sentinels, which would also stretch the daily calendars (int_fx_daily) over centuries.
EARLIEST_DATE = date(2000, 1, 1)
_EARLIEST_SQL = f"DATE '{EARLIEST_DATE.isoformat()}'"

# Domain rules by column name: (SQL condition on v = typed value, rule name).
_DECIMAL_RULE = {"amount": "invalid_amount", "rate_to_usd": "invalid_rate"}


def _typed_expr(col: Column, t: str) -> str:
    """SQL turning the normalised text ``t`` into the contract type; NULL when it does not parse."""
    typ = col.duckdb_type.upper()
    if typ == "VARCHAR":
        return t
    if typ == "TIMESTAMP":
        return f"(TRY_CAST({t} AS TIMESTAMPTZ) AT TIME ZONE 'UTC')"
    if typ == "DATE":
        return f"TRY_CAST({t} AS DATE)"
    if typ == "INTEGER":
        return (
            f"CASE WHEN regexp_full_match({t}, '[+-]?[0-9]+(\\.0*)?') "
            f"THEN TRY_CAST(split_part({t}, '.', 1) AS INTEGER) END"
        )
    if typ.startswith("DECIMAL"):
        return f"TRY_CAST({t} AS {col.duckdb_type})"
    if typ == "VARCHAR[]":
        # JSON array text ('["a","b"]') or '|'-separated text ('a|b'); elements trimmed.
        return (
            f"CASE WHEN {t} IS NULL THEN NULL "
            f"WHEN starts_with({t}, '[') THEN CASE WHEN json_valid({t}) "
            f"THEN CASE WHEN json_type(CAST({t} AS JSON)) = 'ARRAY' "
            f"AND len(list_filter(json_type(CAST({t} AS JSON), '$[*]'), "
            f"lambda k: k NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT'))) = 0 "
            f"THEN list_transform(CAST(CAST({t} AS JSON) AS VARCHAR[]), lambda s: trim(s)) "
            f"END END "
            f"ELSE list_transform(string_split({t}, '|'), lambda s: trim(s)) END"
        )
    raise ValueError(f"no ingest rule for DuckDB type {col.duckdb_type}")  # pragma: no cover


def _column_rules(
    source: Source, col: Column, t: str, v: str, settings: Settings
) -> list[tuple[str, str]]:
    """(condition, rule) pairs of one column, in the order they are checked."""
    name = col.name
    typ = col.duckdb_type.upper()
    rules: list[tuple[str, str]] = []
    if col.required:
        rules.append((f"{t} IS NULL", f"required:{name}"))
    if typ == "TIMESTAMP":
        rules.append(
            (f"{t} IS NOT NULL AND ({v} IS NULL OR NOT isfinite({v}))", f"invalid_timestamp:{name}")
        )
        rules.append((f"{v} > $future_limit", f"future_timestamp:{name}"))
        rules.append((f"{v} < {_EARLIEST_SQL}", f"past_timestamp:{name}"))
    elif typ == "DATE":
        rules.append(
            (f"{t} IS NOT NULL AND ({v} IS NULL OR NOT isfinite({v}))", f"invalid_date:{name}")
        )
        rules.append((f"{v} > CAST($future_limit AS DATE)", f"future_date:{name}"))
        rules.append((f"{v} < {_EARLIEST_SQL}", f"past_date:{name}"))
    elif typ == "INTEGER":
        rules.append((f"{t} IS NOT NULL AND {v} IS NULL", f"invalid_integer:{name}"))
    elif typ.startswith("DECIMAL"):
        rules.append(
            (f"{t} IS NOT NULL AND {v} IS NULL", _DECIMAL_RULE.get(name, f"invalid_decimal:{name}"))
        )
    elif typ == "VARCHAR[]":
        rules.append(
            (
                f"{t} IS NOT NULL AND ({v} IS NULL OR len(list_filter({v}, "
                f"lambda s: s IS NULL OR s = '')) > 0)",
                f"invalid_{name}",
            )
        )
    # Domain rules.
    if name == "marketplace":  # settings values: bound ($marketplaces), never SQL text
        rules.append((f"NOT list_contains($marketplaces, {v})", "unknown_marketplace"))
    elif name == "channel":
        rules.append((f"{v} NOT IN {_in_list(CHANNELS)}", "invalid_channel"))
    elif name == "event_type":
        rules.append((f"{v} NOT IN {_in_list(EVENT_TYPES)}", "invalid_event_type"))
    elif name == "status":
        rules.append((f"{v} NOT IN {_in_list(ORDER_STATUSES)}", "invalid_status"))
    elif name == "arm":
        rules.append((f"{v} NOT IN {_in_list(ARMS)}", "invalid_arm"))
    elif name == "quantity":
        rules.append((f"{v} < 1", "quantity_below_1"))
    elif name == "amount":
        rules.append((f"{v} < 0", "negative_amount"))
    elif name == "rate_to_usd":
        rules.append((f"{v} <= 0", "invalid_rate"))
    elif name == "currency":
        rules.append((f"NOT regexp_full_match({v}, '[A-Z]{{3}}')", "invalid_currency"))
        if source.name == "orders":
            rules.append((f"NOT list_contains($currencies, {v})", "unknown_currency"))
    return rules


def _check_params(sql: str, settings: Settings, future_limit: datetime) -> dict[str, Any]:
    """The bound values the rule SQL uses (DuckDB refuses parameters a statement lacks)."""
    values: dict[str, Any] = {
        "future_limit": future_limit,
        "marketplaces": sorted(settings.marketplaces),
        "currencies": sorted({*settings.currencies, settings.reporting_currency}),
    }
    return {name: value for name, value in values.items() if f"${name}" in sql}


def _final_expr(source: Source, col: Column, v: str) -> str:
    """The value stored in the raw table (defaults applied)."""
    if source.name == "orders" and col.name == "status":
        return f"COALESCE({v}, 'placed')"
    if source.name == "orders" and col.name == "updated_at":
        return f"COALESCE({v}, {_q('v_ts')})"
    return v


def rule_names(source: Source, settings: Settings | None = None) -> list[str]:
    """Every rule a row of ``source`` can break, in the order they are checked."""
    settings = settings or Settings()
    names = [MALFORMED_RULE, "not_an_object"]
    for col in source.columns:
        names += [r for _, r in _column_rules(source, col, "t", "v", settings)]
    if source.name == "orders":
        names.append("updated_before_placed")
    return list(dict.fromkeys(names))


def _check_sql(source: Source, staged: _Staged, settings: Settings) -> str:
    """CREATE the checked table: row number, typed contract columns, first failing rule."""
    text_cols = []
    for col in source.columns:
        expr = staged.text_exprs.get(col.name)
        text = f"NULLIF(trim({expr}), '')" if expr else "CAST(NULL AS VARCHAR)"
        text_cols.append(f"{text} AS {_q('t_' + col.name)}")
    typed_cols = [
        f"{_typed_expr(col, _q('t_' + col.name))} AS {_q('v_' + col.name)}"
        for col in source.columns
    ]
    malformed = (
        f"{_q(staged.malformed_col)} IS NOT NULL" if staged.malformed_col is not None else "FALSE"
    )
    conditions: list[tuple[str, str]] = [
        ("_malformed", MALFORMED_RULE),
        ("_not_object", "not_an_object"),
    ]
    for col in source.columns:
        conditions += _column_rules(source, col, _q("t_" + col.name), _q("v_" + col.name), settings)
    if source.name == "orders":
        conditions.append((f"{_q('v_updated_at')} < {_q('v_ts')}", "updated_before_placed"))
    rule_case = (
        "CASE " + " ".join(f"WHEN {cond} THEN {_lit(rule)}" for cond, rule in conditions) + " END"
    )
    final_cols = ", ".join(
        f"{_final_expr(source, col, _q('v_' + col.name))} AS {_q(col.name)}"
        for col in source.columns
    )
    return f"""
        CREATE OR REPLACE TEMP TABLE {_T_CHK} AS
        SELECT _row, {final_cols}, {rule_case} AS _rule
        FROM (
            SELECT *, {", ".join(typed_cols)}
            FROM (
                SELECT {staged.row_expr} AS _row, {staged.not_object_expr} AS _not_object,
                       {malformed} AS _malformed,
                       {", ".join(text_cols)}
                FROM {_T_IN}
            ) AS txt
        ) AS typed
    """


def _duplicates_sql(source: Source) -> str:
    """CREATE the row numbers of valid rows that are duplicates: their key repeats an earlier
    valid row of the same file, or is already in the raw table (first occurrence wins).

    A source with ``corrections``: a row is a duplicate only when its values equal the key's
    current values: those of the previous valid row of the key in this file, else those of the
    key's latest delivery in the raw table (the order ``stg_<source>`` ranks deliveries by)."""
    if source.corrections:
        return _correction_duplicates_sql(source)
    keys = ", ".join(_q(k) for k in source.key)
    on_repeat = " AND ".join(f"d.{_q(k)} = c.{_q(k)}" for k in source.key)
    on_raw = " AND ".join(f"r.{_q(k)} = c.{_q(k)}" for k in source.key)
    return f"""
        CREATE OR REPLACE TEMP TABLE {_T_DUP} AS
        SELECT c._row
        FROM {_T_CHK} c
        JOIN (
            SELECT {keys}, min(_row) AS _first FROM {_T_CHK} WHERE _rule IS NULL
            GROUP BY {keys} HAVING count(*) > 1
        ) d ON {on_repeat}
        WHERE c._rule IS NULL AND c._row <> d._first
        UNION
        SELECT c._row
        FROM {_T_CHK} c
        WHERE c._rule IS NULL
          AND EXISTS (SELECT 1 FROM {_q(source.raw_table)} r WHERE {on_raw})
    """


def _correction_duplicates_sql(source: Source) -> str:
    keys = ", ".join(_q(k) for k in source.key)
    on_key = " AND ".join(f"c.{_q(k)} IS NOT DISTINCT FROM f.{_q(k)}" for k in source.key)
    values = source.value_columns
    previous = ", ".join(
        f"lag({_q(v)}) OVER (PARTITION BY {keys} ORDER BY _row) AS {_q('prev_' + v)}"
        for v in values
    )
    latest = ", ".join(f"c.{_q(v)} AS {_q('cur_' + v)}" for v in values)
    # lag() is NULL only on a key's first row in the file (value columns of valid rows are set).
    same = " AND ".join(
        f"{_q(v)} IS NOT DISTINCT FROM CASE WHEN is_first THEN {_q('cur_' + v)} "
        f"ELSE {_q('prev_' + v)} END"
        for v in values
    )
    return f"""
        CREATE OR REPLACE TEMP TABLE {_T_DUP} AS
        WITH file_rows AS (
            SELECT _row, {keys}, {", ".join(_q(v) for v in values)}, {previous},
                row_number() OVER (PARTITION BY {keys} ORDER BY _row) = 1 AS is_first
            FROM {_T_CHK} WHERE _rule IS NULL
        ),
        ranked AS (
            SELECT *, row_number() OVER (
                PARTITION BY {keys}
                ORDER BY _loaded_at DESC NULLS LAST, _file DESC NULLS LAST, _row DESC NULLS LAST,
                    _run_id DESC NULLS LAST
            ) AS delivery_rank
            FROM {_q(source.raw_table)} c
            WHERE EXISTS (SELECT 1 FROM file_rows f WHERE {on_key})
        ),
        current_values AS (
            SELECT {", ".join("c." + _q(k) for k in source.key)}, {latest}
            FROM ranked c WHERE delivery_rank = 1
        )
        SELECT _row
        FROM file_rows LEFT JOIN current_values USING ({keys})
        WHERE {same}
    """


# --------------------------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for table in (_T_IN, _T_CHK, _T_DUP, _T_LINES):
        con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _record_file(
    con: duckdb.DuckDBPyConnection, res: FileResult, run_id: str, loaded_at: datetime
) -> None:
    con.execute(
        f"INSERT INTO {INGEST_FILES_TABLE} VALUES "
        "($run_id, $source, $file, $sha, $read, $loaded, $dups, $quar, $status, $at)",
        {
            "run_id": run_id,
            "source": res.source,
            "file": res.file,
            "sha": res.sha256,
            "read": res.rows_read,
            "loaded": res.rows_loaded,
            "dups": res.duplicates,
            "quar": res.quarantined,
            "status": res.status,
            "at": loaded_at,
        },
    )


def _stage(con: duckdb.DuckDBPyConnection, lf: LandingFile) -> _Staged:
    """Read the file into the temp table _T_IN (outside the file's transaction: row ids of a
    committed table are its 0-based insertion positions, which gives the row numbers)."""
    try:
        return _STAGERS[lf.fmt](con, lf, SOURCES[lf.source])
    except IngestError:
        raise
    except (duckdb.Error, OSError, UnicodeDecodeError) as exc:
        fallback, record_errors = _RECORD_STAGERS.get(lf.fmt, (None, ()))
        if fallback is not None and any(marker in str(exc) for marker in record_errors):
            try:
                return fallback(con, lf, SOURCES[lf.source])
            except duckdb.Error as again:
                raise IngestError(
                    f"{lf.rel}: cannot read the file as {lf.fmt}: {_short(again)}"
                ) from again
        raise IngestError(f"{lf.rel}: cannot read the file as {lf.fmt}: {_short(exc)}") from exc


def _load_one(
    con: duckdb.DuckDBPyConnection,
    lf: LandingFile,
    staged: _Staged,
    settings: Settings,
    res: FileResult,
    *,
    run_id: str,
    loaded_at: datetime,
    future_limit: datetime,
    user_key: bytes | None,
) -> None:
    """Check and split one staged file; runs inside the caller's transaction."""
    source = SOURCES[lf.source]
    check = _check_sql(source, staged, settings)
    con.execute(check, _check_params(check, settings, future_limit))
    if user_key is not None and "user_id" in source.column_names:
        _pseudonymise_checked(con, user_key)
    con.execute(_duplicates_sql(source))
    counts = con.execute(
        f"""SELECT (SELECT count(*) FROM {_T_IN}),
            count(*) FILTER (_rule IS NULL),
            count(*) FILTER (_rule IS NOT NULL),
            (SELECT count(*) FROM {_T_DUP})
        FROM {_T_CHK}"""
    ).fetchone()
    assert counts is not None
    rows_read, valid, to_quarantine, duplicates = (int(n) for n in counts)

    params = {"file": lf.rel, "run_id": run_id, "loaded_at": loaded_at, "source": lf.source}
    quarantined = 0
    if to_quarantine:
        quarantined = _count(
            con.execute(
                f"""INSERT INTO {QUARANTINE_TABLE}
                SELECT $source, $file, c._row, c._rule,
                       CAST({_raw_sql(staged, pseudonymised=user_key is not None)} AS VARCHAR),
                       $loaded_at, $run_id
                FROM {_T_CHK} c JOIN {_T_IN} i ON i.{staged.join_col} = c._row
                WHERE c._rule IS NOT NULL
                ORDER BY c._row""",
                {**params, **{k: v for k, v in staged.raw_params.items() if v}},
            )
        )
        res.rules = dict(
            con.execute(
                f"SELECT _rule, count(*) FROM {_T_CHK} WHERE _rule IS NOT NULL "
                "GROUP BY _rule ORDER BY _rule"
            ).fetchall()
        )
    loaded = 0
    if valid > duplicates:
        cols = ", ".join(_q(c) for c in source.column_names)
        extra = ", ".join(_q(name) for name, _ in RAW_EXTRA_COLUMNS)
        skip_duplicates = (
            f"\n AND NOT EXISTS (SELECT 1 FROM {_T_DUP} d WHERE d._row = c._row)"
            if duplicates
            else ""
        )
        loaded = _count(
            con.execute(
                f"""INSERT INTO {_q(source.raw_table)} ({cols}, {extra})
                SELECT {cols}, $file, _row, $run_id, $loaded_at
                FROM {_T_CHK} c
                WHERE c._rule IS NULL{skip_duplicates}""",
                {k: v for k, v in params.items() if k != "source"},
            )
        )
    res.rows_read, res.rows_loaded = rows_read, loaded
    res.duplicates, res.quarantined = duplicates, quarantined
    if loaded != valid - duplicates or quarantined != to_quarantine or not res.conserved:
        raise IngestError(
            f"{lf.rel}: conservation violated: read {rows_read} != loaded {loaded} "
            f"+ duplicates {duplicates} + quarantined {quarantined} "
            f"(valid {valid}, rule failures {to_quarantine})"
        )
    con.execute(
        f"INSERT INTO {LOADED_FILES_TABLE} VALUES ($sha, $file, $source, $loaded_at, $run_id)",
        {**params, "sha": res.sha256},
    )
    _record_file(con, res, run_id, loaded_at)


def _pseudonymise_checked(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Replace every user_id of the checked file by its keyed pseudonym (before duplicates are
    found, so keys that hold user_id compare pseudonyms with the raw table's)."""
    ids = con.sql(
        f"SELECT DISTINCT user_id FROM {_T_CHK} WHERE user_id IS NOT NULL"
    ).to_arrow_table()
    if ids.num_rows == 0:
        return
    import pyarrow as pa  # only when pseudonymising

    column = ids.column("user_id").to_pylist()
    mapping = pa.table({"user_id": column, "pseudonym": pseudonyms(column, key)})
    con.register(_T_PSEUDONYMS, mapping)
    try:
        con.execute(
            f"UPDATE {_T_CHK} SET user_id = m.pseudonym FROM {_T_PSEUDONYMS} m "
            f"WHERE {_T_CHK}.user_id = m.user_id"
        )
    finally:
        con.unregister(_T_PSEUDONYMS)


def _check_pseudonymisation(con: duckdb.DuckDBPyConnection, key: bytes | None) -> None:
    """Refuse to mix id spaces: the warehouse records whether (and with which key, as a key
    check value) user ids were pseudonymised; a run with another key or mode stops."""
    wanted = key_check(key) if key is not None else PSEUDONYMISATION_OFF
    recorded = con.execute(f"SELECT key_check FROM {PSEUDONYMISATION_TABLE}").fetchall()
    if recorded and recorded[0][0] == wanted:
        return
    loaded = any(
        _count(con.execute(f"SELECT count(*) FROM {_q(s.raw_table)}"))
        for s in SOURCES.values()
        if "user_id" in s.column_names
    )
    if not loaded or not recorded:  # nothing to mix with: (re)record; old warehouses were off
        have = wanted if not loaded else PSEUDONYMISATION_OFF
        con.execute(f"DELETE FROM {PSEUDONYMISATION_TABLE}")
        con.execute(f"INSERT INTO {PSEUDONYMISATION_TABLE} VALUES ($check)", {"check": have})
    else:
        have = recorded[0][0]
    if have == wanted:
        return
    if have == PSEUDONYMISATION_OFF:
        why = "its user ids were loaded without pseudonymisation"
    elif wanted == PSEUDONYMISATION_OFF:
        why = "its user ids were pseudonymised and pseudonymise_user_ids is off"
    else:
        why = f"its user ids were pseudonymised with another key ({USER_ID_KEY_ENV} changed)"
    raise IngestError(
        f"refusing to load: {why}; mixing the two would break every join on user_id. "
        "Rebuild a new warehouse from the landing folder with the wanted setting and key."
    )


def _record_failure(
    con: duckdb.DuckDBPyConnection, lf: LandingFile, sha: str, run_id: str, at: datetime
) -> None:
    """Best effort: note the failed file in _ingest_files without masking the real error."""
    with contextlib.suppress(duckdb.Error):
        _record_file(con, FileResult(lf.source, lf.rel, sha, status=STATUS_FAILED), run_id, at)


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def ingest_landing(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    settings: Settings,
    *,
    run_id: str,
    run_date: date | None = None,
    run_time: datetime | None = None,
    date_span: tuple[date, date] | None = None,
    on_file: Callable[[int, int, FileResult], None] | None = None,
) -> IngestResult:
    """Load the landing folder into raw_* tables and quarantine; one transaction per file.

    ``run_date`` takes the ``dt=run_date`` partitions, ``date_span`` (first, last) those of a
    range, neither every partition; undated files are always taken. ``on_file(index, total,
    result)`` is called after each file (progress bars). ``run_time`` (default now; naive means
    UTC) is the reference for the future-timestamp rule. Raises ``IngestError`` naming the file when a file cannot be read or lacks a required
    column; files committed before it in the same run stay loaded. The connection must not be
    inside an open transaction.
    """
    started = time.perf_counter()
    try:
        user_key = user_id_key(settings)
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    con.execute("LOAD icu")
    con.execute("SET TimeZone = 'UTC'")
    ensure_raw_schema(con)
    _check_pseudonymisation(con, user_key)
    now = datetime.now(UTC).replace(tzinfo=None)
    run_time = _utc_naive(run_time) if run_time is not None else now
    future_limit = run_time + timedelta(days=settings.future_tolerance_days)
    files, ignored = discover_files(Path(landing_dir), run_date, date_span=date_span)
    result = IngestResult(
        run_id=run_id, run_date=run_date, run_time=run_time, loaded_at=now, ignored=ignored
    )

    for index, lf in enumerate(files, start=1):
        file_started = time.perf_counter()
        try:
            sha = _sha256(lf.path)
        except OSError as exc:
            raise IngestError(f"{lf.rel}: cannot read the file: {exc}") from exc
        res = FileResult(source=lf.source, file=lf.rel, sha256=sha)
        seen = con.execute(
            f"SELECT count(*) FROM {LOADED_FILES_TABLE} WHERE sha256 = $sha AND source = $source",
            {"sha": sha, "source": lf.source},
        ).fetchone()
        if seen and seen[0]:
            res.status = STATUS_ALREADY_LOADED
            _record_file(con, res, run_id, now)
        else:
            try:
                staged = _stage(con, lf)
                con.execute("BEGIN TRANSACTION")
                try:
                    _load_one(
                        con,
                        lf,
                        staged,
                        settings,
                        res,
                        run_id=run_id,
                        loaded_at=now,
                        future_limit=future_limit,
                        user_key=user_key,
                    )
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            except BaseException as exc:
                _record_failure(con, lf, sha, run_id, now)
                if isinstance(exc, duckdb.Error):
                    raise IngestError(f"{lf.rel}: {_short(exc)}") from exc
                raise
            finally:
                _drop_temp(con)
        res.seconds = time.perf_counter() - file_started
        result.files.append(res)
        if on_file is not None:
            on_file(index, len(files), res)
    result.seconds = time.perf_counter() - started
    return result
