"""The held-out split: which items no version ever trains on, so every version can be scored on them.

An item is held out iff a stable hash of its item_id falls in the lowest ``HOLDOUT_PERCENT``
percent. The split is the same in every process, for every version and batch, so old and new
versions are compared on items neither trained on, and the drift reference can use items the
production model never saw.
"""

from __future__ import annotations

import hashlib

import numpy as np

HOLDOUT_PERCENT = 20
MAX_HOLDOUT_ITEMS = 20_000  # evaluation cost bound; the hash order picks the same items every time


def hash_bucket(item_ids: np.ndarray) -> np.ndarray:
    """0..9999 per item id, stable across processes (not Python's salted hash)."""
    return np.array([int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=4).digest(), "big") % 10_000
                     for i in item_ids], dtype=np.int64)


def holdout_mask(item_ids: np.ndarray, percent: int = HOLDOUT_PERCENT) -> np.ndarray:
    return hash_bucket(item_ids) < percent * 100


def evaluation_mask(item_ids: np.ndarray, percent: int = HOLDOUT_PERCENT,
                    max_items: int = MAX_HOLDOUT_ITEMS) -> np.ndarray:
    """The held-out items used for evaluation: the hash split, capped at ``max_items`` (lowest hashes)."""
    buckets = hash_bucket(item_ids)
    mask = buckets < percent * 100
    if mask.sum() > max_items:
        chosen = np.flatnonzero(mask)[np.argsort(buckets[mask], kind="stable")[:max_items]]
        mask = np.zeros_like(mask)
        mask[chosen] = True
    return mask
