"""Batch sampling: class-balanced m-per-class batches, long-tail reweighting, or plain shuffling.

Same scheme as pytorch-metric-learning's MPerClassSampler, which draws from the global NumPy RNG;
here a local ``numpy.random.Generator`` makes training deterministic per seed without touching
global state (flows may train in threads).
"""

from __future__ import annotations

import math

import numpy as np


def class_probabilities(labels: np.ndarray, sampler: str, long_tail_power: float = 0.5) -> np.ndarray:
    """Probability of drawing each class (sorted unique label order) into a batch.

    ``m_per_class``: uniform over classes (rare classes as often as frequent ones).
    ``long_tail``: ~ count^(1 - power): power 0 = proportional to frequency, 1 = uniform.
    ``random``: proportional to frequency (what plain shuffling gives).
    """
    _, counts = np.unique(labels, return_counts=True)
    counts = counts.astype(np.float64)
    if sampler == "m_per_class":
        w = np.ones_like(counts)
    elif sampler == "long_tail":
        w = counts ** (1.0 - long_tail_power)
    else:
        w = counts
    return w / w.sum()


def make_batches(labels: np.ndarray, *, sampler: str, m: int, batch_size: int, rng: np.random.Generator,
                 num_samples: int | None = None, long_tail_power: float = 0.5) -> list[np.ndarray]:
    """One epoch of index batches (about ``num_samples`` indices in total, default len(labels))."""
    n = len(labels)
    if n == 0:
        return []
    num_samples = num_samples or n
    num_batches = max(1, math.ceil(num_samples / batch_size))
    if sampler == "random":
        order = rng.permutation(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size) if len(order[i:i + batch_size]) > 1]
    classes, inverse = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    probs = class_probabilities(labels, sampler, long_tail_power)
    per_batch = max(1, min(len(classes), batch_size // m))
    # With few classes, fill the batch by taking more items per class.
    m_eff = max(m, batch_size // per_batch) if per_batch == len(classes) else m
    batches = []
    for _ in range(num_batches):
        chosen = rng.choice(len(classes), size=per_batch, replace=False, p=probs)
        idx = []
        for c in chosen:
            pool = members[c]
            idx.append(rng.choice(pool, size=m_eff, replace=len(pool) < m_eff))
        batches.append(np.concatenate(idx))
    return batches
