"""In headless Chromium: a label crafted to break out of Evidently's report runs nothing, and the
offline /docs and /redoc still render under the Content-Security-Policy.

Same set-up as tests/api/test_dashboard_browser.py (Playwright + Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tests.api.fakes import COLLECTION, FakeLoader
from tests.browser import BROWSER_MARKS

pytestmark = BROWSER_MARKS  # skips without playwright or /usr/bin/chromium

XSS = "</script><script>alert(1)</script>"


def _evidently_report(api_workspace, tmp_path) -> int:
    from monitoring.evidently_report import write_html_report

    rng = np.random.default_rng(0)
    labels = pa.table({"label": [XSS if i % 2 else "plain" for i in range(40)]})
    sha = write_html_report(api_workspace, tmp_path / "drift.html", reference=rng.normal(size=(40, 4)),
                            current=rng.normal(size=(40, 4)) + 0.5, reference_table=labels,
                            current_table=labels, max_rows=40, max_dims=4)
    return api_workspace.registry.monitoring.record_drift_report(
        COLLECTION, batch_seq=None, model_version=1, drifted=True, alpha=0.05, summary={},
        report_artifact=sha).id


def _raw_report(api_workspace) -> int:
    # User-derived HTML that got past every sanitiser: the sandbox alone must contain it.
    html = (f"<html><body><p id=p>{XSS}</p><script>alert(2);"
            "try { localStorage.setItem('x', '1'); document.title = 'same origin'; }"
            " catch (e) { document.title = 'sandboxed'; }</script></body></html>").encode()
    sha = api_workspace.artifacts.put_bytes(html)
    return api_workspace.registry.monitoring.record_drift_report(
        COLLECTION, batch_seq=None, model_version=1, drifted=False, alpha=0.05, summary={},
        report_artifact=sha).id


def test_labels_in_drift_reports_run_no_script(api_settings, api_workspace, pairs, live_server, browser,
                                                tmp_path):
    from steward.api.app import create_app

    evidently_id = _evidently_report(api_workspace, tmp_path)
    raw_id = _raw_report(api_workspace)
    base = live_server(create_app(api_settings, workspace=api_workspace, loader=FakeLoader(), poll_seconds=0.2))

    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for rid in (evidently_id, raw_id):
        page.goto(f"{base}/reports/drift/{rid}")
        page.wait_for_load_state("load")
        page.wait_for_timeout(500)
    assert dialogs == [], f"{len(dialogs)} script dialogs opened"
    assert page.title() == "sandboxed"  # an opaque origin: the dashboard's storage is out of reach
    page.goto(base + "/")  # the dashboard itself escapes labels (and stays dialog-free)
    page.wait_for_timeout(300)
    assert dialogs == []
    html = api_workspace.artifacts.get_bytes(
        api_workspace.registry.monitoring.get_drift_report(evidently_id).report_artifact).decode()
    assert XSS not in html  # and it is sanitised where steward renders it, sandbox or not


def test_offline_docs_render_under_the_content_security_policy(api_settings, api_workspace, pairs,
                                                               live_server, browser):
    from playwright.sync_api import expect

    from steward.api.app import create_app

    base = live_server(create_app(api_settings, workspace=api_workspace, loader=FakeLoader(), poll_seconds=0.2))
    page = browser.new_page()
    refused: list[str] = []
    # ReDoc's CDN logo is the one outside request, and the policy rightly blocks it.
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text and "cdn.redoc.ly" not in m.text else None)
    page.goto(base + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("steward search service", timeout=15_000)
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    page.goto(base + "/redoc")
    expect(page.locator("h1").first).to_contain_text("steward search service", timeout=15_000)
    expect(page.get_by_text("/search").first).to_be_attached()
    assert refused == []
