"""Small seeded embedding-like data for the monitoring tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def centres(n_classes: int, dim: int, seed: int = 123) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_classes, dim))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def mixture(
    rng: np.random.Generator,
    n: int,
    c: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    spread: float = 0.15,
    shift: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised rows around class centres; returns (x, labels as str)."""
    k, d = c.shape
    y = rng.choice(k, size=n, p=weights)
    x = c[y] + spread * rng.standard_normal((n, d)) / np.sqrt(d) * 3
    if shift is not None:
        x = x + shift
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.array([f"c{i}" for i in y], dtype=object)


def table(x: np.ndarray, y: np.ndarray, start: int) -> pa.Table:
    n, d = x.shape
    return pa.table({
        "item_id": [f"i{start + i}" for i in range(n)],
        "label": list(y),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel(), pa.float32()), d),
        "source": ["web"] * n,
    })
