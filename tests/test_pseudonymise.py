"""Privacy at ingest (issue 9): keyed pseudonyms of user ids (HMAC-SHA256, key from the
environment only), no free-text content stored, no user id or key in logs, _runs or reports."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import RUN_TIME, Landing, assignment, interaction, order, visit

from attribution.config import USER_ID_KEY_ENV, Settings, user_id_key
from attribution.ingest import IngestError, ensure_raw_schema, ingest_landing
from attribution.pseudonyms import PSEUDONYM_HEX_CHARS, key_check, pseudonym, pseudonyms

KEY = "k3y-for-tests-0123456789-abcdef"
OTHER_KEY = "another-key-for-tests-98765"
ON = Settings(pseudonymise_user_ids=True)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(USER_ID_KEY_ENV, KEY)
    return KEY


def text_values(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, str, str]]:
    """Every (table, column, text) of every VARCHAR, VARCHAR[] and JSON column of every table
    and view (lists as their text form)."""
    columns = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND (data_type LIKE 'VARCHAR%' OR data_type = 'JSON')"
    ).fetchall()
    for table, column, _ in columns:
        rows = con.execute(
            f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM "{table}" '
            f'WHERE "{column}" IS NOT NULL'
        ).fetchall()
        for (value,) in rows:
            yield table, column, value


def leaks(con: duckdb.DuckDBPyConnection, secrets: set[str]) -> list[tuple[str, str, str]]:
    return [
        (table, column, secret)
        for table, column, value in text_values(con)
        for secret in secrets
        if secret in value
    ]


# --- the keyed hash and the key --------------------------------------------------------------


def test_pseudonym_is_truncated_hmac_sha256_stable_and_keyed() -> None:
    key = KEY.encode()
    expected = hmac.new(key, "Aü-1".encode(), hashlib.sha256).hexdigest()[:32]
    assert pseudonym("Aü-1", key) == expected
    assert len(expected) == PSEUDONYM_HEX_CHARS
    assert pseudonyms(["Aü-1", "u2", "Aü-1"], key) == [expected, pseudonym("u2", key), expected]
    assert pseudonym("Aü-1", OTHER_KEY.encode()) != expected
    # not the unkeyed hash of the id, nor of key || id
    assert expected not in (
        hashlib.sha256("Aü-1".encode()).hexdigest()[:32],
        hashlib.sha256(key + "Aü-1".encode()).hexdigest()[:32],
    )
    assert key_check(key) != key_check(OTHER_KEY.encode())
    assert KEY not in key_check(key)


def test_key_comes_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USER_ID_KEY_ENV, raising=False)
    assert user_id_key(Settings()) is None
    with pytest.raises(ValueError, match=f"environment variable {USER_ID_KEY_ENV} is not set"):
        user_id_key(ON)
    monkeypatch.setenv(USER_ID_KEY_ENV, "short-secret")
    with pytest.raises(ValueError, match="too short") as info:
        user_id_key(ON)
    assert "short-secret" not in str(info.value)
    monkeypatch.setenv(USER_ID_KEY_ENV, KEY)
    assert user_id_key(ON) == KEY.encode()
    assert user_id_key(Settings()) is None  # off: the key is not even read
    # the key is no setting: not in the dump, the hash or the settings JSON
    assert KEY not in ON.model_dump_json()
    assert ON.settings_hash() != Settings().settings_hash()  # the mode changes the tables
    monkeypatch.setenv(USER_ID_KEY_ENV, OTHER_KEY)
    assert Settings(pseudonymise_user_ids=True).settings_hash() == ON.settings_hash()


def test_a_key_written_in_a_settings_file_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "attribution.toml").write_text(
        f'pseudonymise_user_ids = true\nuser_id_key = "{KEY}"\n'
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="must not be written in a file") as info:
        Settings()
    assert KEY not in str(info.value)


# --- ingest -----------------------------------------------------------------------------------


def every_source_landing(landing: Landing) -> set[str]:
    """One user in every source with user_id, plus quarantined rows that hold user ids and an
    unknown free-text column; returns the raw user ids."""
    landing.csv(
        "interactions",
        "i.csv",
        [
            {**interaction(user_id="alice-raw-id"), "query_text": "red shoes size 42 for alice"},
            {**interaction(event_id="e2", user_id="bob-raw-id", channel="fax")},
        ],
    )
    landing.jsonl(
        "orders",
        "o.jsonl",
        [
            order(user_id="alice-raw-id"),
            {**order(order_id="o2", user_id="carol-raw-id", quantity="0"), "note": "carol@x"},
            ["dave-raw-id", "free text"],
        ],
    )
    landing.parquet(
        "visits",
        "v.parquet",
        "SELECT ' alice-raw-id ' AS user_id, TIMESTAMP '2024-02-01 09:00:00' AS ts, "
        "'US' AS marketplace, 'web' AS channel",
    )
    landing.csv("assignments", "a.csv", [assignment(user_id="alice-raw-id")])
    return {"alice-raw-id", "bob-raw-id", "carol-raw-id", "dave-raw-id"}


def test_pseudonymised_ingest_stores_no_raw_id_and_joins_still_work(
    landing: Landing, ingest, con, keyed: str
) -> None:
    raw_ids = every_source_landing(landing)
    ingest(settings=ON)

    alice = pseudonym("alice-raw-id", keyed.encode())
    for table in ("raw_interactions", "raw_orders", "raw_visits", "raw_assignments"):
        assert con.execute(f"SELECT DISTINCT user_id FROM {table}").fetchall() == [(alice,)]
    # quarantined rows: user_id replaced, unknown columns and non-object lines not kept
    assert leaks(con, raw_ids | {keyed, "red shoes", "carol@x", "free text"}) == []
    bob = con.execute("SELECT raw FROM quarantine WHERE source = 'interactions'").fetchone()
    assert pseudonym("bob-raw-id", keyed.encode()) in bob[0]
    assert '"_extra_columns":["query_text"]' in bob[0]


def test_without_pseudonymisation_ids_are_kept_but_no_free_text(
    landing: Landing, ingest, con
) -> None:
    every_source_landing(landing)
    ingest()
    assert con.execute("SELECT DISTINCT user_id FROM raw_orders").fetchall() == [("alice-raw-id",)]
    # (a) no free-text query content: unknown columns are dropped from raw and quarantine
    assert leaks(con, {"red shoes", "carol@x", "free text"}) == []


def test_changing_the_key_or_the_mode_over_loaded_data_is_refused(
    landing: Landing, ingest, con, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing.csv("visits", "a.csv", [visit()])
    monkeypatch.setenv(USER_ID_KEY_ENV, KEY)
    ingest(settings=ON)
    landing.csv("visits", "b.csv", [visit(user_id="u2")])

    monkeypatch.setenv(USER_ID_KEY_ENV, OTHER_KEY)
    with pytest.raises(IngestError, match="pseudonymised with another key") as info:
        ingest(settings=ON)
    assert OTHER_KEY not in str(info.value) and KEY not in str(info.value)
    with pytest.raises(IngestError, match="pseudonymise_user_ids is off"):
        ingest()
    monkeypatch.delenv(USER_ID_KEY_ENV)
    with pytest.raises(IngestError, match="is not set"):
        ingest(settings=ON)
    assert con.execute("SELECT count(*) FROM raw_visits").fetchall() == [(1,)]
    # the same key again: loads, same pseudonym space
    monkeypatch.setenv(USER_ID_KEY_ENV, KEY)
    ingest(settings=ON)
    assert sorted(con.execute("SELECT user_id FROM raw_visits").fetchall()) == sorted(
        [(pseudonym("u1", KEY.encode()),), (pseudonym("u2", KEY.encode()),)]
    )
    assert leaks(con, {KEY, OTHER_KEY}) == []


def test_another_key_gives_other_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = Landing(tmp_path / "landing")
    landing.csv("visits", "a.csv", [visit(user_id="same-user")])
    got = []
    for n, key in enumerate((KEY, OTHER_KEY)):
        monkeypatch.setenv(USER_ID_KEY_ENV, key)
        con = duckdb.connect(str(tmp_path / f"w{n}.duckdb"))
        ensure_raw_schema(con)
        ingest_landing(con, landing.root, ON, run_id="r", run_time=RUN_TIME)
        got.append(con.execute("SELECT user_id FROM raw_visits").fetchall())
        con.close()
    assert got[0] != got[1]
    assert "same-user" not in repr(got)


def test_loaded_without_pseudonymisation_then_switched_on_is_refused(
    landing: Landing, ingest, con, keyed: str
) -> None:
    ingest()  # nothing loaded yet: the mode can still change
    ingest(settings=ON)
    assert con.execute("SELECT key_check FROM _pseudonymisation").fetchall() == [
        (key_check(keyed.encode()),)
    ]
    ingest()
    landing.csv("visits", "a.csv", [visit()])
    ingest()
    landing.csv("visits", "b.csv", [visit(user_id="u2")])
    with pytest.raises(IngestError, match="loaded without pseudonymisation"):
        ingest(settings=ON)


# --- the whole pipeline: same numbers, no id or key in logs, _runs or the report -------------

FIRST = date(2026, 9, 1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attribution.generate import generate_landing

    root = tmp_path_factory.mktemp("pseudo")
    generate_landing(root / "landing", users=200, days=12, seed=5, start_date=FIRST)
    return root / "landing"


def user_ids(warehouse: Path) -> set[str]:
    """The raw user ids a warehouse loaded (every source with user_id)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            " UNION ".join(
                f"SELECT user_id FROM raw_{s}"
                for s in ("interactions", "orders", "visits", "assignments")
            )
        ).fetchall()
    finally:
        con.close()
    return {row[0] for row in rows}


