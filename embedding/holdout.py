"""The held-out split and the stable evaluation set.

An item is held out iff a stable hash of its item_id falls in the lowest ``HOLDOUT_PERCENT``
percent: no version ever trains on it. The split is the same in every process, for every version
and batch, so the drift reference can use items the production model never saw.

The **evaluation set** is a fixed subset of the held-out items, recorded in the registry: per class
up to ``per_class`` items, picked in hash order. Once a class has its quota its items never change,
so every version is scored on the same items of the classes it knows; the set grows only when new
classes arrive (or a small class gains held-out items), each growth a new revision.
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


def evaluation_picks(item_ids: np.ndarray, labels: np.ndarray, current: dict[str, int], *, per_class: int,
                     percent: int = HOLDOUT_PERCENT) -> list[tuple[str, str]]:
    """The held-out ``(item_id, label)`` pairs that join the evaluation set now.

    ``current``: how many items each class already has in the set. A class below ``per_class`` is
    topped up with its held-out items in hash order (lowest first), so the choice is the same in
    every process and never depends on arrival order within a batch.
    """
    item_ids = np.asarray(item_ids).astype(str)
    labels = np.asarray(labels).astype(str)
    buckets = hash_bucket(item_ids)
    held = buckets < percent * 100
    picks: list[tuple[str, str]] = []
    for label in np.unique(labels[held]):
        room = per_class - current.get(str(label), 0)
        if room <= 0:
            continue
        idx = np.flatnonzero(held & (labels == label))
        chosen = idx[np.argsort(buckets[idx], kind="stable")[:room]]
        picks += [(str(item_ids[i]), str(label)) for i in chosen]
    return picks
