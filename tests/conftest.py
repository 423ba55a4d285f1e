"""Shared fixtures: tiny hand-written landing folders, a warehouse connection, Prefect harness."""

from __future__ import annotations

import atexit
import csv
import gzip
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

# Before anything imports prefect or great_expectations.
_PREFECT_HOME = tempfile.mkdtemp(prefix="attribution-prefect-home-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["GX_ANALYTICS_ENABLED"] = "false"

from attribution.config import Settings  # noqa: E402
from attribution.ingest import IngestResult, ensure_raw_schema, ingest_landing  # noqa: E402

RUN_TIME = datetime(2024, 3, 1, 12, 0, 0)


def interaction(**overrides: Any) -> dict[str, Any]:
    row = {
        "event_id": "e1",
        "user_id": "u1",
        "ts": "2024-02-01T10:00:00Z",
        "session_id": "s1",
        "marketplace": "US",
        "channel": "app",
        "event_type": "query",
        "product_ids": "p1|p2",
        "model_version": "m1",
    }
    row.update(overrides)
    return row


def order(**overrides: Any) -> dict[str, Any]:
    row = {
        "order_id": "o1",
        "line_no": "1",
        "user_id": "u1",
        "ts": "2024-02-01T11:00:00Z",
        "marketplace": "US",
        "product_id": "p1",
        "quantity": "1",
        "amount": "19.99",
        "currency": "USD",
        "status": "placed",
        "updated_at": "",
    }
    row.update(overrides)
    return row


def visit(**overrides: Any) -> dict[str, Any]:
    row = {"user_id": "u1", "ts": "2024-02-01T09:00:00Z", "marketplace": "US", "channel": "web"}
    row.update(overrides)
    return row


def assignment(**overrides: Any) -> dict[str, Any]:
    row = {
        "user_id": "u1",
        "experiment_id": "x1",
        "arm": "treatment",
        "assigned_at": "2024-01-15T00:00:00Z",
    }
    row.update(overrides)
    return row


def fx_rate(**overrides: Any) -> dict[str, Any]:
    row = {"date": "2024-02-01", "currency": "EUR", "rate_to_usd": "1.08"}
    row.update(overrides)
    return row


def product(**overrides: Any) -> dict[str, Any]:
    row = {"product_id": "p1", "brand": "Acme", "category": "tools"}
    row.update(overrides)
    return row


ROW_FACTORIES: dict[str, Callable[..., dict[str, Any]]] = {
    "interactions": interaction,
    "orders": order,
    "visits": visit,
    "assignments": assignment,
    "fx_rates": fx_rate,
    "products": product,
}


class Landing:
    """Writes tiny landing files: ``<root>/<source>/[dt=D/]<name>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, source: str, name: str, dt: str | None = None) -> Path:
        folder = self.root / source / f"dt={dt}" if dt else self.root / source
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def csv(
        self,
        source: str,
        name: str,
        rows: list[dict[str, Any]],
        *,
        dt: str | None = None,
        gz: bool = False,
    ) -> Path:
        buf = io.StringIO()
        fieldnames = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        data = buf.getvalue().encode()
        return self.bytes(source, name + (".gz" if gz else ""), data, dt=dt, gz=gz)

    def jsonl(
        self,
        source: str,
        name: str,
        rows: list[Any],
        *,
        dt: str | None = None,
        gz: bool = False,
    ) -> Path:
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
        return self.bytes(source, name + (".gz" if gz else ""), data, dt=dt, gz=gz)

    def parquet(self, source: str, name: str, select_sql: str, *, dt: str | None = None) -> Path:
        path = self.path(source, name, dt)
        duckdb.connect().execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
        return path

    def bytes(
        self, source: str, name: str, data: bytes, *, dt: str | None = None, gz: bool = False
    ) -> Path:
        path = self.path(source, name, dt)
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "spark: runs on a local[2] Spark session (needs java; CI installs a JRE)"
    )


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def landing(tmp_path: Path) -> Landing:
    return Landing(tmp_path / "landing")


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(warehouse))
    ensure_raw_schema(connection)
    yield connection
    connection.close()


@pytest.fixture
def ingest(
    con: duckdb.DuckDBPyConnection, landing: Landing, settings: Settings
) -> Callable[..., IngestResult]:
    """Run ingest_landing on the test landing folder with a fixed run time."""

    def run(run_id: str = "run1", run_date: date | None = None, **kwargs: Any) -> IngestResult:
        return ingest_landing(
            con,
            landing.root,
            kwargs.pop("settings", settings),
            run_id=run_id,
            run_date=run_date,
            run_time=kwargs.pop("run_time", RUN_TIME),
        )

    return run


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API for the flow tests only (slow start-up, once per session)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
