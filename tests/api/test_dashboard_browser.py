"""Drive the dashboard in headless Chromium: see production, roll back with the token, see the change.

Needs Playwright for Python and Debian's chromium (``apt-get install -y chromium``); Playwright's
own browser download does not work on these machines, so the system binary is used.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.fakes import COLLECTION, TOKEN, FakeLoader
from tests.browser import BROWSER_MARKS

pytestmark = BROWSER_MARKS


def test_rollback_from_the_dashboard(api_settings, api_workspace, pairs, live_server, browser):
    from playwright.sync_api import expect

    from steward.api.app import create_app

    registry = api_workspace.registry
    registry.models.switch_alias(COLLECTION, 2, pairs[2], actor="ci", reason="passed the gate")
    app = create_app(api_settings, workspace=api_workspace, loader=FakeLoader(), poll_seconds=0.2)
    base = live_server(app)

    page = browser.new_page()
    answers = []  # what the test answers to the next confirmation dialogs, in order
    page.on("dialog", lambda dialog: dialog.accept() if answers.pop(0) else dialog.dismiss())
    page.goto(base + "/")
    production = page.locator(f"#production-{COLLECTION}")
    expect(production).to_contain_text("model v2")
    expect(page.locator(f"#serving-{COLLECTION}")).to_contain_text("model v2")

    form = page.locator(f"form.rollback-form[data-collection='{COLLECTION}']")
    form.locator("input[name=token]").fill(TOKEN)
    # Declining the confirmation sends nothing.
    answers.append(False)
    form.locator("button[type=submit]").click()
    page.wait_for_timeout(300)
    assert registry.models.get_alias(COLLECTION).model_version == 2 and answers == []
    # A wrong token is refused and the page says so; production stays on v2.
    form.locator("input[name=token]").fill("not-the-token")
    answers.append(True)
    form.locator("button[type=submit]").click()
    expect(form.locator(".message")).to_contain_text("401")
    assert registry.models.get_alias(COLLECTION).model_version == 2

    form.locator("input[name=token]").fill(TOKEN)
    form.locator("input[name=reason]").fill("browser test rollback")
    form.locator("input[name=actor]").fill("ana")
    answers.append(True)
    form.locator("button[type=submit]").click()
    expect(page.locator(f"#production-{COLLECTION}")).to_contain_text("model v1", timeout=15_000)
    expect(page.locator(f"#serving-{COLLECTION}")).to_contain_text("model v1")
    expect(page.locator("table.history")).to_contain_text("browser test rollback")
    expect(page.locator("table.history")).to_contain_text("ana (api)")  # the actor given, not just "api"
    assert registry.models.get_alias(COLLECTION).model_version == 1

    # The rollback pinned production; the dashboard says so and can hand it back to automation.
    pinned = page.locator(f"#pinned-{COLLECTION}")
    expect(pinned).to_contain_text("ana (api)")
    pinned.locator("input[name=token]").fill(TOKEN)
    answers.append(True)
    pinned.locator("button[type=submit]").click()
    expect(page.locator(f"#pinned-{COLLECTION}")).to_have_count(0, timeout=15_000)
    assert not registry.models.get_alias(COLLECTION).pinned


# Elements sticking out of the viewport (for the failure message when the page overflows).
_OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap'))
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


@pytest.fixture
def rich_app(tmp_path):
    from steward.api.app import create_app
    from storage.workspace import open_workspace
    from tests.api.fakes import populate_rich
    from tests.factories import make_settings

    settings = make_settings(tmp_path / "home", STEWARD_API_TOKEN=TOKEN)
    workspace = open_workspace(settings)
    populate_rich(workspace)
    yield create_app(settings, workspace=workspace, loader=FakeLoader(), poll_seconds=0.5)
    workspace.registry.dispose()


def test_pages_fit_wide_and_narrow_screens_and_show_what_matters(rich_app, live_server, browser, tmp_path):
    """One server, four pages, two widths: no horizontal page overflow; headings, a per-class row, the
    comparison and a map with points; a class label that is markup stays text. Screenshots go to
    $STEWARD_SCREENSHOTS (default: the test's tmp dir)."""
    import os

    from tests.api.fakes import EVIL_LABEL

    out = Path(os.environ.get("STEWARD_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    base = live_server(rich_app)
    dialogs: list[str] = []
    pages = {"dashboard": "/", "compare": "/compare?a=1&b=3", "map": "/map?version=2", "status": "/status"}
    for width in (1280, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for name, path in pages.items():
            assert page.goto(base + path).status == 200, path
            fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
            assert fits, f"{path} overflows at {width} px: {page.evaluate(_OVERFLOWING)}"
        page.close()
    assert dialogs == []  # the label <script>alert(...)</script> never ran

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(base + "/")
    headings = page.locator("h2").all_text_contents()
    for wanted in ("Production history", "Model versions", "Quality per class", "Drift checks", "Alerts",
                   "Training runs", "Indexes", "Embedding map"):
        assert wanted in headings
    row = page.locator(f"table.per-class tr[data-class='{EVIL_LABEL}']")
    assert row.count() == 1 and EVIL_LABEL in row.inner_text()  # shown as text
    ticks = page.locator(f"#drift-significance-{COLLECTION} .x-tick").all_text_contents()
    assert ticks == ["b2", "b3", "b4"]  # one label per batch, none repeated
    assert page.locator(f"#drift-significance-{COLLECTION} .version-mark").count() == 1  # v1 -> v2 embeddings
    assert "answered: promoted to v1" in page.locator("table.alerts").inner_text()

    page.goto(base + "/compare?a=1&b=3")
    assert "v3 compared with v1" in page.locator("h1").inner_text()
    assert "old classes lost 0.06 MAP@R" in page.locator("body").inner_text()
    assert page.locator("table.compare-classes tbody tr").count() == 3

    page.goto(base + "/map?version=2")
    svg = page.locator("#map-svg svg")
    assert svg.locator(".pt").count() == 90  # v2's index holds batches 1-3 (90 items), all shown
    assert svg.locator(".pt.new").count() == 30 - 2 and svg.locator(".pt.novel").count() == 2  # batch 3; i61, i62
    assert page.locator("ul.classes li").count() == 3

    page.goto(base + "/status")
    assert page.locator("h1").inner_text() == "Status" and "model v2" in page.locator("table.status").inner_text()
    page.close()
