"""Flow tests run against a temporary Prefect server (prefect_test_harness) and a steward home
under tmp_path, selected through the environment the way deployed flows see it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def flow_home(prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STEWARD_HOME", str(home))
    for var in ("STEWARD_DATABASE_URL", "STEWARD_ARTIFACTS", "STEWARD_DATA", "STEWARD_CONFIG", "STEWARD_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    from flows.context import reset

    reset()
    yield home
    reset()
