"""The analyst API: finding the warehouse, opening it read-only, and every reader on real data."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from notebook_warehouse import notebook_warehouse

from attribution.explain import OrderExplanation
from attribution.marts import WAREHOUSE_ENV, Marts, open_marts, resolve_warehouse
from attribution.version_compare import VersionComparison

# --- resolve_warehouse -------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Three candidate warehouse files (empty: resolve_warehouse only looks for the file)."""
    monkeypatch.delenv(WAREHOUSE_ENV, raising=False)
    project = tmp_path / "project"
    (project / "notebooks" / "deeper").mkdir(parents=True)
    found = {
        "explicit": tmp_path / "explicit.duckdb",
        "env": tmp_path / "env.duckdb",
        "project": project / "warehouse.duckdb",
    }
    for path in found.values():
        path.touch()
    return found


def test_an_explicit_path_wins(files, monkeypatch):
    monkeypatch.setenv(WAREHOUSE_ENV, str(files["env"]))
    monkeypatch.chdir(files["project"].parent)
    assert resolve_warehouse(files["explicit"]) == files["explicit"].resolve()
    assert resolve_warehouse(str(files["explicit"])) == files["explicit"].resolve()


def test_the_environment_comes_next(files, monkeypatch):
    monkeypatch.setenv(WAREHOUSE_ENV, str(files["env"]))
    monkeypatch.chdir(files["project"].parent)
    assert resolve_warehouse() == files["env"].resolve()


def test_then_the_working_directory_or_a_parent(files, monkeypatch):
    project = files["project"].parent
    monkeypatch.chdir(project)
    assert resolve_warehouse() == files["project"].resolve()
    monkeypatch.chdir(project / "notebooks" / "deeper")
    assert resolve_warehouse() == files["project"].resolve()
    # the nearest one wins
    nearer = project / "notebooks" / "warehouse.duckdb"
    nearer.touch()
    assert resolve_warehouse() == nearer.resolve()


def test_an_empty_environment_variable_counts_as_unset(files, monkeypatch):
    monkeypatch.setenv(WAREHOUSE_ENV, "")
    monkeypatch.chdir(files["project"].parent / "notebooks")
    assert resolve_warehouse() == files["project"].resolve()


def test_a_relative_or_home_path_is_made_absolute(files, monkeypatch):
    monkeypatch.chdir(files["explicit"].parent)
    assert resolve_warehouse("explicit.duckdb") == files["explicit"].resolve()
    monkeypatch.setenv("HOME", str(files["explicit"].parent))
    assert resolve_warehouse("~/explicit.duckdb") == files["explicit"].resolve()


def test_a_missing_explicit_or_environment_file_says_what_to_do(files, monkeypatch, tmp_path):
    monkeypatch.chdir(files["project"].parent)  # a warehouse here must not be used instead
    with pytest.raises(
        FileNotFoundError, match=r"no warehouse at .*nope\.duckdb.*`attribution demo`"
    ):
        resolve_warehouse(tmp_path / "nope.duckdb")
    monkeypatch.setenv(WAREHOUSE_ENV, str(tmp_path / "gone.duckdb"))
    with pytest.raises(FileNotFoundError, match=r"gone\.duckdb.*`attribution demo`"):
        resolve_warehouse()


