"""The pages people read, through the app: compare, map, /status as HTML, escaping of user data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.api.fakes import COLLECTION, EVIL_LABEL

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what Chromium sends


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """One read-only rich world for the module (tests that change their world make their own)."""
    from fastapi.testclient import TestClient

    from steward.api.app import create_app
    from storage.workspace import open_workspace
    from tests.api.fakes import TOKEN, FakeLoader, populate_rich
    from tests.factories import make_settings

    settings = make_settings(tmp_path_factory.mktemp("pages") / "home", STEWARD_API_TOKEN=TOKEN)
    workspace = open_workspace(settings)
    populate_rich(workspace)
    with TestClient(create_app(settings, workspace=workspace, loader=FakeLoader(), poll_seconds=0.5)) as c:
        yield c
    workspace.registry.dispose()


def test_dashboard_shows_every_section_and_escapes_labels(pages):
    html = pages.get("/").text
    for heading in ("Quality per class", "Drift checks", "Alerts", "Training runs", "Embedding map"):
        assert f">{heading}</h2>" in html
    assert EVIL_LABEL not in html and "&lt;script&gt;alert(" in html
    assert "significant, small" in html and "floor (young collection)" in html  # decision status and thresholds
    assert "answered: promoted to v1 by test" in html and "batch 4: 3 rows quarantined" in html  # alert history
    assert "<th>delivery</th>" not in html and "not delivered (" not in html  # no webhook: nothing to deliver to
    assert "/runs/flow-run/" not in html  # no Prefect API configured: no links


def test_dashboard_links_prefect_runs_when_a_prefect_api_is_configured(pages, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    html = pages.get("/").text
    assert 'href="http://prefect.example:4200/runs/flow-run/run-2"' in html
    assert 'href="http://prefect.example:4200/runs"' in html


def test_compare_two_versions(pages):
    r = pages.get("/compare", params={"collection": COLLECTION, "a": 1, "b": 3})
    assert r.status_code == 200
    html = r.text
    assert "v3 compared with v1" in html and "old classes lost 0.06 MAP@R (limit 0.02)" in html
    assert "MAP@R, new model&#39;s queries against the old model&#39;s gallery" in html
    assert html.count("<tr data-class=") == 3 and EVIL_LABEL not in html
    assert pages.get("/compare", params={"a": 1, "b": 9}).status_code == 404
    assert pages.get("/compare", params={"a": 1}).status_code == 422


def test_map_of_a_version_is_inline_svg_with_every_item_of_its_index(pages):
    r = pages.get("/map", params={"version": 3})
    assert r.status_code == 200
    svg = r.text[r.text.index("<svg", r.text.index('id="map-svg"')):]
    root = ET.fromstring(svg[: svg.index("</svg>") + 6])  # well-formed, labels escaped inside
    points = [e for e in root.iter() if "pt" in (e.get("class") or "").split()]
    assert len(points) == 120  # index 3 holds batches 1-4
    assert sum("new" in e.get("class") for e in points) == 30 - 1  # batch 4, less i95 (a novel cross)
    assert sum("novel" in e.get("class") for e in points) == 3  # i61, i62 (batch 3) and i95 (batch 4)
    assert "http" not in svg.split("http://www.w3.org/2000/svg", 1)[1][:20000]  # nothing loaded from elsewhere
    assert pages.get("/map").status_code == 200  # production's by default
    assert pages.get("/map", params={"version": 9}).status_code == 404
    assert pages.get("/map", params={"version": 1, "projection": "tsne"}).status_code == 422


def test_map_says_why_when_a_version_has_no_index(client, api_workspace):
    api_workspace.registry.models.register_model(COLLECTION, config={}, metrics={}, artifacts={},
                                                 parent_version=3, trained_on_batch=4)
    r = client.get("/map", params={"version": 4})
    assert r.status_code == 404 and "has no index yet" in r.text and 'id="map-error"' in r.text


def test_status_is_html_for_browsers_and_json_for_api_clients(pages):
    page = pages.get("/status", headers=HTML)
    assert page.headers["content-type"].startswith("text/html") and "<h1>Status</h1>" in page.text
    assert "model v2, index 2" in page.text
    as_json = pages.get("/status")  # TestClient sends Accept: */*
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["collections"][COLLECTION]["production"]["model_version"] == 2
    forced = pages.get("/status", headers=HTML, params={"format": "json"})
    assert forced.headers["content-type"] == "application/json"
    assert pages.get("/status", params={"format": "html"}).headers["content-type"].startswith("text/html")
    assert pages.get("/status", headers={"accept": "application/json, text/html"}).json()["collections"]


def test_alert_delivery_shows_only_when_a_webhook_is_configured(tmp_path):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app
    from storage.workspace import open_workspace
    from tests.api.fakes import FakeLoader, populate
    from tests.factories import make_settings

    settings = make_settings(tmp_path / "hooked", STEWARD_WEBHOOK_URL="http://127.0.0.1:9/hook")
    workspace = open_workspace(settings)
    populate(workspace)
    workspace.registry.monitoring.add_alert(COLLECTION, kind="drift", message="drift on batch 3", payload={},
                                            dedup_key="d3")
    with TestClient(create_app(settings, workspace=workspace, loader=FakeLoader())) as c:
        html = c.get("/").text
    workspace.registry.dispose()
    assert "<th>delivery</th>" in html and "not delivered (0 attempts)" in html


def test_pages_need_no_inline_script_style_or_handler(pages):
    """A strict Content-Security-Policy (script-src 'self'; style-src 'self') must leave the pages whole."""
    import re

    for path in ("/", "/compare?a=1&b=2", "/map?version=2", "/status?format=html"):
        html = pages.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\sstyle=|<style", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert "https://" not in html and "//cdn" not in html, path  # everything served from here
