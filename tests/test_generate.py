"""Tests of the synthetic generated generator: determinism, layout, planted truth, injected mess."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from attribution.config import CHANNELS, DEFAULT_MARKETPLACE_CURRENCIES, EVENT_TYPES, Settings
from attribution.contract import FILE_SUFFIXES, SOURCES
from attribution.generate import EXPERIMENT_ID, MODEL_VERSIONS, generate_landing

SETTINGS = Settings()
DATED = ("interactions", "orders", "visits", "fx_rates")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _glob(root: Path, source: str) -> str:
    return str(root / source / "*" / "*")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("landing")
    truth = generate_landing(out, users=5000, days=30, seed=11, settings=SETTINGS)
    return out, truth


@pytest.fixture(scope="module")
def raw(generated: tuple[Path, dict]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every source read as text (raw_<source> views)."""
    root, _ = generated
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    cols = ", ".join(
        f"{c.name}: '{'VARCHAR[]' if c.name == 'product_ids' else 'VARCHAR'}'"
        for c in SOURCES["interactions"].columns
    )
    connection.execute(
        f"CREATE VIEW raw_interactions AS SELECT * FROM read_json('{_glob(root, 'interactions')}', "
        f"columns = {{{cols}}}, hive_partitioning = true)"
    )
    connection.execute(
        f"CREATE VIEW raw_orders AS SELECT * FROM read_csv('{_glob(root, 'orders')}', "
        "all_varchar = true, hive_partitioning = true)"
    )
    connection.execute(
        f"CREATE VIEW raw_visits AS SELECT * FROM read_parquet('{_glob(root, 'visits')}', "
        "hive_partitioning = true)"
    )
    connection.execute(
        f"CREATE VIEW raw_assignments AS SELECT * FROM read_csv('{root}/assignments/*.csv', "
        "all_varchar = true)"
    )
    return connection


