"""Fixtures for the search-service tests: a registry on SQLite, fake loaders, a live uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.fakes import TOKEN, FakeLoader, populate
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.factories import make_settings


@pytest.fixture
def api_settings(tmp_path: Path):
    return make_settings(tmp_path / "home", STEWARD_API_TOKEN=TOKEN)


@pytest.fixture
def api_workspace(api_settings):
    from storage.workspace import open_workspace

    ws = open_workspace(api_settings)
    yield ws
    ws.registry.dispose()


@pytest.fixture
def pairs(api_workspace) -> dict[int, int]:
    return populate(api_workspace)


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def client(api_settings, api_workspace, pairs, loader) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from steward.api.app import create_app

    app = create_app(api_settings, workspace=api_workspace, loader=loader, poll_seconds=0.05)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], str]]:
    """Start an app under a real uvicorn server on loopback; returns its base URL."""
    import uvicorn

    servers: list[tuple[Any, threading.Thread]] = []

    def start(app: Any) -> str:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser():  # one Chromium per test module that uses it: starting it is most of their time
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
