"""Landing files -> raw tables + quarantine (attribution.ingest)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import (
    ROW_FACTORIES,
    RUN_TIME,
    Landing,
    assignment,
    interaction,
    order,
)

from attribution.config import Settings
from attribution.contract import SOURCES
from attribution.ingest import (
    STATUS_ALREADY_LOADED,
    IngestError,
    discover_files,
    ensure_raw_schema,
    ingest_landing,
    rule_names,
)


def rows_of(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[tuple]:
    return con.execute(sql, params or {}).fetchall()


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    tables = [s.raw_table for s in SOURCES.values()] + ["quarantine", "_loaded_files"]
    return {t: sorted(rows_of(con, f"SELECT * FROM {t}"), key=repr) for t in tables}


def unique_row(source: str, i: int, **overrides: Any) -> dict[str, Any]:
    """A valid row of ``source`` whose key differs for each i."""
    key = {
        "interactions": {"event_id": f"e{i}"},
        "orders": {"order_id": f"o{i}"},
        "visits": {"user_id": f"u{i}"},
        "assignments": {"user_id": f"u{i}"},
        "fx_rates": {"date": f"2024-02-0{i}"},
        "products": {"product_id": f"p{i}"},
    }[source]
    return ROW_FACTORIES[source](**{**key, **overrides})


# --------------------------------------------------------------------------------------------
# One test per quarantine rule
# --------------------------------------------------------------------------------------------

RULE_CASES: list[tuple[str, dict[str, str], str]] = [
    ("interactions", {"event_id": ""}, "required:event_id"),
    ("interactions", {"user_id": "   "}, "required:user_id"),
    ("interactions", {"ts": ""}, "required:ts"),
    ("interactions", {"ts": "yesterday"}, "invalid_timestamp:ts"),
    ("interactions", {"ts": "-infinity"}, "invalid_timestamp:ts"),
    ("interactions", {"ts": "2024-03-03T00:00:00Z"}, "future_timestamp:ts"),
    ("interactions", {"marketplace": ""}, "required:marketplace"),
    ("interactions", {"marketplace": "XX"}, "unknown_marketplace"),
    ("interactions", {"marketplace": "us"}, "unknown_marketplace"),
    ("interactions", {"channel": ""}, "required:channel"),
    ("interactions", {"channel": "fax"}, "invalid_channel"),
    ("interactions", {"event_type": ""}, "required:event_type"),
    ("interactions", {"event_type": "click"}, "invalid_event_type"),
    ("interactions", {"product_ids": "a||b"}, "invalid_product_ids"),
    ("interactions", {"product_ids": '["a", {"b": 1}]'}, "invalid_product_ids"),
    ("interactions", {"product_ids": '["a"'}, "invalid_product_ids"),
    # The first failing rule (contract column order) names the row.
    ("interactions", {"event_id": "", "channel": "fax"}, "required:event_id"),
    ("orders", {"order_id": ""}, "required:order_id"),
    ("orders", {"line_no": ""}, "required:line_no"),
    ("orders", {"line_no": "1.5"}, "invalid_integer:line_no"),
    ("orders", {"line_no": "first"}, "invalid_integer:line_no"),
    ("orders", {"user_id": ""}, "required:user_id"),
    ("orders", {"ts": "2024-02-30T10:00:00Z"}, "invalid_timestamp:ts"),
    ("orders", {"product_id": ""}, "required:product_id"),
    ("orders", {"quantity": ""}, "required:quantity"),
    ("orders", {"quantity": "two"}, "invalid_integer:quantity"),
    ("orders", {"quantity": "0"}, "quantity_below_1"),
    ("orders", {"amount": ""}, "required:amount"),
    ("orders", {"amount": "abc"}, "invalid_amount"),
    ("orders", {"amount": "NaN"}, "invalid_amount"),
    ("orders", {"amount": "inf"}, "invalid_amount"),
    ("orders", {"amount": "-0.01"}, "negative_amount"),
    ("orders", {"currency": ""}, "required:currency"),
    ("orders", {"currency": "usd"}, "invalid_currency"),
    ("orders", {"currency": "XYZ"}, "unknown_currency"),
    ("orders", {"status": "shipped"}, "invalid_status"),
    ("orders", {"updated_at": "later"}, "invalid_timestamp:updated_at"),
    ("orders", {"updated_at": "2024-03-10T00:00:00Z"}, "future_timestamp:updated_at"),
    ("orders", {"updated_at": "2024-02-01T10:59:59Z"}, "updated_before_placed"),
    ("visits", {"ts": "soon"}, "invalid_timestamp:ts"),
    ("visits", {"marketplace": "ZZ"}, "unknown_marketplace"),
    ("visits", {"channel": "kiosk"}, "invalid_channel"),
    ("assignments", {"experiment_id": ""}, "required:experiment_id"),
    ("assignments", {"arm": "control"}, "invalid_arm"),
    ("assignments", {"assigned_at": "2024-13-01"}, "invalid_timestamp:assigned_at"),
    ("fx_rates", {"date": ""}, "required:date"),
    ("fx_rates", {"date": "2024-02-30"}, "invalid_date:date"),
    ("fx_rates", {"currency": "eur"}, "invalid_currency"),
    ("fx_rates", {"rate_to_usd": ""}, "required:rate_to_usd"),
    ("fx_rates", {"rate_to_usd": "0"}, "invalid_rate"),
    ("fx_rates", {"rate_to_usd": "-1.2"}, "invalid_rate"),
    ("fx_rates", {"rate_to_usd": "nan"}, "invalid_rate"),
    ("fx_rates", {"rate_to_usd": "Infinity"}, "invalid_rate"),
    ("fx_rates", {"rate_to_usd": "abc"}, "invalid_rate"),
    ("products", {"brand": ""}, "required:brand"),
    ("products", {"category": ""}, "required:category"),
]


@pytest.mark.parametrize(
    ("source", "overrides", "rule"),
    RULE_CASES,
    ids=[f"{s}-{r}-{next(iter(o.values())) or 'empty'}" for s, o, r in RULE_CASES],
)
def test_rule_quarantines_row_and_keeps_good_rows(
    landing: Landing, ingest, con, source: str, overrides: dict[str, str], rule: str
) -> None:
    rows = [unique_row(source, 1), unique_row(source, 2, **overrides), unique_row(source, 3)]
    landing.csv(source, "batch.csv", rows, dt="2024-02-01")

    result = ingest()

    quarantined = rows_of(con, 'SELECT source, file, "row", rule, raw FROM quarantine')
    assert len(quarantined) == 1
    q_source, q_file, q_row, q_rule, q_raw = quarantined[0]
    assert (q_source, q_file, q_row, q_rule) == (
        source,
        f"{source}/dt=2024-02-01/batch.csv",
        2,
        rule,
    )
    raw = json.loads(q_raw)
    for column, value in overrides.items():  # the row as read (an empty CSV field is NULL)
        assert raw[column] == (value if value else None)
    assert rule in rule_names(SOURCES[source])
    assert rows_of(con, f"SELECT count(*) FROM raw_{source}") == [(2,)]
    (stats,) = result.files
    assert (stats.rows_read, stats.rows_loaded, stats.duplicates, stats.quarantined) == (3, 2, 0, 1)
    assert stats.rules == {rule: 1}


def test_jsonl_line_that_is_not_an_object_is_quarantined(landing: Landing, ingest, con) -> None:
    landing.jsonl("interactions", "a.jsonl", [interaction(event_id="e1"), [1, 2], "text"])
    result = ingest()
    assert rows_of(con, 'SELECT "row", rule, raw FROM quarantine ORDER BY "row"') == [
        # only the JSON type of the line is kept (it may be free text)
        (2, "not_an_object", '{"_not_an_object":"ARRAY"}'),
        (3, "not_an_object", '{"_not_an_object":"VARCHAR"}'),
    ]
    assert result.rows_loaded == 1


# --------------------------------------------------------------------------------------------
# Formats, types, columns
# --------------------------------------------------------------------------------------------


def test_all_formats_are_read(landing: Landing, ingest, con) -> None:
    landing.csv("interactions", "a.csv", [interaction(event_id="csv")])
    landing.csv("interactions", "b.csv", [interaction(event_id="csvgz")], gz=True)
    landing.jsonl(
        "interactions", "c.jsonl", [interaction(event_id="jsonl", product_ids=["p1", "p2"])]
    )
    landing.jsonl("interactions", "d.jsonl", [interaction(event_id="jsonlgz")], gz=True)
    landing.parquet(
        "interactions",
        "e.parquet",
        """SELECT 'parquet' AS event_id, 'u1' AS user_id,
                  TIMESTAMPTZ '2024-02-01 12:00:00+02' AS ts, NULL AS session_id,
                  'US' AS marketplace, 'app' AS channel, 'query' AS event_type,
                  ['p1', 'p2'] AS product_ids, 'm1' AS model_version""",
    )
    result = ingest()
    assert [f.rows_loaded for f in result.files] == [1, 1, 1, 1, 1]
    assert [f.file for f in result.files] == [
        "interactions/a.csv",
        "interactions/b.csv.gz",
        "interactions/c.jsonl",
        "interactions/d.jsonl.gz",
        "interactions/e.parquet",
    ]
    got = rows_of(
        con, "SELECT event_id, ts, product_ids, _file, _row FROM raw_interactions ORDER BY _file"
    )
    assert got[0] == ("csv", datetime(2024, 2, 1, 10), ["p1", "p2"], "interactions/a.csv", 1)
    assert [r[0] for r in got] == ["csv", "csvgz", "jsonl", "jsonlgz", "parquet"]
    assert all(r[2] == ["p1", "p2"] for r in got)
    assert got[-1][1] == datetime(2024, 2, 1, 10)  # 12:00+02 -> 10:00 UTC


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2024-02-01T10:00:00+02:00", datetime(2024, 2, 1, 8, 0)),
        ("2024-02-01T10:00:00Z", datetime(2024, 2, 1, 10, 0)),
        ("2024-02-01 10:00:00", datetime(2024, 2, 1, 10, 0)),
        ("2024-02-01T10:00:00.5-05:30", datetime(2024, 2, 1, 15, 30, 0, 500000)),
        ("2024-02-01T23:30:00-01:00", datetime(2024, 2, 2, 0, 30)),
    ],
)
def test_timestamps_are_converted_to_utc(
    landing: Landing, ingest, con, text: str, utc: datetime
) -> None:
    landing.csv("interactions", "a.csv", [interaction(ts=text)])
    ingest()
    assert rows_of(con, "SELECT ts FROM raw_interactions") == [(utc,)]


def test_product_ids_forms(landing: Landing, ingest, con) -> None:
    landing.csv(
        "interactions",
        "a.csv",
        [
            interaction(event_id="pipe", product_ids=" a | b "),
            interaction(event_id="one", product_ids="a"),
            interaction(event_id="none", product_ids=""),
            interaction(event_id="jsontext", product_ids='["a","b|c"]'),
        ],
    )
    landing.jsonl(
        "interactions",
        "b.jsonl",
        [
            interaction(event_id="jarray", product_ids=["a", "b"]),
            interaction(event_id="jnull", product_ids=None),
            interaction(event_id="jempty", product_ids=[]),
            interaction(event_id="jpipe", product_ids="a|b"),
        ],
    )
    ingest()
    got = dict(rows_of(con, "SELECT event_id, product_ids FROM raw_interactions"))
    assert got == {
        "pipe": ["a", "b"],
        "one": ["a"],
        "none": None,
        "jsontext": ["a", "b|c"],
        "jarray": ["a", "b"],
        "jnull": None,
        "jempty": [],
        "jpipe": ["a", "b"],
    }


def test_typed_values_defaults_and_json_numbers(landing: Landing, ingest, con) -> None:
    landing.jsonl(
        "orders",
        "a.jsonl",
        [
            {**order(order_id="o1"), "line_no": 2, "quantity": 3, "amount": 10.5},
            {**order(order_id="o2", status=""), "line_no": "1", "quantity": "1.0"},
        ],
    )
    ingest()
    got = rows_of(
        con,
        "SELECT order_id, line_no, quantity, amount, status, updated_at = ts FROM raw_orders "
        "ORDER BY order_id",
    )
    assert got == [
        ("o1", 2, 3, Decimal("10.5000"), "placed", True),
        ("o2", 1, 1, Decimal("19.9900"), "placed", True),
    ]


def test_parquet_typed_columns(landing: Landing, ingest, con) -> None:
    landing.parquet(
        "orders",
        "a.parquet",
        """SELECT 'o1' AS order_id, 1 AS line_no, 'u1' AS user_id,
                  TIMESTAMP '2024-02-01 10:00:00' AS ts, 'DE' AS marketplace, 'p1' AS product_id,
                  2::BIGINT AS quantity, 12.5::DOUBLE AS amount, 'EUR' AS currency
           UNION ALL
           SELECT 'o2', 1, 'u1', TIMESTAMP '2024-02-01 10:00:00', 'DE', 'p1', 1,
                  'NaN'::DOUBLE, 'EUR'""",
    )
    result = ingest()
    assert rows_of(con, "SELECT order_id, quantity, amount, status FROM raw_orders") == [
        ("o1", 2, Decimal("12.5000"), "placed")
    ]
    assert rows_of(con, 'SELECT "row", rule FROM quarantine') == [(2, "invalid_amount")]
    assert result.files[0].conserved


def test_extra_columns_are_ignored_and_column_order_and_case_do_not_matter(
    landing: Landing, ingest, con
) -> None:
    row = interaction()
    shuffled = {
        "Channel": row["channel"],
        "extra": "x",
        **{k: v for k, v in row.items() if k != "channel"},
    }
    landing.csv(
        "interactions", "a.csv", [shuffled, {**shuffled, "event_id": "e2", "Channel": "no"}]
    )
    ingest()
    assert rows_of(con, "SELECT event_id, channel FROM raw_interactions") == [("e1", "app")]
    assert "extra" not in [r[0] for r in rows_of(con, "DESCRIBE raw_interactions")]
    (raw,) = rows_of(con, "SELECT raw FROM quarantine")[0]
    # unknown columns are named in quarantine.raw, their values not kept (may be free text)
    assert json.loads(raw)["_extra_columns"] == ["extra"]
    assert "x" not in json.loads(raw).values()


def test_missing_optional_columns_are_null(landing: Landing, ingest, con) -> None:
    row = {
        k: v
        for k, v in interaction().items()
        if k not in ("session_id", "product_ids", "model_version")
    }
    landing.csv("interactions", "a.csv", [row])
    ingest()
    assert rows_of(con, "SELECT session_id, product_ids, model_version FROM raw_interactions") == [
        (None, None, None)
    ]


def test_csv_row_numbers_count_records_not_lines(landing: Landing, ingest, con) -> None:
    landing.csv(
        "products",
        "p.csv",
        [
            {"product_id": "p1", "brand": "Multi\nline", "category": "c"},
            {"product_id": "p2", "brand": "", "category": "c"},
        ],
    )
    ingest()
    assert rows_of(con, 'SELECT "row", rule FROM quarantine') == [(2, "required:brand")]
    assert rows_of(con, "SELECT brand, _row FROM raw_products") == [("Multi\nline", 1)]


# --------------------------------------------------------------------------------------------
# Duplicates, conservation, idempotence, order versions
# --------------------------------------------------------------------------------------------


def test_duplicates_within_and_across_files(landing: Landing, ingest, con) -> None:
    landing.csv(
        "interactions",
        "a.csv",
        [
            interaction(event_id="e1", user_id="first"),
            interaction(event_id="e2"),
            interaction(event_id="e1", user_id="second"),
            interaction(event_id="e1", channel="bad"),
        ],
    )
    landing.csv("interactions", "b.csv", [interaction(event_id="e2"), interaction(event_id="e3")])
    result = ingest()
    a, b = result.files
    assert (a.rows_read, a.rows_loaded, a.duplicates, a.quarantined) == (4, 2, 1, 1)
    assert (b.rows_read, b.rows_loaded, b.duplicates, b.quarantined) == (2, 1, 1, 0)
    assert rows_of(
        con, "SELECT event_id, user_id, _file, _row FROM raw_interactions ORDER BY 1"
    ) == [
        ("e1", "first", "interactions/a.csv", 1),
        ("e2", "u1", "interactions/a.csv", 2),
        ("e3", "u1", "interactions/b.csv", 2),
    ]
    # Conservation, as recorded for every file.
    recorded = rows_of(
        con,
        "SELECT file, rows_read, rows_loaded, duplicates, quarantined, status FROM _ingest_files "
        "ORDER BY file",
    )
    assert recorded == [
        ("interactions/a.csv", 4, 2, 1, 1, "loaded"),
        ("interactions/b.csv", 2, 1, 1, 0, "loaded"),
    ]
    assert all(r[1] == r[2] + r[3] + r[4] for r in recorded)
    assert (result.rows_read, result.rows_loaded, result.duplicates, result.quarantined) == (
        6,
        3,
        2,
        1,
    )


def test_reloading_the_same_landing_changes_nothing(landing: Landing, ingest, con) -> None:
    landing.csv(
        "interactions",
        "a.csv",
        [interaction(event_id="e1"), interaction(channel="x")],
        dt="2024-02-01",
    )
    landing.jsonl("orders", "o.jsonl", [order(), order(quantity="0")], dt="2024-02-01")
    landing.csv(
        "fx_rates", "fx.csv", [{"date": "2024-02-01", "currency": "EUR", "rate_to_usd": "1.1"}]
    )
    first = ingest(run_id="run1")
    before = snapshot(con)
    assert first.rows_loaded == 3 and first.quarantined == 2

    second = ingest(run_id="run2")
    assert snapshot(con) == before
    assert [f.status for f in second.files] == [STATUS_ALREADY_LOADED] * 3
    assert (second.rows_read, second.rows_loaded, second.quarantined) == (0, 0, 0)
    assert rows_of(con, "SELECT run_id, count(*) FROM _ingest_files GROUP BY 1 ORDER BY 1") == [
        ("run1", 3),
        ("run2", 3),
    ]
    # A copy of an already loaded file under another name is skipped as well.
    (landing.root / "orders" / "copy.jsonl").write_bytes(
        (landing.root / "orders" / "dt=2024-02-01" / "o.jsonl").read_bytes()
    )
    third = ingest(run_id="run3")
    assert snapshot(con) == before
    assert "orders/copy.jsonl" in [f.file for f in third.files if f.status == STATUS_ALREADY_LOADED]


def test_later_order_version_is_kept_beside_the_earlier(landing: Landing, ingest, con) -> None:
    landing.csv("orders", "a.csv", [order(updated_at="")], dt="2024-02-01")
    landing.csv(
        "orders",
        "b.csv",
        [
            order(status="returned", updated_at="2024-02-05T09:00:00Z"),
            order(updated_at="2024-02-01T11:00:00Z"),  # same version as the first file: dup
        ],
        dt="2024-02-05",
    )
    result = ingest()
    assert rows_of(
        con, "SELECT order_id, line_no, status, updated_at FROM raw_orders ORDER BY updated_at"
    ) == [
        ("o1", 1, "placed", datetime(2024, 2, 1, 11)),
        ("o1", 1, "returned", datetime(2024, 2, 5, 9)),
    ]
    assert result.files[1].duplicates == 1


# --------------------------------------------------------------------------------------------
# What stops a run
# --------------------------------------------------------------------------------------------


def test_corrupt_gzip_stops_the_run_and_loads_nothing_of_that_file(
    landing: Landing, ingest, con
) -> None:
    landing.csv("interactions", "a.csv", [interaction(event_id="ok")])
    landing.bytes("interactions", "b.csv.gz", b"definitely not gzip")
    landing.csv("interactions", "c.csv", [interaction(event_id="never")])
    with pytest.raises(IngestError, match=r"interactions/b\.csv\.gz"):
        ingest()
    # a.csv was committed before b.csv.gz failed; c.csv was never reached.
    assert rows_of(con, "SELECT event_id FROM raw_interactions") == [("ok",)]
    assert rows_of(con, "SELECT file, status FROM _ingest_files ORDER BY file") == [
        ("interactions/a.csv", "loaded"),
        ("interactions/b.csv.gz", "failed"),
    ]
    assert rows_of(con, "SELECT count(*) FROM _loaded_files") == [(1,)]


def test_truncated_gzip_stops_the_run(landing: Landing, ingest, con) -> None:
    path = landing.csv(
        "interactions", "a.csv", [interaction(event_id=f"e{i}") for i in range(50)], gz=True
    )
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(IngestError, match=r"interactions/a\.csv\.gz"):
        ingest()
    assert rows_of(con, "SELECT count(*) FROM raw_interactions") == [(0,)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_missing_required_column_stops_the_run(landing: Landing, ingest, con, fmt: str) -> None:
    rows = [{k: v for k, v in order().items() if k != "amount"}]
    getattr(landing, fmt)("orders", f"a.{fmt}", rows)
    with pytest.raises(IngestError, match=rf"orders/a\.{fmt}: missing required column\(s\) amount"):
        ingest()
    assert rows_of(con, "SELECT count(*) FROM raw_orders") == [(0,)]
    assert rows_of(con, "SELECT count(*) FROM quarantine") == [(0,)]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        # (malformed records, e.g. ragged or not UTF-8, are quarantined: test_bad_input.py)
        ("empty.csv", b"", "empty file"),
        ("latin1.csv", "usér_id,ts,marketplace,channel\n".encode("latin-1"), "utf-8"),
        ("bad.parquet", b"PAR1 but not really", "parquet"),
    ],
)
def test_unreadable_file_stops_the_run(
    landing: Landing, ingest, con, name: str, data: bytes, message: str
) -> None:
    landing.bytes("visits", name, data)
    with pytest.raises(IngestError, match=rf"visits/{name}") as info:
        ingest()
    assert message.lower() in str(info.value).lower()
    assert rows_of(con, "SELECT count(*) FROM raw_visits") == [(0,)]


def test_path_escaping_the_landing_folder_is_refused(
    tmp_path: Path, landing: Landing, ingest
) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("user_id,ts,marketplace,channel\n")
    (landing.root / "visits").mkdir(parents=True)
    (landing.root / "visits" / "sneaky.csv").symlink_to(outside)
    with pytest.raises(IngestError, match="outside the landing folder"):
        ingest()


def test_failed_file_is_read_again_by_the_next_run(landing: Landing, ingest, con) -> None:
    """After a failed file is fixed, the next run loads it (failures are not 'loaded')."""
    bad = landing.bytes("visits", "a.csv", b"")
    with pytest.raises(IngestError):
        ingest(run_id="run1")
    landing.csv(
        "visits",
        "a.csv",
        [{"user_id": "u1", "ts": "2024-02-01T00:00:00Z", "marketplace": "US", "channel": "web"}],
    )
    assert bad.exists()
    result = ingest(run_id="run2")
    assert result.rows_loaded == 1


def test_empty_jsonl_and_header_only_csv_load_nothing(landing: Landing, ingest, con) -> None:
    landing.bytes("visits", "a.jsonl", b"")
    landing.bytes("visits", "b.csv", b"user_id,ts,marketplace,channel\n")
    result = ingest()
    assert [(f.rows_read, f.status) for f in result.files] == [(0, "loaded"), (0, "loaded")]


# --------------------------------------------------------------------------------------------
# Discovery and reporting
# --------------------------------------------------------------------------------------------


def test_run_date_selects_its_partition_and_undated_files(landing: Landing, ingest, con) -> None:
    landing.csv("interactions", "a.csv", [interaction(event_id="d1")], dt="2024-02-01")
    landing.csv("interactions", "a.csv", [interaction(event_id="d2")], dt="2024-02-02")
    landing.csv("interactions", "undated.csv", [interaction(event_id="u")])
    landing.csv("products", "catalogue.csv", [{"product_id": "p1", "brand": "b", "category": "c"}])
    result = ingest(run_date=date(2024, 2, 2))
    assert [f.file for f in result.files] == [
        "interactions/dt=2024-02-02/a.csv",
        "interactions/undated.csv",
        "products/catalogue.csv",
    ]
    assert sorted(rows_of(con, "SELECT event_id FROM raw_interactions")) == [("d2",), ("u",)]
    # A full run afterwards picks up the rest.
    full = ingest(run_id="run2")
    assert [f.status for f in full.files] == [
        "loaded",
        "already_loaded",
        "already_loaded",
        "already_loaded",
    ]
    assert rows_of(con, "SELECT count(*) FROM raw_interactions") == [(3,)]


def test_unknown_folders_and_suffixes_are_ignored_and_listed(landing: Landing, ingest) -> None:
    landing.csv("interactions", "a.csv", [interaction()])
    landing.bytes("interactions", "notes.txt", b"hello", dt="2024-02-01")
    landing.bytes("clicks", "a.csv", b"x\n1\n")
    landing.bytes("interactions", "README.md", b"x")
    (landing.root / "interactions" / "archive").mkdir()
    (landing.root / "stray.csv").write_text("a\n")
    result = ingest()
    assert [f.file for f in result.files] == ["interactions/a.csv"]
    assert {(i.path, i.reason) for i in result.ignored} == {
        ("clicks", "unknown source folder"),
        ("interactions/README.md", "unsupported file type"),
        ("interactions/archive", "not a dt=YYYY-MM-DD partition folder"),
        ("interactions/dt=2024-02-01/notes.txt", "unsupported file type"),
        ("stray.csv", "not inside a source folder"),
    }
    assert any("clicks" in w for w in result.warnings)


def test_discovery_is_sorted_and_missing_landing_is_an_error(
    tmp_path: Path, landing: Landing
) -> None:
    for name in ("b.csv", "a.jsonl.gz", "c.parquet"):
        landing.bytes("visits", name, b"")
    landing.bytes("visits", "z.csv", b"", dt="2024-01-01")
    files, _ = discover_files(landing.root)
    assert [f.rel for f in files] == [
        "visits/a.jsonl.gz",
        "visits/b.csv",
        "visits/c.parquet",
        "visits/dt=2024-01-01/z.csv",
    ]
    assert next((f.fmt, f.compressed) for f in files) == ("jsonl", True)
    with pytest.raises(IngestError, match="does not exist"):
        discover_files(tmp_path / "nope")


def test_render_and_to_dict(landing: Landing, ingest) -> None:
    landing.csv("interactions", "a.csv", [interaction(), interaction(event_id="e2", channel="x")])
    landing.bytes("clicks", "a.csv", b"x\n")
    result = ingest()
    text = result.render()
    assert "interactions/a.csv" in text
    assert "invalid_channel=1" in text
    assert "warning: ignored clicks: unknown source folder" in text
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["totals"]["rows_read"] == 2
    assert summary["loaded_sources"] == ["interactions"]
    assert result.totals() == {
        "files": 1,
        "files_loaded": 1,
        "files_already_loaded": 0,
        "rows_read": 2,
        "rows_loaded": 1,
        "duplicates": 0,
        "quarantined": 1,
    }


def test_future_tolerance_follows_settings(landing: Landing, ingest, con) -> None:
    landing.csv("interactions", "a.csv", [interaction(ts="2024-03-03T00:00:00Z")])
    result = ingest(settings=Settings(future_tolerance_days=3))
    assert result.rows_loaded == 1


def test_run_time_with_offset_and_schema_is_idempotent(landing: Landing, con) -> None:
    ensure_raw_schema(con)
    ensure_raw_schema(con)
    landing.csv("assignments", "a.csv", [assignment(assigned_at="2024-03-02T11:00:00Z")])
    from datetime import timedelta, timezone

    # 2024-03-01 14:00+02:00 == 12:00 UTC; +1 day tolerance keeps 2024-03-02 11:00 UTC.
    run_time = datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    result = ingest_landing(con, landing.root, Settings(), run_id="r", run_time=run_time)
    assert result.rows_loaded == 1
    assert result.run_time == RUN_TIME
