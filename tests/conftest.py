"""Shared fixtures: settings and workspaces under tmp_path, registries on SQLite and PostgreSQL.

PostgreSQL tests read the server URL from ``STEWARD_TEST_POSTGRES_URL`` (``.ci/run`` sets it) and
create a throw-away database per test; without it the PostgreSQL half is skipped, and the
summary says so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from core.settings import Settings
from tests.factories import make_settings

POSTGRES_URL = os.environ.get("STEWARD_TEST_POSTGRES_URL")
_SKIP_PG = "STEWARD_TEST_POSTGRES_URL is not set: the PostgreSQL half of the registry tests was skipped"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture
def workspace(settings: Settings):
    from storage.workspace import open_workspace

    ws = open_workspace(settings)
    yield ws
    ws.registry.dispose()




def _postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    name = f"steward_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip(_SKIP_PG)
    yield from _postgres_database()


@pytest.fixture
def registry(registry_url: str):
    from storage.registry import open_registry

    store = open_registry(registry_url)
    yield store
    store.dispose()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not POSTGRES_URL:
        terminalreporter.write_line(f"NOTE: {_SKIP_PG}", yellow=True)
