"""Drive the dashboard in headless Chromium: see production, roll back with the token, see the change.

Needs Playwright for Python and Debian's chromium (``apt-get install -y chromium``); Playwright's
own browser download does not work on these machines, so the system binary is used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.api.fakes import COLLECTION, TOKEN, FakeLoader

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    import playwright.sync_api  # noqa: F401

    _PLAYWRIGHT = True
except ImportError:
    _PLAYWRIGHT = False

pytestmark = [
    pytest.mark.skipif(
        not _PLAYWRIGHT, reason="playwright is not installed (pip install -c constraints.txt playwright)"
    ),
    pytest.mark.skipif(
        not (CHROMIUM.exists() or shutil.which("chromium")),
        reason="/usr/bin/chromium is missing (apt-get install -y chromium)",
    ),
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


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
