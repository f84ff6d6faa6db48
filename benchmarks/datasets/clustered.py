"""Clustered, normalised synthetic vectors that look like real embeddings (benchmarks and tests).

Moved here from ``embedding/index/synthetic.py``: test data does not belong in the product package."""

from __future__ import annotations

import numpy as np


def clustered_vectors(
    n: int, dim: int, *, n_clusters: int = 100, spread: float = 0.6, seed: int = 0,
    intrinsic_dim: int | None = None, skew: float = 0.0, centre_shift: float = 0.0,
    sample_seed: int | None = None,
) -> np.ndarray:
    """A mixture of Gaussian clusters on the unit sphere.

    ``spread`` is the per-dimension noise relative to a unit-norm centre (noise norm about
    ``spread`` overall): at 0.6 a point's true neighbours often sit in neighbouring clusters,
    so IVF with nprobe=1 misses many of them and tuning matters.

    ``intrinsic_dim=None`` gives isotropic clusters: inside a cluster the points are full-rank
    noise, the hardest case for any ANN index (like random data). Real embeddings lie near
    low-dimensional manifolds; ``intrinsic_dim=r`` gives each cluster its own random rank-``r``
    covariance (same overall noise norm, plus 10% isotropic noise).

    ``skew`` > 0 draws cluster sizes from a Zipf-like law (cluster r has weight (r+1)^-skew).
    The mixture (centres, bases, weights) depends on ``seed`` only; ``sample_seed`` draws another
    sample of the same mixture. ``centre_shift`` moves every centre by that much noise and
    reverses the weights: queries "from a slightly shifted distribution".
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if intrinsic_dim is not None:
        bases = (rng.standard_normal((n_clusters, intrinsic_dim, dim)) / np.sqrt(dim)).astype(np.float32)
    weights = None
    if skew > 0:
        weights = (np.arange(n_clusters) + 1.0) ** -skew
        weights /= weights.sum()
    if centre_shift > 0:
        move = np.random.default_rng(seed + 1).standard_normal(centres.shape).astype(np.float32)
        centres = centres + centre_shift * move / np.linalg.norm(move, axis=1, keepdims=True)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        if weights is not None:
            weights = weights[::-1].copy()
    if sample_seed is not None:
        rng = np.random.default_rng([seed, sample_seed])
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        assign = rng.choice(n_clusters, m, p=weights) if weights is not None else rng.integers(0, n_clusters, m)
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
