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
