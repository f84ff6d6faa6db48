"""Clustered, normalised synthetic vectors that look like real embeddings (tests and benchmarks)."""

from __future__ import annotations

import numpy as np


def clustered_vectors(
    n: int, dim: int, *, n_clusters: int = 100, spread: float = 0.6, seed: int = 0,
    intrinsic_dim: int | None = None,
) -> np.ndarray:
    """A mixture of Gaussian clusters on the unit sphere.

    ``spread`` is the per-dimension noise relative to a unit-norm centre (noise norm about
    ``spread`` overall): at 0.6 a point's true neighbours often sit in neighbouring clusters,
    so IVF with nprobe=1 misses many of them and tuning matters.

    ``intrinsic_dim=None`` gives isotropic clusters: inside a cluster the points are full-rank
    noise, the hardest case for any ANN index (like random data). Real embeddings lie near
    low-dimensional manifolds; ``intrinsic_dim=r`` gives each cluster its own random rank-``r``
    covariance (same overall noise norm, plus 10% isotropic noise).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if intrinsic_dim is not None:
        bases = (rng.standard_normal((n_clusters, intrinsic_dim, dim)) / np.sqrt(dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        assign = rng.integers(0, n_clusters, m)
        if intrinsic_dim is None:
            noise = rng.standard_normal((m, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        else:
            noise = rng.standard_normal((m, dim)).astype(np.float32) * (0.1 * spread / np.sqrt(dim))
            for c in np.unique(assign):
                rows = np.flatnonzero(assign == c)
                z = rng.standard_normal((len(rows), intrinsic_dim)).astype(np.float32)
                noise[rows] += (z @ bases[c]) * (spread / np.sqrt(intrinsic_dim))
        block = centres[assign] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out
