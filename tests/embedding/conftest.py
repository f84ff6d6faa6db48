"""Small seeded data shared by the embedding tests."""

from __future__ import annotations

import numpy as np
import pytest


def make_blobs_nonlinear(n_classes: int = 5, per_class: int = 40, dim: int = 16, seed: int = 0):
    """Classes on curved 1-d manifolds embedded nonlinearly in ``dim`` dimensions, with noise."""
    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(6, dim))
    xs, ys = [], []
    for c in range(n_classes):
        centre = rng.normal(scale=1.5, size=3)
        freq = rng.uniform(1, 3, size=3)
        t = rng.uniform(-1, 1, size=(per_class, 1))
        latent = np.concatenate([centre + np.sin(freq * t), np.cos(freq * t) * 0.5], axis=1)
        x = np.tanh(latent @ proj) + rng.normal(scale=0.25, size=(per_class, dim))
        xs.append(x)
        ys += [f"c{c}"] * per_class
    return np.concatenate(xs).astype(np.float32), np.array(ys)


@pytest.fixture
def blobs():
    return make_blobs_nonlinear()


@pytest.fixture(scope="session")
def digits_small():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    # 6 classes x 60 items: big enough to learn, small enough for 2 shared cores.
    keep = np.concatenate([np.flatnonzero(y == c)[:60] for c in range(6)])
    return x[keep].astype(np.float32), y[keep].astype(str)


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """Tiny models train ~10x faster on one thread when the CPU is shared (intra-op threads
    oversubscribe); restored after each test so other suites keep their setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
