"""Headless Chromium for the browser tests: Playwright driving Debian's ``/usr/bin/chromium``
(``apt-get install -y chromium``); Playwright's own browser download does not work on these machines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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

# The skips every browser test module uses as its ``pytestmark``.
BROWSER_MARKS = [
    pytest.mark.skipif(
        not _PLAYWRIGHT, reason="playwright is not installed (pip install -c constraints.txt playwright)"
    ),
    pytest.mark.skipif(
        not (CHROMIUM.exists() or shutil.which("chromium")),
        reason="/usr/bin/chromium is missing (apt-get install -y chromium)",
    ),
]
