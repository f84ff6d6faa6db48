"""``steward api``: argument handling and what it hands to uvicorn (the server itself is not started)."""

from __future__ import annotations

import sys
import types

import pytest

from steward.cli import main


@pytest.fixture
def fake_uvicorn(monkeypatch):
    calls = []
    module = types.SimpleNamespace(run=lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setitem(sys.modules, "uvicorn", module)
    return calls


def test_api_serves_on_loopback_by_default(fake_uvicorn, tmp_path, monkeypatch):
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["api", "--port", "8123", "--poll-seconds", "0.5"]) == 0
    ((app, kwargs),) = fake_uvicorn
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123
    assert app.state.settings.home == tmp_path / "home"


@pytest.mark.parametrize("argv", [["api", "--poll-seconds", "0"], ["api", "--port", "70000"]])
def test_api_rejects_bad_arguments_with_a_config_error(fake_uvicorn, tmp_path, monkeypatch, argv, capsys):
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err and not fake_uvicorn
