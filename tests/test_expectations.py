"""Great Expectations over the batches of one run (attribution.expectations)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import Landing, assignment, interaction, order

from attribution.config import Settings
from attribution.contract import SOURCES
from attribution.expectations import (
    ExpectationsFailed,
    _batch_sql,
    default_data_docs_dir,
    validate_loaded_batches,
)


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    return tmp_path / "data_docs"


def test_clean_batches_pass_and_write_data_docs(
    landing: Landing, ingest, con, settings: Settings, docs_dir: Path
) -> None:
    landing.csv("interactions", "a.csv", [interaction(event_id=f"e{i}") for i in range(5)])
    landing.csv("orders", "o.csv", [order(), order(line_no="2", status="cancelled")])
    landing.csv(
        "assignments",
        "x.csv",
        [assignment(), assignment(user_id="u2", arm="holdout")],
    )
    ingest(run_id="run1")

    result = validate_loaded_batches(con, "run1", settings, docs_dir)

    assert result.success
    assert [b.source for b in result.batches] == ["interactions", "orders", "assignments"]
    assert all(not b.sampled for b in result.batches)
    assert result.data_docs_index == docs_dir.resolve() / "index.html"
    assert result.data_docs_index.is_file()
    assert list((docs_dir / "validations").rglob("*.html"))
    assert "orders: 2 rows" in result.render()
    assert result.summary_line().startswith("passed: 3 batches, ")
    json.dumps(result.to_dict())


def test_failed_critical_expectation_raises_a_readable_summary(
    landing: Landing, ingest, con, settings: Settings, docs_dir: Path
) -> None:
    landing.csv("orders", "o.csv", [order()])
    ingest(run_id="run1")
    # Past the row rules: a row written straight into the raw table.
    con.execute(
        """INSERT INTO raw_orders
        SELECT * REPLACE (2 AS line_no, -5 AS amount, 'lost' AS status) FROM raw_orders"""
    )

    with pytest.raises(ExpectationsFailed) as info:
        validate_loaded_batches(con, "run1", settings, docs_dir)

    message = str(info.value)
    assert "critical expectation(s) failed in run run1" in message
    assert "[critical] orders: expect_column_values_to_be_between(amount): 1 unexpected" in message
    assert "-5.0" in message
    assert "expect_column_values_to_be_in_set(status): 1 unexpected (e.g. lost)" in message
    assert (docs_dir / "index.html").is_file()  # Data Docs are written before raising
    failed = {o.expectation for o in info.value.result.critical_failures}
    assert failed == {
        "expect_column_values_to_be_between(amount)",
        "expect_column_values_to_be_in_set(status)",
    }


def test_duplicate_key_in_batch_is_critical(
    landing: Landing, ingest, con, settings: Settings, docs_dir: Path
) -> None:
    landing.csv("interactions", "a.csv", [interaction()])
    ingest(run_id="run1")
    con.execute("INSERT INTO raw_interactions SELECT * FROM raw_interactions")
    with pytest.raises(ExpectationsFailed, match=r"expect_column_values_to_be_unique\(event_id\)"):
        validate_loaded_batches(con, "run1", settings, docs_dir)


def test_warnings_are_reported_but_do_not_raise(
    landing: Landing, ingest, con, settings: Settings, docs_dir: Path
) -> None:
    # A UK order paid in USD is valid but unusual.
    landing.csv("orders", "o.csv", [order(marketplace="UK", currency="USD")])
    ingest(run_id="run1")
    result = validate_loaded_batches(con, "run1", settings, docs_dir)
    assert result.success
    assert [w.expectation for w in result.warnings] == [
        "expect_column_pair_values_to_be_in_set(marketplace, currency)"
    ]
    assert "[warning] orders" in result.render()
    assert ", 1 warning (Data Docs: " in result.summary_line()


def test_large_batches_are_sampled_deterministically(
    landing: Landing, ingest, con, docs_dir: Path
) -> None:
    landing.csv("interactions", "a.csv", [interaction(event_id=f"e{i}") for i in range(20)])
    ingest(run_id="run1")
    small = Settings(expectations_max_rows=7)
    first = validate_loaded_batches(con, "run1", small, docs_dir)
    (batch,) = first.batches
    assert (batch.rows_in_batch, batch.rows_validated, batch.sampled) == (20, 7, True)
    assert "sample of 7" in first.render()
    sample_sql = _batch_sql(SOURCES["interactions"], 7)
    picks = [
        sorted(r[0] for r in con.execute(sample_sql, {"run_ids": ["run1"]}).fetchall())
        for _ in range(2)
    ]
    assert picks[0] == picks[1] and len(picks[0]) == 7


def test_only_this_runs_rows_are_validated(
    landing: Landing, ingest, con, settings: Settings, docs_dir: Path
) -> None:
    landing.csv("interactions", "a.csv", [interaction()])
    ingest(run_id="run1")
    con.execute("INSERT INTO raw_interactions SELECT * FROM raw_interactions")  # run1 now bad
    landing.csv("interactions", "b.csv", [interaction(event_id="e2")])
    ingest(run_id="run2")
    result = validate_loaded_batches(con, "run2", settings, docs_dir)
    assert result.success
    assert result.batches[0].rows_in_batch == 1


def test_run_without_rows_skips_great_expectations(con, settings: Settings, docs_dir: Path) -> None:
    already = "great_expectations" in sys.modules
    result = validate_loaded_batches(con, "nothing", settings, docs_dir)
    assert result.success and result.batches == []
    assert result.data_docs_index is None
    assert ("great_expectations" in sys.modules) == already
    assert "nothing to validate" in result.render()
    assert result.summary_line() == "skipped: no rows loaded in this run"


def test_default_data_docs_dir(tmp_path: Path) -> None:
    assert default_data_docs_dir(Settings(), tmp_path / "w.duckdb") == tmp_path / "data_docs"
    custom = Settings(data_docs_dir=tmp_path / "docs")
    assert default_data_docs_dir(custom, tmp_path / "w.duckdb") == tmp_path / "docs"
