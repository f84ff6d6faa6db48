"""``steward --config x.toml run``: the flow and every task use x.toml's settings, not the environment's."""

from __future__ import annotations

import json
from pathlib import Path

from steward.demo import digits_stream, write_batch


def test_config_reaches_the_flow_and_its_tasks(prefect_harness, tmp_path: Path, monkeypatch, capsys) -> None:
    from flows.context import reset
    from steward.cli import main
    from storage.registry import open_registry

    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "env-home"))  # what the flow must NOT use
    monkeypatch.delenv("STEWARD_DRIFT_ALPHA", raising=False)
    elsewhere = tmp_path / "configured"
    cfg = tmp_path / "x.toml"
    cfg.write_text(f'home = "{elsewhere}"\ndatabase_url = "sqlite:///{elsewhere / "other.db"}"\n'
                   "[drift]\nalpha = 0.02\n[index]\ntarget_recall = 0.9\n")
    x, y, stream = digits_stream(4, seed=0)
    files = [write_batch(tmp_path / f"{b.name}.parquet", x, y, b, seed=i) for i, b in enumerate(stream[:2])]
    reset()
    outputs = []
    for f in files:
        assert main(["--config", str(cfg), "run", "-c", "digits", str(f), "--json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    reset()
    summary = outputs[-1]
    assert summary["drift"]["decision"]["alpha"] == 0.02
    registry = open_registry(f"sqlite:///{elsewhere / 'other.db'}")
    [report] = registry.monitoring.list_drift_reports("digits")
    assert report.alpha == 0.02 and report.batch_seq == 2
    [index] = registry.models.list_indexes("digits")
    assert index.params["target_recall"] == 0.9  # the index task saw the file's [index] table too
    registry.dispose()
    assert not (tmp_path / "env-home" / "registry.db").exists()
