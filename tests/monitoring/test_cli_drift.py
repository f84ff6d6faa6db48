from __future__ import annotations

import json

import numpy as np
import pytest

from steward.cli import main
from tests.monitoring._data import centres, mixture, table

C = centres(6, 16)


@pytest.fixture
def home(tmp_path, monkeypatch):
    from core.settings import load_settings
    from storage.workspace import open_workspace

    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STEWARD_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("STEWARD_PREFECT_EVENTS", "off")
    monkeypatch.chdir(tmp_path)  # no stray ./steward.toml
    ws = open_workspace(load_settings())
    rng = np.random.default_rng(0)
    for b in range(2):
        x, y = mixture(rng, 200, C[:5])
        ws.store.ingest_table(table(x, y, 1000 * b), "shop")
    yield ws
    ws.registry.dispose()


def test_exit_codes_and_json(home, capsys):
    assert main(["drift", "--collection", "shop", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["drifted"] is False and out["batch_seq"] == 2 and out["reference_batches"] == [1]
    assert out["detectors"]["mmd"]["n_current"] == 200

    shift = np.zeros(16)
    shift[0] = 0.5
    x, y = mixture(np.random.default_rng(1), 200, C[:5], shift=shift)
    home.store.ingest_table(table(x, y, 5000), "shop")
    assert main(["drift", "--collection", "shop"]) == 10
    text = capsys.readouterr().out
    assert "DRIFT" in text and "alert" in text
    assert "status: drift — acts" in text and "acting: " in text and "acting: none" not in text
    assert "\n ! " in text  # an acting detector is marked
    assert main(["drift", "--collection", "missing"]) == 4
    assert main(["drift", "--collection", "shop", "--alpha", "2"]) == 2


@pytest.mark.slow
def test_html_report_is_stored_as_artifact(home, tmp_path, capsys):
    html = tmp_path / "r" / "drift.html"
    assert main(["drift", "--collection", "shop", "--html", str(html), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert html.exists() and html.stat().st_size > 10_000
    sha = out["report_artifact"]
    assert sha and home.artifacts.get_bytes(sha) == html.read_bytes()
    [report] = home.registry.monitoring.list_drift_reports("shop")
    assert report.report_artifact == sha
