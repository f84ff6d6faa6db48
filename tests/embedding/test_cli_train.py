"""`steward retrain` and `steward embed`, in-process."""

import json

import numpy as np
import pyarrow.parquet as pq

from steward.cli import main
from tests.factories import feature_table


def test_retrain_then_embed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "b.parquet"
    pq.write_table(feature_table(150, dim=6, n_classes=3, spread=0.5), path)
    assert main(["ingest", str(path), "--collection", "c"]) == 0
    capsys.readouterr()

    rc = main(["retrain", "--collection", "c", "--epochs", "3", "--buffer-budget", "30", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["model_version"] == 1 and out["status"] == "candidate"
    assert out["decision"]["accepted"] and out["report"]["training"]["mode"] == "full"

    # Without production the default model is missing: a clear not-found exit code.
    assert main(["embed", "--collection", "c", "--out", str(tmp_path / "e.parquet")]) == 4
    capsys.readouterr()
    assert main(["embed", "--collection", "c", "--model", "1", "--out", str(tmp_path / "e.parquet"),
                 "--batch-size", "40", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    table = pq.read_table(tmp_path / "e.parquet")
    assert info["rows"] == 150 == table.num_rows
    assert table.column_names == ["item_id", "label", "embedding"]
    emb = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert emb.shape == (150, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)

    # A planted impossible gate threshold: registered as rejected, exit code 7, reasons printed.
    assert main(["promote", "--collection", "c", "--model", "1"]) == 0
    pq.write_table(feature_table(60, dim=6, n_classes=3, spread=0.5, seed=5, start=500), tmp_path / "b2.parquet")
    assert main(["ingest", str(tmp_path / "b2.parquet"), "--collection", "c"]) == 0
    capsys.readouterr()
    rc = main(["retrain", "--collection", "c", "--epochs", "2", "--max-old-drop", "-1", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 7 and "REJECTED" in text and "fell" in text
