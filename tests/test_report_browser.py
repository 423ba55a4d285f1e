"""The report in a real headless Chromium: no network request, every chart drawn, no errors."""

from __future__ import annotations

import time

import pytest
from report_warehouse import chromium_or_skip, report_warehouse

from attribution.charts import CHARTS
from attribution.config import Settings
from attribution.report import write_report

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    """Open the report of a low privacy floor (so that charts have values) in Chromium."""
    chromium = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    warehouse = report_warehouse(tmp_path_factory)
    out = tmp_path_factory.mktemp("browser") / "report"
    result = write_report(warehouse, out, Settings(privacy_min_users=10, report_png="never"))
    canary = out.parent / "canary.html"
    canary.write_text('<img src="https://example.invalid/pixel.png">', encoding="utf-8")
    seen = {"requests": [], "console": [], "page_errors": [], "charts": {}}
    started = time.perf_counter()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def route(request_route):
                url = request_route.request.url
                if url.startswith("file://"):
                    request_route.continue_()
                else:
                    seen["requests"].append(url)
                    request_route.abort()

            page.route("**/*", route)
            page.on(
                "console",
                lambda m: seen["console"].append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
            page.goto(result.index_html.as_uri(), wait_until="load")
            page.wait_for_function(
                "ids => ids.every(id => document.querySelector('#chart-' + id + ' .main-svg'))",
                arg=list(CHARTS),
                timeout=30_000,
            )
            for chart in CHARTS:
                seen["charts"][chart] = page.locator(f"#chart-{chart} .main-svg").count()
            seen["seconds"] = time.perf_counter() - started
            # the harness itself: a page that does reach out is caught
            report_seen = {key: list(seen[key]) for key in ("requests", "console")}
            page.goto(canary.as_uri(), wait_until="load")
            seen["canary"] = seen["requests"][len(report_seen["requests"]) :]
            seen.update(report_seen)
        finally:
            browser.close()
    return seen


def test_no_network_request_is_attempted(opened):
    assert opened["requests"] == []
    assert opened["canary"] == ["https://example.invalid/pixel.png"]


def test_every_chart_is_rendered(opened, capsys):
    assert {chart: n > 0 for chart, n in opened["charts"].items()} == dict.fromkeys(CHARTS, True)
    with capsys.disabled():
        print(f"\nbrowser: {len(CHARTS)} charts rendered in {opened['seconds']:.1f} s")


def test_no_console_or_page_errors(opened):
    assert opened["console"] == []
    assert opened["page_errors"] == []
