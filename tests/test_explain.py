"""attribution explain: every line, window and scope of an order with the credits and reasons."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from tables import build, empty_warehouse, insert
from typer.testing import CliRunner

from attribution.cli import app
from attribution.explain import explain_order, explanation_text

ORDER_AT = datetime(2026, 3, 10, 12)


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    con = empty_warehouse(str(path))
    insert(
        con,
        "interactions",
        [
            {
                "event_id": f"e{days}",
                "user_id": "u1",
                "ts": ORDER_AT - timedelta(days=days),
                "marketplace": "US",
                "channel": "web",
                "event_type": "comparison",
                "product_ids": products,
            }
            for days, products in ((3, ["p1", "p7"]), (10, ["p2"]))
        ],
    )
    insert(
        con,
        "orders",
        [
            {
                "order_id": "o1",
                "line_no": n,
                "user_id": "u1",
                "ts": ORDER_AT,
                "marketplace": "US",
                "product_id": product,
                "quantity": 1,
                "amount": Decimal("10"),
                "currency": "USD",
            }
            for n, product in ((1, "p1"), (2, "p3"))
        ],
    )
    insert(con, "fx_rates", [{"date": date(2026, 1, 1), "currency": "USD", "rate_to_usd": 1}])
    build(con, date(2026, 1, 1), date(2026, 3, 31))
    con.close()
    return path


def test_explain_lists_sessions_credits_and_reasons(warehouse):
    from attribution.warehouse import connect

    con = connect(warehouse, read_only=True)
    result = explain_order(con, "o1")
    con.close()
    assert result.lines["line_no"].to_list() == [1, 2]
    line1_user_14 = result.touches.filter(
        (result.touches["line_no"] == 1)
        & (result.touches["window_days"] == 14)
        & (result.touches["scope"] == "user")
    )
    assert line1_user_14["session_id"].to_list() == ["s-e10", "s-e3"]
    assert line1_user_14["linear"].to_list() == [0.5, 0.5]
    assert line1_user_14["session_products"].to_list() == ["p2", "p1|p7"]
    # product scope: only the session that surfaced p1; line 2 (p3) has no product-scope touch
    product = result.touches.filter(result.touches["scope"] == "product")
    assert set(product["line_no"]) == {1} and set(product["session_id"]) == {"s-e3"}
    reasons = explanation_text(result)
    assert any("line 1, 7-day window, scope product" in r for r in reasons)


def test_explain_cli_and_unknown_order(warehouse):
    runner = CliRunner()
    ok = runner.invoke(app, ["explain", "--order", "o1", "--warehouse", str(warehouse)])
    assert ok.exit_code == 0, ok.output
    assert "s-e3" in ok.output and "0.500" in ok.output and "p1|p7" in ok.output
    missing = runner.invoke(app, ["explain", "--order", "nope", "--warehouse", str(warehouse)])
    assert missing.exit_code == 2
    assert "not in the warehouse" in missing.output
