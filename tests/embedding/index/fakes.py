"""Test doubles for the index tests."""

from __future__ import annotations

import numpy as np

from storage.parquet_store import features_to_numpy

DIM = 8


class FakeEmbedder:
    """A fixed linear map + L2 normalisation: deterministic, so exact answers are computable."""

    model_version = 1
    input_kind = "features"
    output_dim = 6

    def __init__(self) -> None:
        self.w = np.random.default_rng(0).standard_normal((DIM, self.output_dim)).astype(np.float32)
        self.calls = 0

    def embed_features(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, np.float32) @ self.w
        return y / np.linalg.norm(y, axis=1, keepdims=True)

    def embed_table(self, table) -> np.ndarray:
        self.calls += 1
        return self.embed_features(features_to_numpy(table))


def home_with_fake_embedder(tmp_path, monkeypatch, table) -> FakeEmbedder:
    """A steward home in ``tmp_path/home`` (the working directory too) whose models all embed with
    one :class:`FakeEmbedder`, with ``table`` ingested as batch 1 of collection "c" through the CLI."""
    import pyarrow.parquet as pq

    import embedding.inference
    from steward.cli import main

    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    fake = FakeEmbedder()
    monkeypatch.setattr(embedding.inference, "load_embedder", lambda *a, **k: fake)
    pq.write_table(table, tmp_path / "b1.parquet")
    assert main(["ingest", str(tmp_path / "b1.parquet"), "--collection", "c"]) == 0
    return fake
