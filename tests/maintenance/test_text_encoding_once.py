"""A text collection is encoded once across a maintenance run: retraining, the index build and the
drift check share the encoding cache, and a later run encodes only its new batch."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedding.config import TrainConfig
from maintenance.cycle import run_maintenance
from maintenance.steps import LibrarySteps

SMALL = TrainConfig(hidden_dims=(16,), out_dim=8, epochs=2, incremental_epochs=1, patience=1, buffer_budget=30)
TOPICS = ["bicycle", "tax", "garden"]


def _batch(path, start: int, n: int = 45):
    pq.write_table(pa.table({
        "item_id": [f"t{start + i}" for i in range(n)],
        "label": [TOPICS[i % 3] for i in range(n)],
        "text": [f"a note about {TOPICS[i % 3]} number {start + i}" for i in range(n)],
    }), path)
    return str(path)


def test_each_text_is_encoded_once_across_runs(workspace, tmp_path, monkeypatch):
    import embedding.model
    import embedding.retrain
    from embedding.model import TEXT_ENCODER_DIM

    encoded: Counter[str] = Counter()

    class CountingEncoder:
        name, dim = "fake", TEXT_ENCODER_DIM

        def encode(self, texts):
            encoded.update(texts)
            topic = np.array([[t.split()[3] == k for k in TOPICS] for t in texts], dtype=np.float32)
            rng = np.random.default_rng(len(encoded))
            x = np.zeros((len(texts), TEXT_ENCODER_DIM), np.float32)
            x[:, :3] = topic * 3
            return x + rng.normal(0, 0.3, x.shape).astype(np.float32)

    monkeypatch.setattr(embedding.model, "get_text_encoder", lambda device="cpu": CountingEncoder())
    monkeypatch.setattr(embedding.retrain, "_resolve_config", lambda prod, config, device: config or SMALL)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("STEWARD_PREFECT_EVENTS", "off")
    # The gate is not what this test is about: any candidate is promoted, so drift has a model to run under.
    gate = replace(workspace.settings.gate, max_drop_vs_raw=None, max_old_map_drop=1.0, max_overall_map_drop=1.0,
                   max_class_map_drop=None)
    ws = replace(workspace, settings=replace(workspace.settings, gate=gate))
    run = lambda *files: run_maintenance(ws, LibrarySteps(ws), "docs", list(files), retrain_on="always")
    run(_batch(tmp_path / "b1.parquet", 0), _batch(tmp_path / "b2.parquet", 100))
    assert len(encoded) == 90 and max(encoded.values()) == 1  # every text once, none twice
    encoded.clear()
    summary = run(_batch(tmp_path / "b3.parquet", 200))
    assert summary.drift is not None  # the check ran (and the retrain, index build) on cached encodings
    assert "reused from index" in summary.drift.reference_items  # the reference was not embedded again
    assert set(encoded) == {f"a note about {TOPICS[i % 3]} number {200 + i}" for i in range(45)}
    assert max(encoded.values()) == 1