def run_logged(
    landing: Path, out: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Run the pipeline with the report; return every progress line and log record."""
    from attribution.pipeline import run_pipeline

    said: list[str] = []
    with caplog.at_level(logging.DEBUG):
        run_pipeline(
            settings,
            landing_dir=landing,
            warehouse_path=out / "w.duckdb",
            report_dir=out / "report",
            progress=said.append,
            expectations=False,
        )
    return said + [record.getMessage() for record in caplog.records]


def report_text(folder: Path) -> str:
    """Every text file of a report folder, and the string cells of its Parquet exports."""
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in {".html", ".csv", ".json", ".txt", ".md"}:
            parts.append(path.read_text(errors="replace"))
        elif path.suffix == ".parquet":
            con = duckdb.connect()
            parts.append(repr(con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()))
    return "\n".join(parts)


NUMBERS = {
    "kpi_daily": "SELECT * FROM kpi_daily",
    "kpi_monthly": "SELECT * FROM kpi_monthly",
    "attribution": "SELECT order_id, line_no, window_days, scope, session_start, first_touch, "
    "last_touch, linear, time_decay, position_based, line_revenue_usd FROM fct_attribution",
    "lift": "SELECT period_start, segment, method, window_days, n_engaged, n_comparison, "
    "cr_engaged, cr_comparison, lift FROM fct_conversion_lift",
}


def numbers(warehouse: Path) -> dict[str, list[tuple]]:
    """The NUMBERS tables, rows sorted by their non-float cells (floats may differ in the last
    bits: sums over users run in another order when the ids are spelt otherwise)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            name: sorted(con.execute(sql).fetchall(), key=lambda row: repr(exact_part(row)))
            for name, sql in NUMBERS.items()
        }
    finally:
        con.close()


