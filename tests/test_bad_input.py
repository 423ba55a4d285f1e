"""The bad-input corpus (issue 9), generated here: every case ends as quarantined rows with their
rule, or as an IngestError naming the file (and the line where there is one); the conservation
law holds for every file; the good rows of a partly bad file still load.

Rule-by-rule CSV cases are in test_ingest.py (RULE_CASES); this file adds the hostile inputs:
broken compression and encodings, wrong delimiters, ragged records, JSON values of the wrong
type, overflowing and non-finite numbers, far timestamps, huge fields, empty files, duplicates of
every source and an order update older than the line's current state.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import ROW_FACTORIES, Landing, fx_rate, order, visit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution.config import Settings
from attribution.ingest import (
    STATUS_FAILED,
    IngestError,
    IngestResult,
    ensure_raw_schema,
    ingest_landing,
)

# A user id that must never show up in an error message (messages reach logs and _runs).
SECRET_USER = "user-7f3a-secret"


def rows_of(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def assert_conserved(con: duckdb.DuckDBPyConnection, result: IngestResult | None = None) -> None:
    """rows_read = rows_loaded + duplicates + quarantined for every file, returned and recorded;
    the recorded counts match what the tables hold."""
    if result is not None:
        assert all(f.conserved for f in result.files), result.render()
    recorded = rows_of(
        con,
        "SELECT file, rows_read, rows_loaded, duplicates, quarantined FROM _ingest_files "
        "WHERE status = 'loaded'",
    )
    for file, read, loaded, dups, quarantined in recorded:
        assert read == loaded + dups + quarantined, file
        held = rows_of(con, f"SELECT count(*) FROM quarantine WHERE file = '{file}'")[0][0]
        assert held == quarantined, file
        source = file.split("/")[0]
        in_raw = rows_of(con, f"SELECT count(*) FROM raw_{source} WHERE _file = '{file}'")[0][0]
        assert in_raw == loaded, file


def quarantined(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, str]]:
    return rows_of(con, 'SELECT file, "row", rule FROM quarantine ORDER BY file, "row"')


# --------------------------------------------------------------------------------------------
# Rows that break a rule: quarantined with file, row and rule; the other rows load
# --------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("fmt", "bad", "rule"),
    [
        # numeric overflow
        ("csv", {"amount": "1e30"}, "invalid_amount"),
        ("csv", {"amount": "999999999999999.5"}, "invalid_amount"),  # 15 digits > DECIMAL(18,4)
        ("csv", {"amount": "99999999999999.9999"}, None),  # 14 + 4 digits: the largest that fits
        ("csv", {"quantity": "99999999999"}, "invalid_integer:quantity"),
        ("csv", {"line_no": "-99999999999"}, "invalid_integer:line_no"),
        ("jsonl", {"amount": 1e308}, "invalid_amount"),
        ("jsonl", {"quantity": 1e10}, "invalid_integer:quantity"),
        # NaN and infinite amounts, as text and as JSON numbers
        ("csv", {"amount": "-Infinity"}, "invalid_amount"),
        ("jsonl", {"amount": NAN}, "invalid_amount"),
        ("jsonl", {"amount": INF}, "invalid_amount"),
        ("jsonl", {"amount": -INF}, "invalid_amount"),
        # JSON values of the wrong type
        ("jsonl", {"amount": {"value": 1}}, "invalid_amount"),
        ("jsonl", {"amount": [1, 2]}, "invalid_amount"),
        ("jsonl", {"line_no": True}, "invalid_integer:line_no"),
        ("jsonl", {"ts": 1706781600}, "invalid_timestamp:ts"),
        ("jsonl", {"user_id": None}, "required:user_id"),
        ("csv", {"ts": "1706781600"}, "invalid_timestamp:ts"),
        # timestamps far in the future or past
        ("csv", {"ts": "9999-12-31T23:59:59Z"}, "future_timestamp:ts"),
        ("csv", {"ts": "275000-01-01"}, "future_timestamp:ts"),
        ("csv", {"ts": "-5000-01-01"}, "past_timestamp:ts"),
        ("csv", {"ts": "0001-01-01T00:00:00Z"}, "past_timestamp:ts"),
        ("csv", {"ts": "1970-01-01T00:00:00Z"}, "past_timestamp:ts"),
        ("jsonl", {"updated_at": "1999-12-31T23:59:59-01:00"}, "updated_before_placed"),
        # unknown marketplaces and currencies
        ("jsonl", {"marketplace": "'; DROP TABLE raw_orders; --"}, "unknown_marketplace"),
        ("csv", {"marketplace": "DE "}, None),  # trimmed: a known code
        ("csv", {"currency": "BTC"}, "unknown_currency"),
        ("jsonl", {"currency": "EURO"}, "invalid_currency"),
    ],
)
def test_bad_order_value_is_quarantined_with_its_rule(
    landing: Landing, ingest, con, fmt: str, bad: dict[str, Any], rule: str | None
) -> None:
    rows = [order(order_id="o1"), {**order(order_id="o2"), **bad}, order(order_id="o3")]
    path = getattr(landing, fmt)("orders", "batch." + fmt, rows, dt="2024-02-01")
    file = path.relative_to(landing.root).as_posix()

    result = ingest()

    expected = [] if rule is None else [(file, 2, rule)]
    assert quarantined(con) == expected
    loaded = sorted(r[0] for r in rows_of(con, "SELECT order_id FROM raw_orders"))
    assert loaded == (["o1", "o2", "o3"] if rule is None else ["o1", "o3"])
    assert_conserved(con, result)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [fx_rate(rate_to_usd="1e20"), fx_rate(currency="GBP", rate_to_usd="1.27")],
            [(1, "invalid_rate")],
        ),
        (
            [fx_rate(date="0001-01-01"), fx_rate(currency="GBP"), fx_rate(date="9999-12-31")],
            [(1, "past_date:date"), (3, "future_date:date")],
        ),
        (
            [fx_rate(rate_to_usd="0.000000001"), fx_rate(currency="GBP")],
            [(1, "invalid_rate")],  # rounds to 0 at DECIMAL(18,8)
        ),
        # a currency no marketplace uses is loaded (unused), not quarantined
        ([fx_rate(currency="CHF"), fx_rate(currency="GBP")], []),
    ],
)
def test_bad_fx_rows_are_quarantined(landing: Landing, ingest, con, rows, expected) -> None:
    landing.csv("fx_rates", "fx.csv", rows)
    result = ingest()
    assert [(r, rule) for _, r, rule in quarantined(con)] == expected
    assert result.files[0].rows_loaded == len(rows) - len(expected)
    assert_conserved(con, result)


def test_timestamps_in_other_offsets_load_in_utc(landing: Landing, ingest, con) -> None:
    landing.jsonl(
        "visits",
        "v.jsonl",
        [
            visit(user_id="east", ts="2024-02-01T10:00:00+14:00"),
            visit(user_id="west", ts="2024-02-01T10:00:00-12:00"),
            visit(user_id="compact", ts="2024-02-01T10:00:00+0530"),
            visit(user_id="edge", ts="2024-03-02T11:00:00+00:00"),  # 23 h after the run time
            visit(user_id="past-edge", ts="2024-03-03T11:00:00+23:00"),  # 2024-03-02 12:00 UTC
        ],
    )
    result = ingest()
    assert dict(rows_of(con, "SELECT user_id, ts FROM raw_visits")) == {
        "east": datetime(2024, 1, 31, 20),
        "west": datetime(2024, 2, 1, 22),
        "compact": datetime(2024, 2, 1, 4, 30),
        "edge": datetime(2024, 3, 2, 11),
        "past-edge": datetime(2024, 3, 2, 12),
    }
    assert_conserved(con, result)


def test_parquet_non_finite_overflowing_and_far_values(landing: Landing, ingest, con) -> None:
    landing.parquet(
        "orders",
        "o.parquet",
        """SELECT * FROM (VALUES
            ('o1', 1, 'u1', TIMESTAMP '2024-02-01 10:00:00', 'US', 'p1', 1, 10.0::DOUBLE, 'USD'),
            ('o2', 1, 'u1', TIMESTAMP '2024-02-01 10:00:00', 'US', 'p1', 1, 'inf'::DOUBLE, 'USD'),
            ('o3', 1, 'u1', TIMESTAMP '2024-02-01 10:00:00', 'US', 'p1', 1, 1e300::DOUBLE, 'USD'),
            ('o4', 1, 'u1', TIMESTAMP '1900-01-01 00:00:00', 'US', 'p1', 1, 1.0::DOUBLE, 'USD'),
            ('o5', 1, 'u1', TIMESTAMP '2024-02-01 10:00:00', 'US', 'p1', 3000000000, 1.0, 'USD'),
            ('o6', 1, 'u1', TIMESTAMP 'infinity', 'US', 'p1', 1, 1.0::DOUBLE, 'USD')
        ) AS t(order_id, line_no, user_id, ts, marketplace, product_id, quantity, amount,
               currency)""",
    )
    result = ingest()
    assert [(r, rule) for _, r, rule in quarantined(con)] == [
        (2, "invalid_amount"),
        (3, "invalid_amount"),
        (4, "past_timestamp:ts"),
        (5, "invalid_integer:quantity"),
        (6, "invalid_timestamp:ts"),
    ]
    assert rows_of(con, "SELECT order_id, amount FROM raw_orders") == [("o1", Decimal("10"))]
    assert_conserved(con, result)


def test_missing_and_extra_fields_in_json_records(landing: Landing, ingest, con) -> None:
    full = visit()
    landing.jsonl(
        "visits",
        "v.jsonl",
        [
            full,
            {k: v for k, v in full.items() if k != "channel"},  # a record without a required key
            {**visit(user_id="u3"), "extra": {"nested": [1, 2]}, "another": None},
            {},
        ],
    )
    result = ingest()
    assert [(r, rule) for _, r, rule in quarantined(con)] == [
        (2, "required:channel"),
        (4, "required:user_id"),
    ]
    assert sorted(rows_of(con, "SELECT user_id FROM raw_visits")) == [("u1",), ("u3",)]
    assert_conserved(con, result)


def test_huge_fields_load_byte_identical(landing: Landing, ingest, con) -> None:
    big = "é" * 200_000 + "\U0001f600" + "x" * 300_000  # about 900 KB of UTF-8 in one field
    landing.csv(
        "products",
        "p.csv",
        [ROW_FACTORIES["products"](brand=big), {"product_id": "p2", "brand": "b", "category": "c"}],
    )
    landing.jsonl("products", "p.jsonl", [ROW_FACTORIES["products"](product_id="p3", category=big)])
    result = ingest()
    got = dict(rows_of(con, "SELECT product_id, brand || '|' || category FROM raw_products"))
    assert got == {"p1": big + "|tools", "p2": "b|c", "p3": "Acme|" + big}
    assert_conserved(con, result)


# --------------------------------------------------------------------------------------------
# Files that cannot be read: an IngestError naming the file (and line); nothing of it loads
# --------------------------------------------------------------------------------------------

HEADER = "user_id,ts,marketplace,channel\n"
GOOD = f"{SECRET_USER},2024-02-01T09:00:00Z,US,web\n"


def _truncated_gzip(text: str) -> bytes:
    data = gzip.compress((text * 200).encode(), mtime=0)
    return data[: len(data) // 2]


# name, bytes, what the message must say (besides the file name)
UNREADABLE: list[tuple[str, bytes, str]] = [
    ("truncated.csv.gz", _truncated_gzip(HEADER + GOOD), "gzip"),
    ("truncated.jsonl.gz", _truncated_gzip(json.dumps(visit()) + "\n"), "gzip"),
    ("corrupt.jsonl.gz", b"\x1f\x8b\x08\x00garbage-after-the-magic-number", "gzip"),
    ("corrupt.csv.gz", b"\x1f\x8b\x08\x00garbage-after-the-magic-number", "CSV header"),
    ("latin1_header.csv", "usér_id,ts\n".encode("latin-1"), "line 1 (the CSV header) is not valid"),
    ("utf16.csv", (HEADER + GOOD).encode("utf-16"), "not valid UTF-8"),
    ("semicolons.csv", (HEADER + GOOD).replace(",", ";").encode(), "separated by commas"),
    ("tabs.csv", (HEADER + GOOD).replace(",", "\t").encode(), "separated by commas"),
    (
        "open_quote.csv",
        (HEADER + GOOD + f'"{SECRET_USER},x,US,web\n' + GOOD).encode(),
        "the record from line 3 cannot be read",
    ),
    ("empty.csv", b"", "empty file"),
    ("empty.csv.gz", b"", "empty file"),
    ("empty_inside.csv.gz", gzip.compress(b"", mtime=0), "empty file"),
    ("empty.parquet", b"", "too small to be a Parquet file"),
    ("text.parquet", (HEADER + GOOD).encode(), "parquet"),
    ("header_missing_channel.csv", b"user_id,ts,marketplace\nu1,2024-02-01,US\n", "channel"),
]


@pytest.mark.parametrize(("name", "data", "message"), UNREADABLE, ids=[c[0] for c in UNREADABLE])
def test_unreadable_file_stops_with_an_error_naming_file_and_line(
    landing: Landing, ingest, con, name: str, data: bytes, message: str
) -> None:
    landing.csv("visits", "a_first.csv", [visit(user_id="kept")])
    landing.bytes("visits", name, data)

    with pytest.raises(IngestError) as info:
        ingest()

    text = str(info.value)
    assert text.startswith(f"visits/{name}: "), text
    assert message.lower() in text.lower(), text
    assert SECRET_USER not in text  # the offending record's content is not echoed
    assert len(text) < 1000
    # the file before it is committed; nothing of the bad file is loaded; it is recorded failed
    assert rows_of(con, "SELECT user_id FROM raw_visits") == [("kept",)]
    assert rows_of(con, "SELECT count(*) FROM quarantine") == [(0,)]
    assert rows_of(con, "SELECT file, status FROM _ingest_files ORDER BY file") == [
        ("visits/a_first.csv", "loaded"),
        (f"visits/{name}", STATUS_FAILED),
    ]
    assert_conserved(con)


def good(i: int) -> str:
    return f"{SECRET_USER}-{i},2024-02-01T09:00:00Z,US,web\n"


def visit_line(i: int) -> str:
    return json.dumps(visit(user_id=f"{SECRET_USER}-{i}")) + "\n"


# name, bytes, (row, reason) of each malformed record; the other records are good rows 1, 2, 3...
MALFORMED: list[tuple[str, bytes, list[tuple[int, str]]]] = [
    (
        "extra_field.csv",
        (HEADER + good(1) + good(2).strip() + ",surplus\n" + good(3)).encode(),
        [(2, "line 3: expected 4 fields, found 5")],
    ),
    (
        "missing_field.csv",
        (HEADER + good(1) + good(2) + good(3) + f"{SECRET_USER},2024-02-01\n").encode(),
        [(4, "line 5: expected 4 fields, found 2")],
    ),
    (
        "latin1_row.csv",
        (HEADER + good(1)).encode()
        + "Jos\xe9,2024-02-01,US,web\n".encode("latin-1")
        + good(3).encode(),
        [(2, "line 3: not valid UTF-8")],
    ),
    (
        "quoted_newline.csv",  # record 1 spans lines 2-3: lines and records differ
        (HEADER + f'"{SECRET_USER}\nx",2024-02-01T09:00:00Z,US,web\n' + "a,b\n" + good(3)).encode(),
        [(2, "line 4: expected 4 fields, found 2")],
    ),
    (
        "latin1_line2.jsonl",
        visit_line(1).encode()
        + '{"user_id": "Jos\xe9"}\n'.encode("latin-1")
        + visit_line(3).encode(),
        [(2, "line 2: not valid UTF-8")],
    ),
    (
        "broken_line3.jsonl",  # a blank line is not a record
        (visit_line(1) + "\n" + f'{{"user_id": "{SECRET_USER}", "ts": \n' + visit_line(3)).encode(),
        [(2, "line 3: malformed JSON (Expecting value at character 40)")],
    ),
    (
        "only_broken.jsonl",
        f'{{"user_id": "{SECRET_USER}",\n'.encode(),
        [(1, "line 1: malformed JSON")],
    ),
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(("name", "data", "bad"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_records_are_quarantined_and_the_rest_loads(
    landing: Landing, ingest, con, name: str, data: bytes, bad: list[tuple[int, str]], gz: bool
) -> None:
    landing.bytes("visits", name + (".gz" if gz else ""), data, gz=gz)

    result = ingest()

    (stats,) = result.files
    file = f"visits/{name}" + (".gz" if gz else "")
    got = rows_of(con, 'SELECT file, "row", rule, raw FROM quarantine ORDER BY "row"')
    assert [(f, r, rule) for f, r, rule, _ in got] == [
        (file, r, "malformed_record") for r, _ in bad
    ]
    for (_, _, _, raw), (_, reason) in zip(got, bad, strict=True):
        assert json.loads(raw)["_malformed"].startswith(reason)
        assert SECRET_USER not in raw  # the record's content is not kept
    assert stats.quarantined == len(bad)
    assert stats.rows_loaded == stats.rows_read - len(bad) > 0 or name == "only_broken.jsonl"
    loaded_rows = {r for (r,) in rows_of(con, "SELECT _row FROM raw_visits")}
    assert loaded_rows == set(range(1, stats.rows_read + 1)) - {r for r, _ in bad}
    assert_conserved(con, result)


def test_a_line_over_duckdbs_limit_loads_whole(landing: Landing, ingest, con) -> None:
    huge = SECRET_USER + "x" * 2_100_000  # DuckDB's CSV max_line_size is 2,000,000 bytes
    landing.bytes(
        "visits",
        "huge.csv",
        (HEADER + good(1) + good(2).replace(f"{SECRET_USER}-2", huge)).encode(),
    )
    result = ingest()
    assert sorted(r[0] for r in rows_of(con, "SELECT user_id FROM raw_visits")) == sorted(
        [f"{SECRET_USER}-1", huge]
    )
    assert_conserved(con, result)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("empty.jsonl", lambda lan, n: lan.bytes("visits", n, b"")),
        ("blank_lines.jsonl", lambda lan, n: lan.bytes("visits", n, b"\n\n  \n")),
        ("empty.jsonl.gz", lambda lan, n: lan.bytes("visits", n, gzip.compress(b"", mtime=0))),
        ("header.csv.gz", lambda lan, n: lan.bytes("visits", n, gzip.compress(HEADER.encode()))),
        (
            "no_rows.parquet",
            lambda lan, n: lan.parquet(
                "visits",
                n,
                "SELECT 'u' AS user_id, now() AS ts, 'US' AS marketplace, 'web' AS channel "
                "WHERE false",
            ),
        ),
    ],
)
def test_empty_files_with_a_valid_shape_load_nothing(
    landing: Landing, ingest, con, name: str, write: Callable[[Landing, str], Any]
) -> None:
    write(landing, name)
    result = ingest()
    assert [(f.file, f.rows_read, f.status) for f in result.files] == [
        (f"visits/{name}", 0, "loaded")
    ]
    assert_conserved(con, result)


# --------------------------------------------------------------------------------------------
# Duplicates of every source, within and across files; an older order update
# --------------------------------------------------------------------------------------------

KEYED = {
    "interactions": lambda i: {"event_id": f"e{i}"},
    "orders": lambda i: {"order_id": f"o{i}"},
    "visits": lambda i: {"user_id": f"u{i}"},
    "assignments": lambda i: {"user_id": f"u{i}"},
    "fx_rates": lambda i: {"currency": ["EUR", "GBP", "CAD"][i - 1]},
    "products": lambda i: {"product_id": f"p{i}"},
}


@pytest.mark.parametrize("source", sorted(KEYED))
def test_duplicate_keys_within_and_across_files(landing: Landing, ingest, con, source) -> None:
    def row(i: int) -> dict[str, Any]:
        return ROW_FACTORIES[source](**KEYED[source](i))

    landing.csv(source, "a.csv", [row(1), row(1), row(2)])
    landing.jsonl(source, "b.jsonl", [row(2), row(3), row(3)])
    result = ingest()
    a, b = result.files
    assert (a.rows_read, a.rows_loaded, a.duplicates, a.quarantined) == (3, 2, 1, 0)
    assert (b.rows_read, b.rows_loaded, b.duplicates, b.quarantined) == (3, 1, 2, 0)
    assert rows_of(con, f"SELECT _file, _row FROM raw_{source} ORDER BY _file, _row") == [
        (f"{source}/a.csv", 1),
        (f"{source}/a.csv", 3),
        (f"{source}/b.jsonl", 2),
    ]
    assert_conserved(con, result)


def stg_orders(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    sql = (Path(__file__).parents[1] / "sql" / "staging" / "stg_orders.sql").read_text()
    return rows_of(
        con, f"SELECT order_id, line_status, updated_at, n_versions FROM ({sql}) ORDER BY 1"
    )


def test_order_update_older_than_the_current_state_does_not_replace_it(
    landing: Landing, ingest, con
) -> None:
    """Contract: the version with the latest updated_at is the line's state, whatever the
    arrival order. An older version arriving later is kept as a version (loaded, counted) but
    does not change the state; a version with the same updated_at is a duplicate."""
    landing.csv(
        "orders",
        "o.csv",
        [order(status="returned", updated_at="2024-02-05T09:00:00Z")],
        dt="2024-02-05",
    )
    ingest(run_id="r1")
    landing.csv(
        "orders",
        "o.csv",
        [
            order(status="placed", updated_at="2024-02-03T09:00:00Z"),  # older: a version
            order(status="cancelled", updated_at="2024-02-05T09:00:00Z"),  # same time: duplicate
        ],
        dt="2024-02-06",
    )
    result = ingest(run_id="r2")
    (late,) = [f for f in result.files if f.status == "loaded"]
    assert (late.rows_read, late.rows_loaded, late.duplicates, late.quarantined) == (2, 1, 1, 0)
    assert stg_orders(con) == [("o1", "returned", datetime(2024, 2, 5, 9), 2)]
    assert_conserved(con, result)


# --------------------------------------------------------------------------------------------
# Property: any mix of good and bad rows in any format conserves and loads exactly the good ones
# --------------------------------------------------------------------------------------------

BAD_VISIT_VALUES = {
    "user_id": ["", "   "],
    "ts": ["never", "0001-01-01", "9999-01-01T00:00:00Z", "2024-02-31T00:00:00Z"],
    "marketplace": ["XX", "us", "$1"],
    "channel": ["fax", "'; DROP TABLE raw_visits; --", "web\\"],
}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fmt=st.sampled_from(["csv", "jsonl", "csv.gz", "jsonl.gz"]),
    plan=st.lists(
        st.one_of(
            st.just(None),
            st.tuples(
                st.sampled_from(sorted(BAD_VISIT_VALUES)), st.integers(min_value=0, max_value=3)
            ),
        ),
        max_size=12,
    ),
)
def test_any_mix_of_good_and_bad_rows_conserves(tmp_path_factory, fmt: str, plan) -> None:
    root = tmp_path_factory.mktemp("mix")
    landing = Landing(root / "landing")
    rows, bad_rows = [], []
    for i, spoil in enumerate(plan, start=1):
        row = visit(user_id=f"u{i}")
        if spoil is not None:
            column, pick = spoil
            values = BAD_VISIT_VALUES[column]
            row[column] = values[pick % len(values)]
            bad_rows.append(i)
        rows.append(row)
    writer, _, gz = fmt.partition(".")
    if rows:
        getattr(landing, writer)("visits", f"v.{writer}", rows, gz=bool(gz))
    else:
        landing.bytes("visits", "v.jsonl", b"")
    con = duckdb.connect(str(root / "w.duckdb"))
    ensure_raw_schema(con)
    try:
        result = ingest_landing(
            con, landing.root, Settings(), run_id="r", run_time=datetime(2024, 3, 1, 12)
        )
        assert_conserved(con, result)
        assert [r for _, r, _ in quarantined(con)] == bad_rows
        good = [f"u{i}" for i in range(1, len(rows) + 1) if i not in bad_rows]
        assert sorted(r[0] for r in rows_of(con, "SELECT user_id FROM raw_visits")) == sorted(good)
    finally:
        con.close()
