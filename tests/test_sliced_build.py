"""A model declared ``sliced_by`` is built in slices of days: same rows as one build (issue 7)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_warehouse import report_warehouse

from attribution import warehouse as wh
from attribution.config import Settings
from attribution.warehouse import day_slices, load_model, model_parameters, run_model, sql_dir

D = date(2026, 3, 1)


def day(n: int) -> date:
    return D + timedelta(days=n)


def test_day_slices_hand_computed() -> None:
    rows = [(day(0), 100), (day(1), 200), (day(2), 50), (day(4), 400), (day(5), 10)]
    # 100 | 200 + 50 (= 250, the limit) | 400 alone (above it) | 10, then the empty tail
    assert day_slices(rows, day(0), day(6), 250) == [
        (day(0), day(0)),
        (day(1), day(3)),  # day 3 has no rows: it joins the slice before it
        (day(4), day(4)),
        (day(5), day(6)),
    ]
    assert day_slices([], day(0), day(6), 250) == [(day(0), day(6))]
    # rows outside the window are not counted, and the window's ends are kept
    assert day_slices([(day(-1), 999), (day(9), 999)], day(0), day(6), 1) == [(day(0), day(6))]


@given(
    counts=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=40),
    limit=st.integers(min_value=1, max_value=120),
)
def test_day_slices_cover_the_window_once_within_the_limit(counts: list[int], limit: int) -> None:
    rows = [(day(i), n) for i, n in enumerate(counts) if n]
    end = day(len(counts) - 1)
    slices = day_slices(rows, day(0), end, limit)
    assert slices[0][0] == day(0) and slices[-1][1] == end
    for (_, last), (first, _) in pairwise(slices):
        assert first == last + timedelta(days=1)  # consecutive, no gap, no overlap
    for first, last in slices:
        assert first <= last
        held = [n for d, n in rows if first <= d <= last]
        assert sum(held) <= limit or len(held) == 1  # one day above the limit stands alone


def test_only_a_daily_incremental_model_can_be_sliced(tmp_path: Path) -> None:
    for header in ("-- materialized: table", "-- materialized: incremental(month, month)"):
        path = tmp_path / "m.sql"
        path.write_text(f"-- grain: x\n{header}\n-- sliced_by: t\nselect 1 as month\n")
        with pytest.raises(ValueError, match="sliced_by"):
            load_model(path)
    assert load_model(sql_dir() / "marts" / "fct_attribution.sql").sliced_by == "int_order_lines"


def _rows_only_in(con: duckdb.DuckDBPyConnection, a: str, b: str) -> int:
    return con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()[0]


@pytest.fixture
def built(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(report_warehouse(tmp_path_factory), path)
    return path


@pytest.mark.parametrize(
    ("path", "driving", "column", "slice_rows"),
    [
        ("marts/fct_attribution", "int_order_lines", "order_date", None),
        ("marts/fct_conversion_lift", "stg_visits", "visit_date", None),
        ("intermediate/int_interaction_sessions", "stg_interactions", "event_date", 4_000_000),
        ("intermediate/assistant_sessions", "int_interaction_sessions", "session_date", 4_000_000),
        (
            "intermediate/int_session_products",
            "int_interaction_sessions",
            "session_date",
            4_000_000,
        ),
    ],
)
def test_sliced_builds_equal_one_build(
    built: Path,
    settings: Settings,
    path: str,
    driving: str,
    column: str,
    slice_rows: int | None,
) -> None:
    declared = load_model(sql_dir() / f"{path}.sql")
    name = declared.name
    assert (declared.sliced_by, declared.slice_column) == (driving, column)
    assert declared.slice_rows == slice_rows
    con = duckdb.connect(str(built))
    first, last, rows = con.execute(
        f"SELECT min({column}), max({column}), count(*) FROM {driving}"
    ).fetchone()
    inserts: list[dict] = []
    execute = duckdb.DuckDBPyConnection.execute

    class Counting:  # count the slices: every INSERT into the model is one
        def __getattr__(self, attribute: str):
            return getattr(con, attribute)

        def execute(self, sql: str, params=None):
            if sql.startswith(f'INSERT INTO "{name}"'):
                inserts.append(params)
            return execute(con, sql, params) if params is not None else execute(con, sql)

    model = replace(declared, slice_rows=rows)  # one piece

    def build(start: date, *, rebuild: bool = False) -> int | None:
        inserts.clear()
        return run_model(
            Counting(), model, model_parameters(settings, start, last), rebuild=rebuild
        )

    build(first, rebuild=True)
    assert len(inserts) == 1
    con.execute(f"CREATE TABLE whole AS FROM {name}")
    assert con.execute("SELECT count(*) FROM whole").fetchone()[0] > 1000
    model = replace(declared, slice_rows=rows // 12)
    # full build in slices
    written = build(first, rebuild=True)
    assert len(inserts) >= 12
    assert written == con.execute("SELECT count(*) FROM whole").fetchone()[0]
    assert _rows_only_in(con, "whole", name) == 0
    assert _rows_only_in(con, name, "whole") == 0
    # an incremental window in slices replaces exactly its days
    build(first + (last - first) / 2)
    assert len(inserts) >= 5
    assert _rows_only_in(con, "whole", name) == 0
    assert _rows_only_in(con, name, "whole") == 0
    con.close()


def test_atomic_without_keep_rolls_back_and_joins_inner_blocks(tmp_path: Path) -> None:
    """A measured build (benchmarks) runs sliced models inside atomic(keep=False): the inner
    blocks join it and nothing is written."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE t (x INTEGER)")
    with wh.atomic(con, keep=False):
        with wh.atomic(con):  # joins: no nested BEGIN
            con.execute("INSERT INTO t VALUES (1)")
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with wh.atomic(con):
        con.execute("INSERT INTO t VALUES (2)")
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_slice_rows_default_and_declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``, <n> rows`` sets a model's own slice size; without it ``SLICE_ROWS`` applies."""
    path = tmp_path / "m.sql"
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT DATE '2026-03-01' + (i % 4)::INTEGER AS d FROM range(40) r(i)"
    )
    header = "-- grain: x\n-- materialized: incremental(d)\n-- sliced_by: t{}\nselect d from t\n"
    path.write_text(header.format(""))
    default = load_model(path)
    assert default.slice_rows is None
    monkeypatch.setattr(wh, "SLICE_ROWS", 20)  # 10 rows a day: two days a slice
    assert wh._slices_of(con, default, day(0), day(3)) == [(day(0), day(1)), (day(2), day(3))]
    path.write_text(header.format(", 10 rows"))
    declared = load_model(path)
    assert declared.slice_rows == 10
    assert len(wh._slices_of(con, declared, day(0), day(3))) == 4


