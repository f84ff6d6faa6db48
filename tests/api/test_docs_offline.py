"""/docs and /redoc render in headless Chromium with every request off this server refused (offline)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.api.fakes import FakeLoader
from tests.browser import BROWSER_MARKS as browser_marks
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = browser_marks


def test_docs_assets_come_from_this_server(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/docs-assets/swagger-ui-bundle.js" in page.text
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and len(js.content) > 1e5
    assert client.get("/docs-assets/..%2Fcore.py").status_code == 404
    assert "/docs-assets/redoc.standalone.js" in client.get("/redoc").text


@pytest.mark.parametrize(("path", "expected"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
def test_docs_render_without_network(api_settings, api_workspace, pairs, live_server, path, expected) -> None:
    from playwright.sync_api import expect, sync_playwright

    from steward.api.app import create_app

    base = live_server(create_app(api_settings, workspace=api_workspace, loader=FakeLoader(), poll_seconds=0.2))
    ours = urlparse(base).netloc
    refused: list[str] = []

    def offline(route) -> None:
        if urlparse(route.request.url).netloc == ours:
            route.continue_()
        else:
            refused.append((route.request.resource_type, route.request.url))
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            page.goto(base + path)
            expect(page.locator(expected).first).to_contain_text("steward search service", timeout=20_000)
            expect(page.get_by_text("/search").first).to_be_visible()
        finally:
            browser.close()
    # Nothing the page needs was asked of another host (ReDoc's footer links its logo image on a CDN;
    # without it the page is whole).
    assert [url for kind, url in refused if kind != "image"] == []