def test_no_warehouse_anywhere_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(WAREHOUSE_ENV, raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    if any((folder / "warehouse.duckdb").is_file() for folder in empty.parents):
        pytest.skip("a parent of the temporary folder holds a warehouse.duckdb")
    monkeypatch.chdir(empty)
    with pytest.raises(FileNotFoundError, match=r"run `attribution demo` first, set "):
        resolve_warehouse()


# --- open_marts --------------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS a")
    return path


def test_open_marts_is_read_only(small):
    marts = open_marts(small)
    try:
        assert marts.path == small.resolve()
        assert repr(marts) == f"Marts({str(small.resolve())!r})"
        assert marts.sql("SELECT a FROM t").rows() == [(1,)]
        with pytest.raises(duckdb.Error, match="read-only"):
            marts.con.execute("INSERT INTO t VALUES (2)")
        with pytest.raises(duckdb.Error, match="read-only"):
            marts.sql("CREATE TABLE u (b INTEGER)")
    finally:
        marts.close()


def test_the_with_block_closes_the_marts(small):
    with open_marts(small) as marts:
        assert isinstance(marts, Marts)
    with pytest.raises(duckdb.Error):
        marts.con.execute("SELECT 1")
    # the file is free again for a writer (the nightly run)
    with duckdb.connect(str(small)) as writer:
        writer.execute("INSERT INTO t VALUES (2)")


def test_marts_of_an_unbuilt_warehouse_say_to_run_the_pipeline(small):
    with open_marts(small) as marts:
        assert marts.tables().is_empty()
        with pytest.raises(LookupError, match="attribution run"):
            marts.credit_by_position()
        with pytest.raises(LookupError, match="attribution run"):
            marts.kpi()


# --- the package stays light -------------------------------------------------------------------


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_importing_the_package_loads_neither_duckdb_nor_polars():
    code = (
        "import attribution, sys; "
        "print('duckdb' in sys.modules, 'polars' in sys.modules, 'attribution.marts' in sys.modules)"
    )
    assert run_python(code) == "False False False"


def test_open_marts_is_loaded_on_first_use():
    code = (
        "import attribution, sys; f = attribution.open_marts; "
        "from attribution.marts import open_marts, Marts, resolve_warehouse; "
        "print(f is open_marts, attribution.Marts is Marts, "
        "attribution.resolve_warehouse is resolve_warehouse, 'duckdb' in sys.modules)"
    )
    assert run_python(code) == "True True True True"


def test_an_unknown_attribute_is_still_an_error():
    import attribution

    with pytest.raises(AttributeError, match="no_such_thing"):
        attribution.no_such_thing  # noqa: B018


# --- every reader on the generated warehouse ---------------------------------------------------


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return notebook_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def marts(warehouse: Path) -> Iterator[Marts]:
    with open_marts(warehouse) as opened:
        yield opened


def test_tables_list_every_model_with_its_grain(marts):
    tables = marts.tables()
    assert tables.columns == ["table", "layer", "rows", "grain"]
    row = tables.row(by_predicate=pl.col("table") == "fct_attribution", named=True)
    assert row["layer"] == "marts" and row["rows"] > 0
    first_line = Path("sql/marts/fct_attribution.sql").read_text().splitlines()[0]
    assert row["grain"] in first_line
    assert row["grain"].startswith("grain: one row per (order line x window x scope")
    assert {"staging", "intermediate", "marts", "kpi"} <= set(tables["layer"])


def test_sql_binds_named_parameters(marts):
    seven = marts.sql("SELECT count(*) AS n FROM fct_attribution WHERE window_days = $w", w=7)
    everything = marts.sql("SELECT count(*) AS n FROM fct_attribution")
    assert 0 < seven["n"].item() < everything["n"].item()


def test_data_range_is_the_generated_period(marts):
    assert marts.data_range() == (date(2026, 3, 2), date(2026, 4, 15))


# method name -> a call of it; every public method of Marts must be listed here
CALLS: dict[str, Callable[[Marts], Any]] = {
    "tables": lambda m: m.tables(),
    "data_range": lambda m: list(m.data_range()),
    "sql": lambda m: m.sql("SELECT 1 AS one"),
    "credit_by_position": lambda m: m.credit_by_position(),
    "credit_moved": lambda m: m.credit_moved("last_touch", "linear"),
    "window_sensitivity": lambda m: m.window_sensitivity(),
    "lag_distribution": lambda m: m.lag_distribution(),
    "data_driven": lambda m: m.data_driven(7),
    "orders_to_explain": lambda m: m.orders_to_explain(),
    "explain": lambda m: m.explain(m.orders_to_explain()[0]).touches,
    "explain_text": lambda m: m.explain_text(m.orders_to_explain()[0]),
    "lift": lambda m: m.lift(),
    "lift_by_window": lambda m: m.lift_by_window(),
    "segment_lift": lambda m: m.segment_lift(),
    "balance": lambda m: m.balance(),
    "balance_verdict": lambda m: [m.balance_verdict()],
    "overlap": lambda m: m.overlap(),
    "propensity_scores": lambda m: m.propensity_scores(),
    "lift_in_plain_words": lambda m: m.lift_in_plain_words(),
    "lift_arithmetic": lambda m: m.lift_arithmetic(),
    "impact": lambda m: m.impact(),
    "kpi": lambda m: m.kpi(),
    "model_version_mix": lambda m: m.model_version_mix(),
    "compare_model_versions": lambda m: m.compare_model_versions(replicates=50).by_version,
}


def test_every_public_method_is_called_below():
    public = {
        name
        for name, member in inspect.getmembers(Marts, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public - {"close"} == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_reader_returns_something(marts, name):
    result = CALLS[name](marts)
    assert len(result) > 0


def test_explain_returns_the_orders_lines(marts):
    order_id = marts.orders_to_explain()[0]
    explanation = marts.explain(order_id)
    assert isinstance(explanation, OrderExplanation)
    assert explanation.order_id == order_id
    assert explanation.lines.height > 0
    assert all(isinstance(s, str) and s for s in marts.explain_text(order_id))


def test_propensity_scores_leave_out_holdout_users(marts):
    scores = marts.propensity_scores()
    assert not scores["is_holdout"].any()
    assert scores["propensity"].is_between(0, 1, closed="none").all()
    engaged = scores.filter(pl.col("is_engaged"))
    assert set(engaged["att_weight"]) <= {0.0, 1.0}
    assert (scores["att_weight"] >= 0).all()


def test_credit_moved_between_models_sums_to_zero(marts):
    moved = marts.credit_moved("first_touch", "position_based")
    totals = moved.group_by("window_days").agg(pl.col("moved_usd").sum())
    assert totals.height == 4
    # each (window, position) sum is rounded to 4 decimals: 8 roundings of at most 0.00005
    assert totals["moved_usd"].abs().max() <= 8 * 0.00005 + 1e-9


def test_kpi_grains(marts):
    assert marts.kpi("daily").height > marts.kpi("monthly").height > 0
    with pytest.raises(ValueError, match="daily"):
        marts.kpi("weekly")


def test_compare_model_versions_passes_its_options(marts):
    comparison = marts.compare_model_versions(7, replicates=30, seed=5)
    assert isinstance(comparison, VersionComparison)
    again = marts.compare_model_versions(7, replicates=30, seed=5)
    assert comparison.contrasts.equals(again.contrasts)