def test_sessions_crossing_midnight_at_a_slice_boundary_stay_whole(settings: Settings) -> None:
    """Hand-made events: a rule session and a given session cross midnight between two slices
    (one day a slice). Each slice reads a day past its end, so both stay one session, dated by
    their first event, as in one build."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE stg_interactions (event_id VARCHAR, user_id VARCHAR, event_at TIMESTAMP, "
        "event_date DATE, given_session_id VARCHAR, marketplace VARCHAR, channel VARCHAR, "
        "event_type VARCHAR, product_ids VARCHAR[], model_version VARCHAR)"
    )
    events = [  # (event_id, user, at, given session)
        ("e1", "u1", "2026-03-01 23:50", None),
        ("e2", "u1", "2026-03-02 00:10", None),  # 20 minutes later: the same rule session
        ("e3", "u2", "2026-03-01 23:55", "g1"),
        ("e4", "u2", "2026-03-02 00:05", "g1"),
        ("e5", "u1", "2026-03-02 09:00", None),  # a new session on day 2
        ("e6", "u3", "2026-03-03 12:00", None),
    ]
    con.executemany(
        "INSERT INTO stg_interactions VALUES (?, ?, ?, cast(? AS TIMESTAMP)::DATE, ?, 'US', "
        "'web', 'query', NULL, 'v1')",
        [(e, u, at, at, g) for e, u, at, g in events],
    )
    declared = load_model(sql_dir() / "intermediate" / "int_interaction_sessions.sql")
    found = {}
    for slice_rows in (1, 100):  # every day a slice; one piece
        run_model(
            con,
            replace(declared, slice_rows=slice_rows),
            model_parameters(settings, date(2026, 3, 1), date(2026, 3, 3)),
            rebuild=True,
        )
        found[slice_rows] = con.execute(
            "SELECT event_id, session_id, session_date, event_seq FROM int_interaction_sessions "
            "ORDER BY event_id"
        ).fetchall()
    d1, d2, d3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
    assert (
        found[1]
        == found[100]
        == [
            ("e1", "s-e1", d1, 1),
            ("e2", "s-e1", d1, 2),
            ("e3", "g1", d1, 1),
            ("e4", "g1", d1, 2),
            ("e5", "s-e5", d2, 1),
            ("e6", "s-e6", d3, 1),
        ]
    )
