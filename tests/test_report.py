"""The offline HTML report: every chart present, no network references, headline from the data."""

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from tables import build, empty_warehouse, insert

from attribution.config import Settings
from attribution.journeys import write_attribution_by_touch_type
from attribution.report import write_report


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    con = empty_warehouse(str(path))
    start = datetime(2026, 3, 1, 9)
    visits, events, orders = [], [], []
    for day in range(20):
        for user in range(6):
            ts = start + timedelta(days=day, minutes=user)
            visits.append({"user_id": f"u{user}", "ts": ts, "marketplace": "US", "channel": "web"})
            if user < 3:
                events.append(
                    {
                        "event_id": f"e{day}-{user}",
                        "user_id": f"u{user}",
                        "ts": ts + timedelta(minutes=1),
                        "marketplace": "US",
                        "channel": "app",
                        "event_type": "help_me_decide",
                        "model_version": "v1" if day < 10 else "v2",
                    }
                )
            if (day + user) % 4 == 0:
                orders.append(
                    {
                        "order_id": f"o{day}-{user}",
                        "line_no": 1,
                        "user_id": f"u{user}",
                        "ts": ts + timedelta(hours=5),
                        "marketplace": "US",
                        "product_id": "p1",
                        "quantity": 1,
                        "amount": Decimal("25.50"),
                        "currency": "USD",
                    }
                )
    insert(con, "visits", visits)
    insert(con, "interactions", events)
    insert(con, "orders", orders)
    insert(con, "fx_rates", [{"date": date(2026, 3, 1), "currency": "USD", "rate_to_usd": 1}])
    build(con, date(2026, 3, 1), date(2026, 3, 20))
    write_attribution_by_touch_type(con, Settings(), date(2026, 3, 1), date(2026, 3, 20))
    revenue = con.execute("SELECT sum(revenue_usd) FROM kpi_daily").fetchall()[0][0]
    con.close()
    return path, revenue


def test_report_is_offline_has_every_chart_and_headline_numbers(warehouse, tmp_path):
    path, revenue = warehouse
    page = write_report(path, tmp_path / "out", Settings())
    text = page.read_text(encoding="utf-8")
    charts = re.findall(r'data-chart="([a-z_]+)"', text)
    assert charts == [
        "trends",
        "revenue",
        "lift_by_window",
        "lift_by_method",
        "attributed_by_model",
        "model_versions",
        "marketplaces",
        "lag_distribution",
        "data_driven",
    ]
    assert text.count("Plotly.newPlot") == len(charts)
    # self-contained: no external scripts, styles or images
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', text)
    assert f"${float(revenue):,.0f}" in text
    assert "more likely to buy within 7 days" in text
    assert "data_driven (Markov)" in text and "Shapley" in text
    for name in ("kpi_daily", "fct_conversion_lift"):
        assert (tmp_path / "out" / f"{name}.csv").stat().st_size > 0
        assert (tmp_path / "out" / f"{name}.parquet").stat().st_size > 0


def test_report_refuses_an_unbuilt_warehouse(tmp_path):
    path = tmp_path / "empty.duckdb"
    empty_warehouse(str(path)).close()
    with pytest.raises(FileNotFoundError, match="attribution run"):
        write_report(path, tmp_path / "out", Settings())