def _one(raw: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = raw.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_same_seed_gives_identical_bytes_and_truth(tmp_path: Path) -> None:
    a = generate_landing(tmp_path / "a", users=1000, days=10, seed=3)
    b = generate_landing(tmp_path / "b", users=1000, days=10, seed=3)
    c = generate_landing(tmp_path / "c", users=1000, days=10, seed=4)
    assert a == b
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    files_c = _files(tmp_path / "c")
    assert a != c
    assert any(files_c.get(k) != v for k, v in _files(tmp_path / "a").items())


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    generate_landing(tmp_path, users=300, days=3, seed=1)
    with pytest.raises(FileExistsError):
        generate_landing(tmp_path, users=300, days=3, seed=1)
    generate_landing(tmp_path, users=300, days=2, seed=1, overwrite=True)
    assert len(list((tmp_path / "visits").iterdir())) == 2


def test_layout_matches_the_contract(generated: tuple[Path, dict]) -> None:
    root, truth = generated
    assert {p.name for p in root.iterdir() if p.is_dir()} == set(SOURCES)
    start = date.fromisoformat(truth["parameters"]["start_date"])
    end = date.fromisoformat(truth["parameters"]["end_date"])
    for source in DATED:
        parts = sorted((root / source).iterdir())
        days = [date.fromisoformat(p.name.removeprefix("dt=")) for p in parts]
        assert all(p.name.startswith("dt=") for p in parts)
        assert days[0] == start
        late = sum(day > end for day in days)
        if source == "orders":  # late cancellations and returns land after the period
            assert late == truth["injected"]["orders"]["partitions_after_period"] > 0
        else:
            assert days[-1] == end and late == 0
        assert len(days) >= (end - start).days + 1
    for path in root.rglob("*"):
        if path.is_file() and path.name != "truth.json":
            assert any(path.name.endswith(s) for s in FILE_SUFFIXES), path
    assert (root / "assignments" / "assignments.csv").is_file()
    assert (root / "products" / "products.parquet").is_file()


@pytest.mark.parametrize(
    ("source", "reader"),
    [
        (
            "interactions",
            "read_json_auto('{root}/interactions/*/*.jsonl.gz', hive_partitioning = false)",
        ),
        (
            "orders",
            "read_csv('{root}/orders/*/*.csv.gz', hive_partitioning = false, all_varchar = true)",
        ),
        ("visits", "read_parquet('{root}/visits/*/*.parquet', hive_partitioning = false)"),
        ("fx_rates", "read_csv('{root}/fx_rates/*/*.csv', hive_partitioning = false)"),
        ("assignments", "read_csv('{root}/assignments/assignments.csv')"),
        ("products", "read_parquet('{root}/products/products.parquet')"),
    ],
)
def test_duckdb_reads_every_source_with_contract_columns(
    generated: tuple[Path, dict], source: str, reader: str
) -> None:
    root, _ = generated
    rel = duckdb.sql(f"SELECT * FROM {reader.format(root=root)}")
    assert set(rel.columns) == set(SOURCES[source].column_names)
    assert rel.aggregate("count(*)").fetchall()[0][0] > 0


def test_planted_effect_and_self_selection(tmp_path: Path, generated: tuple[Path, dict]) -> None:
    _, truth = generated
    null = generate_landing(tmp_path, users=5000, days=30, seed=11, effect=0.0)
    for w in ("1", "7", "14"):
        assert abs(null["att_conversion_lift"][w]) < 0.02
        assert abs(null["itt_conversion_lift"][w]) < 0.02
        assert null["observed_conversion_lift"][w] > 0.15  # self-selection alone
    assert truth["true_effect_relative"] == 0.15
    assert truth["att_conversion_lift"]["7"] > 0.05
    assert truth["itt_conversion_lift"]["7"] > 0.02  # diluted: not every user engages
    for w in ("1", "7", "14"):
        assert truth["observed_conversion_lift"][w] > truth["att_conversion_lift"][w] + 0.05
    rates = truth["conversion_rates"]["itt"]
    assert rates["14"]["world_none"] > 1.5 * rates["1"]["world_none"]
    # complete windows only: 30 days leave no unit with a whole 30-day window
    for key in ("itt_conversion_lift", "att_conversion_lift", "observed_conversion_lift"):
        assert truth[key]["30"] is None


def test_unobserved_confounding_is_opt_in(tmp_path: Path, generated: tuple[Path, dict]) -> None:
    _, truth = generated
    assert truth["parameters"]["unobserved_confounding"] == 0.0
    hidden = generate_landing(
        tmp_path, users=5000, days=30, seed=11, effect=0.0, unobserved_confounding=1.0
    )
    null = generate_landing(tmp_path / "null", users=5000, days=30, seed=11, effect=0.0)
    for w in ("1", "7"):
        assert abs(hidden["att_conversion_lift"][w]) < 0.02
        # same-day intent that nothing before the day reveals adds to the naive lift
        assert hidden["observed_conversion_lift"][w] > null["observed_conversion_lift"][w] + 0.2


def test_truth_document(generated: tuple[Path, dict]) -> None:
    root, truth = generated
    assert json.loads((root / "truth.json").read_text()) == truth
    assert truth["parameters"]["seed"] == 11
    assert truth["parameters"]["end_date"] == "2026-09-30"
    assert "within W days after the index time" in truth["definitions"]
    windows = {str(w) for w in SETTINGS.windows_days}
    for key in ("itt_conversion_lift", "att_conversion_lift", "observed_conversion_lift"):
        assert set(truth[key]) == windows
    counts = truth["counts"]
    assert counts["users"] == 5000
    assert 0 < counts["engaged_visitor_days"] < counts["visitor_days"]
    assert counts["orders"] < counts["order_lines"]


def test_interactions_look_real(raw: duckdb.DuckDBPyConnection) -> None:
    valid = "raw_interactions WHERE marketplace <> 'XX' AND channel <> 'fax'"
    channels = {r[0] for r in raw.execute(f"SELECT DISTINCT channel FROM {valid}").fetchall()}
    assert channels == set(CHANNELS)
    types = {
        r[0]
        for r in raw.execute(
            f"SELECT DISTINCT event_type FROM {valid} AND event_type <> 'telepathy'"
        ).fetchall()
    }
    assert types == set(EVENT_TYPES)
    markets = {r[0] for r in raw.execute(f"SELECT DISTINCT marketplace FROM {valid}").fetchall()}
    assert markets == set(DEFAULT_MARKETPLACE_CURRENCIES)
    # the app sends session ids, web and voice do not
    assert (
        _one(raw, f"SELECT count(*) FROM {valid} AND channel = 'app' AND session_id IS NULL") == 0
    )
    assert (
        _one(raw, f"SELECT count(*) FROM {valid} AND channel <> 'app' AND session_id IS NOT NULL")
        == 0
    )
    # some timestamps carry a non-UTC offset
    assert _one(raw, "SELECT count(*) FROM raw_interactions WHERE ts LIKE '%+05:30'") > 0


def test_model_versions_roll_out(
    raw: duckdb.DuckDBPyConnection, generated: tuple[Path, dict]
) -> None:
    _, truth = generated
    rollout = datetime.fromisoformat(truth["model_versions"]["rollout_start"])
    rows = raw.execute(
        "SELECT model_version, min(try_cast(ts AS TIMESTAMPTZ)), count(*) FROM raw_interactions "
        "WHERE ts NOT LIKE '2099%' GROUP BY 1"
    ).fetchall()
    first_seen = {version: first for version, first, _ in rows}
    assert set(first_seen) == set(MODEL_VERSIONS)
    assert first_seen["shopbot-v2"] >= rollout


def test_sessions_follow_the_30_minute_rule(raw: duckdb.DuckDBPyConnection) -> None:
    gaps = raw.execute(
        """
        WITH ev AS (
            SELECT DISTINCT event_id, user_id, try_cast(ts AS TIMESTAMPTZ) AS t, session_id
            FROM raw_interactions
            WHERE user_id IS NOT NULL AND try_cast(ts AS TIMESTAMPTZ) IS NOT NULL
              AND ts NOT LIKE '2099%' AND marketplace <> 'XX' AND channel <> 'fax'
              AND event_type <> 'telepathy'
        ), g AS (
            SELECT *, t - lag(t) OVER w AS gap, lag(session_id) OVER w AS prev_session
            FROM ev WINDOW w AS (PARTITION BY user_id ORDER BY t, event_id)
        )
        SELECT
            count(*) FILTER (WHERE gap > INTERVAL 30 MINUTE AND session_id = prev_session),
            count(*) FILTER (WHERE gap <= INTERVAL 30 MINUTE AND session_id <> prev_session),
            count(*) FILTER (WHERE gap > INTERVAL 30 MINUTE)
        FROM g
        """
    ).fetchone()
    assert gaps[0] == 0 and gaps[1] == 0 and gaps[2] > 0


def test_holdout_users_never_engage_and_sessions_follow_a_visit(
    raw: duckdb.DuckDBPyConnection,
) -> None:
    holdout_events = _one(
        raw,
        "SELECT count(*) FROM raw_interactions i JOIN raw_assignments a USING (user_id) "
        f"WHERE a.arm = 'holdout' AND a.experiment_id = '{EXPERIMENT_ID}'",
    )
    assert holdout_events == 0
    before_first_visit = _one(
        raw,
        """
        WITH v AS (
            SELECT user_id, CAST(ts AS DATE) AS d, min(ts) AS first_visit
            FROM raw_visits WHERE year(ts) < 2099 GROUP BY ALL
        ), i AS (
            SELECT user_id, try_cast(ts AS TIMESTAMPTZ) AS t FROM raw_interactions
            WHERE user_id IS NOT NULL AND try_cast(ts AS TIMESTAMPTZ) IS NOT NULL
              AND ts NOT LIKE '2099%'
        )
        SELECT count(*) FROM i LEFT JOIN v
          ON i.user_id = v.user_id AND CAST(timezone('UTC', i.t) AS DATE) = v.d
        WHERE v.first_visit IS NULL OR timezone('UTC', i.t) < v.first_visit
        """,
    )
    assert before_first_visit == 0


def test_orders_follow_visits_by_hours_to_weeks(raw: duckdb.DuckDBPyConnection) -> None:
    share_within_1_day, share_over_7_days = raw.execute(
        """
        WITH o AS (
            SELECT DISTINCT order_id, user_id, CAST(ts AS TIMESTAMPTZ) AS t
            FROM raw_orders WHERE status = 'placed' AND user_id IS NOT NULL
              AND try_cast(ts AS TIMESTAMPTZ) IS NOT NULL AND ts NOT LIKE '2099%'
        ), lagged AS (
            SELECT o.order_id, min(timezone('UTC', o.t) - v.ts) AS since_last_visit
            FROM o JOIN raw_visits v
              ON v.user_id = o.user_id AND v.ts <= timezone('UTC', o.t)
            GROUP BY 1
        )
        SELECT avg(CAST(since_last_visit <= INTERVAL 1 DAY AS INT)),
               avg(CAST(since_last_visit > INTERVAL 7 DAY AS INT))
        FROM lagged
        """
    ).fetchone()
    assert share_within_1_day > 0.5
    assert share_over_7_days > 0.02


def test_injected_counts_match_what_a_reader_finds(
    raw: duckdb.DuckDBPyConnection, generated: tuple[Path, dict]
) -> None:
    _, truth = generated
    inj = truth["injected"]
    ev = inj["interactions"]
    assert _one(raw, "SELECT count(*) FROM raw_interactions") == ev["rows_written"]
    assert ev["rows_written"] == ev["valid_rows"] + ev["duplicates"] + ev["malformed_total"]
    assert (
        _one(raw, "SELECT count(*) - count(DISTINCT event_id) FROM raw_interactions")
        == ev["duplicates"]
    )
    checks_ev = {
        "missing_user_id": "user_id IS NULL",
        "unparseable_ts": "ts = '2026-13-45T99:00'",
        "future_ts": "ts LIKE '2099%'",
        "unknown_marketplace": "marketplace = 'XX'",
        "bad_channel": "channel = 'fax'",
        "bad_event_type": "event_type = 'telepathy'",
    }
    for kind, where in checks_ev.items():
        assert (
            _one(raw, f"SELECT count(*) FROM raw_interactions WHERE {where}")
            == ev["malformed"][kind]
        )
        assert ev["malformed"][kind] > 0

    od = inj["orders"]
    assert _one(raw, "SELECT count(*) FROM raw_orders") == od["rows_written"]
    checks_od = {
        "missing_user_id": "user_id IS NULL",
        "unparseable_ts": "ts = '2026-13-45T99:00'",
        "future_ts": "ts LIKE '2099%'",
        "unknown_marketplace": "marketplace = 'XX'",
        "quantity_zero": "quantity = '0'",
        "negative_amount": "amount LIKE '-%'",
        "bad_currency": "currency = 'US$'",
        "bad_status": "status = 'lost'",
    }
    for kind, where in checks_od.items():
        assert _one(raw, f"SELECT count(*) FROM raw_orders WHERE {where}") == od["malformed"][kind]
    for status in ("cancelled", "returned"):
        assert (
            _one(raw, f"SELECT count(*) FROM raw_orders WHERE status = '{status}'")
            == (od["updates"][status])
        )
    end = truth["parameters"]["end_date"]
    assert (
        _one(raw, f"SELECT count(*) FROM raw_orders WHERE dt > DATE '{end}'")
        == od["updates_after_period"]
        > 0
    )
    assert _one(raw, "SELECT count(*) FROM raw_orders WHERE status = 'placed'") == (
        od["placed_lines"] + od["malformed_total"] - od["malformed"]["bad_status"]
    )

    vi = inj["visits"]
    assert _one(raw, "SELECT count(*) FROM raw_visits") == vi["rows_written"]
    assert (
        _one(raw, "SELECT count(*) FROM raw_visits WHERE marketplace = 'XX'")
        == (vi["malformed"]["unknown_marketplace"])
    )
    assert (
        _one(raw, "SELECT count(*) FROM raw_visits WHERE channel = 'fax'")
        == (vi["malformed"]["bad_channel"])
    )
    assert (
        _one(raw, "SELECT count(*) FROM raw_visits WHERE year(ts) = 2099")
        == (vi["malformed"]["future_ts"])
    )
    assert (
        _one(raw, "SELECT count(*) FROM raw_visits WHERE user_id IS NULL")
        == (vi["malformed"]["missing_user_id"])
    )
    distinct_rows = _one(
        raw,
        "SELECT count(*) FROM (SELECT DISTINCT user_id, ts, marketplace, channel FROM raw_visits)",
    )
    assert vi["rows_written"] - distinct_rows == vi["duplicates"]
    assert _one(raw, "SELECT count(*) FROM raw_assignments") == inj["assignments"]["rows_written"]


def test_fx_rates_cover_every_currency_and_day(generated: tuple[Path, dict]) -> None:
    root, truth = generated
    rows = duckdb.sql(
        f"SELECT currency, count(*), min(rate_to_usd), max(rate_to_usd) "
        f"FROM read_csv('{root}/fx_rates/*/*.csv') GROUP BY 1"
    ).fetchall()
    by_currency = {c: (n, lo, hi) for c, n, lo, hi in rows}
    assert set(by_currency) == set(DEFAULT_MARKETPLACE_CURRENCIES.values()) | {"USD"}
    assert all(n == truth["parameters"]["days"] for n, _, _ in by_currency.values())
    assert by_currency["USD"][1:] == (1.0, 1.0)
    assert 1.1 < by_currency["GBP"][1] < 1.45
    assert 0.009 < by_currency["INR"][1] < 0.015


def test_catalogue(generated: tuple[Path, dict]) -> None:
    root, _ = generated
    n, brands, categories, distinct_ids = duckdb.sql(
        f"SELECT count(*), count(DISTINCT brand), count(DISTINCT category), "
        f"count(DISTINCT product_id) FROM read_parquet('{root}/products/products.parquet')"
    ).fetchall()[0]
    assert n == distinct_ids == 250
    assert 30 <= brands <= 200
    assert 10 <= categories <= 20


def test_shards_add_disjoint_populations(tmp_path: Path) -> None:
    """Shard 1 adds its own users, orders, sessions and events beside shard 0's, which it
    leaves byte for byte as they were; every row of both loads (5x L is generated this way)."""
    from attribution.ingest import ingest_landing

    alone = tmp_path / "alone"
    generate_landing(alone, users=800, days=8, seed=5, settings=SETTINGS)
    root = tmp_path / "sharded"
    first = generate_landing(root, users=800, days=8, seed=5, settings=SETTINGS)
    with pytest.raises(ValueError, match="shard 0"):
        generate_landing(tmp_path / "empty", users=800, days=8, seed=5, shard=1)
    second = generate_landing(root, users=800, days=8, seed=5, settings=SETTINGS, shard=1)
    files = _files(root)
    assert {k: v for k, v in files.items() if "part-00001" not in k and "shard-1" not in k} == (
        _files(alone)
    )
    assert "assignments/assignments-shard-1.csv" in files and "truth-shard-1.json" in files
    assert not any("part-00001" in k for k in files if k.startswith(("fx_rates", "products")))
    assert first["counts"]["orders"] > 0 and second["counts"]["orders"] > 0

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = ingest_landing(con, root, SETTINGS, run_id="shards")
    assert result.rows_loaded > 0

    def per_part(table: str, column: str) -> list[set]:
        rows = con.execute(
            f'SELECT DISTINCT "{column}", _file LIKE \'%part-00001%\' FROM "{table}" '
            f'WHERE "{column}" IS NOT NULL'
        ).fetchall()
        return [{v for v, second in rows if second == k} for k in (False, True)]

    for table, column in (
        ("raw_interactions", "user_id"),
        ("raw_interactions", "session_id"),
        ("raw_interactions", "event_id"),
        ("raw_orders", "order_id"),
        ("raw_visits", "user_id"),
    ):
        zero, one = per_part(table, column)
        assert zero and one and not zero & one, (table, column)
    users = con.execute("SELECT count(DISTINCT user_id) FROM raw_assignments").fetchone()[0]
    assert users == 1600
