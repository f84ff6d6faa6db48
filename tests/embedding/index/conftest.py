"""Small seeded clustered vectors shared by the index tests."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.datasets.clustered import clustered_vectors

N, DIM = 4_000, 32


@pytest.fixture(scope="module")
def gallery() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(item_ids, vectors, held-out queries) from the same cluster mixture."""
    x = clustered_vectors(N + 200, DIM, n_clusters=40, spread=0.8, seed=7)
    return [f"item-{i}" for i in range(N)], x[:N], x[N:]


def exact_top(vectors: np.ndarray, ids: list[str], queries: np.ndarray, k: int) -> list[list[str]]:
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return [[ids[j] for j in row] for row in order]