def exact_part(row: tuple) -> tuple:
    return tuple(None if isinstance(cell, float) else cell for cell in row)


def same_numbers(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> list[str]:
    """Return the tables whose rows differ (floats within 1e-9 relative count as equal)."""

    def close(x: object, y: object) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (x != x and y != y)
        return x == y

    return [
        name
        for name in a
        if len(a[name]) != len(b[name])
        or not all(
            len(r) == len(q) and all(map(close, r, q))
            for r, q in zip(a[name], b[name], strict=True)
        )
    ]


def test_pipeline_with_pseudonyms_same_numbers_no_ids_or_key_anywhere(
    generated: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landing = generated
    settings = Settings(report_png="never", privacy_min_users=1)

    plain_log = run_logged(landing, tmp_path / "plain", settings, caplog)
    monkeypatch.setenv(USER_ID_KEY_ENV, KEY)
    caplog.clear()
    keyed_log = run_logged(
        landing,
        tmp_path / "keyed",
        settings.model_copy(update={"pseudonymise_user_ids": True}),
        caplog,
    )
    printed = capsys.readouterr()
    raw_ids = user_ids(tmp_path / "plain" / "w.duckdb")
    assert len(raw_ids) > 100

    # (b) the attribution, lift and KPI numbers do not depend on the ids' spelling
    keyed_numbers = numbers(tmp_path / "keyed" / "w.duckdb")
    assert all(keyed_numbers.values())
    assert same_numbers(keyed_numbers, numbers(tmp_path / "plain" / "w.duckdb")) == []
    # no raw user id anywhere in the pseudonymised warehouse; the key nowhere at all
    con = duckdb.connect(str(tmp_path / "keyed" / "w.duckdb"), read_only=True)
    try:
        assert leaks(con, raw_ids | {KEY}) == []
        assert con.execute("SELECT count(DISTINCT user_id) FROM raw_interactions").fetchone()[0]
    finally:
        con.close()
    # (c) logs, progress, printed output and the report hold no user id (either run), no key
    for text in (
        "\n".join(plain_log),
        "\n".join(keyed_log),
        printed.out + printed.err,
        report_text(tmp_path / "plain" / "report"),
        report_text(tmp_path / "keyed" / "report"),
    ):
        assert KEY not in text
        assert [i for i in raw_ids if i in text] == []
