"""The gallery map's pure parts: sampling that keeps what matters, a deterministic projection."""

from __future__ import annotations

import numpy as np
import pytest

from steward.api.gallery_map import project, sample_positions


def test_sample_keeps_priority_items_first_and_stays_under_the_cap():
    pos = sample_positions(10_000, 2000, [5, 9_999, 5, -1, 20_000], seed=0)
    assert len(pos) == 2000 and len(set(pos.tolist())) == 2000 and {5, 9_999} <= set(pos.tolist())
    assert np.array_equal(pos, sample_positions(10_000, 2000, [5, 9_999], seed=0))  # seeded
    assert sample_positions(10, 2000, [], seed=0).tolist() == list(range(10))  # small galleries: everything
    assert sample_positions(100, 3, [7, 8, 9, 10], seed=0).tolist() == [7, 8, 9]  # priority alone can fill it


def test_pca_separates_clusters_along_the_first_axis_and_is_reproducible():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.1, (50, 16)), rng.normal(0, 0.1, (50, 16)) + 3.0])
    xy, note = project(x)
    assert xy.shape == (100, 2) and note.startswith("PCA")
    assert (xy[:50, 0] < 0).all() == (xy[50:, 0] > 0).all()  # the first component splits the clusters
    assert abs(xy[:50, 0].mean() - xy[50:, 0].mean()) > 10 * xy[:, 1].std()
    assert np.allclose(project(x)[0], xy)  # same input, same map (sign convention)
    assert project(np.ones((4, 3)))[0].shape == (4, 2)  # degenerate input still maps


def test_umap_is_used_only_when_importable(monkeypatch):
    import sys
    import types

    class FakeUMAP:
        def __init__(self, n_components: int, random_state: int) -> None:
            self.n = n_components

        def fit_transform(self, x):
            return x[:, : self.n] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    x = np.random.default_rng(1).normal(size=(40, 5))
    xy, note = project(x, "umap")
    assert note.startswith("UMAP") and np.allclose(xy, x[:, :2] * 2)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n):
    assert project(np.zeros((n, 4)))[0].shape == (n, 2)
