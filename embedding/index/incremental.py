"""Incremental maintenance between rebuilds: add/update/remove, re-measure, propose a rebuild.

An index tuned for N vectors drifts off its recall target as it grows (IVF lists get longer and
its centroids were trained on older data; HNSW keeps its quality better) and as tombstones pile
up. After enough change, recall is re-measured on a leave-one-out sample; a rebuild is proposed
when it misses the target or tombstones take too much space.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from embedding.index.ann import AnnIndex
from embedding.index.tune import DEFAULT_TARGET_RECALL, drop_self, leave_one_out_sample, recall_at

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncrementalPolicy:
    remeasure_growth_fraction: float = 0.10  # re-measure once changes exceed this share of the measured size
    target_recall: float = DEFAULT_TARGET_RECALL
    max_tombstone_fraction: float = 0.20  # dead vectors kept by HNSW/IVF-with-array-map before a rebuild
    sample_queries: int = 500
    k: int = 10
    seed: int = 0


@dataclass(frozen=True)
class IncrementalOutcome:
    added: int
    updated: int
    removed: int
    ntotal: int
    remeasured: bool
    recall_at_1: float | None
    recall_at_10: float | None
    rebuild_proposed: bool
    reason: str


def measure_recall(ann: AnnIndex, policy: IncrementalPolicy) -> tuple[float, float]:
    """Leave-one-out recall@1 and @k of the index at its current search parameters."""
    queries, self_labels, truth = leave_one_out_sample(ann, policy.sample_queries, seed=policy.seed, k=policy.k)
    _, found = ann.search_labels(queries, policy.k + 1)
    found = drop_self(found, self_labels, policy.k)
    return recall_at(found, truth, 1), recall_at(found, truth, policy.k)


def apply_changes(
    ann: AnnIndex,
    upsert_ids: Sequence[str] = (),
    upsert_vectors: np.ndarray | None = None,
    remove_ids: Sequence[str] = (),
    policy: IncrementalPolicy | None = None,
) -> IncrementalOutcome:
    """Apply one batch of changes and decide whether the index still deserves to live."""
    policy = policy or IncrementalPolicy()
    removed = ann.remove(remove_ids) if remove_ids else 0
    added = updated = 0
    if len(upsert_ids):
        if upsert_vectors is None:
            raise ValueError("upsert_vectors is required with upsert_ids")
        added, updated = ann.add(upsert_ids, upsert_vectors)

    measured = max(int(ann.meta.get("measured_ntotal", ann.ntotal)), 1)
    changed = int(ann.meta.get("changed_since_measure", 0))
    remeasure = changed > policy.remeasure_growth_fraction * measured and ann.ntotal > policy.k + 1
    r1 = r10 = None
    reasons: list[str] = []
    if remeasure:
        r1, r10 = measure_recall(ann, policy)
        ann.meta.update(measured_ntotal=ann.ntotal, changed_since_measure=0,
                        incremental_recall_at_1=r1, incremental_recall_at_10=r10)
        log.info("re-measured %s after %d changes: recall@%d %.4f", ann.factory, changed, policy.k, r10)
        if r10 < policy.target_recall:
            reasons.append(f"recall@{policy.k} {r10:.3f} fell below the {policy.target_recall} target")
    dead = ann.tombstone_count
    if dead > policy.max_tombstone_fraction * max(ann.ntotal, 1):
        reasons.append(f"{dead} removed vectors still occupy the index ({dead / max(ann.ntotal, 1):.0%} of live)")
    proposed = bool(reasons)
    reason = "; ".join(reasons) if reasons else (
        f"recall@{policy.k} {r10:.3f} meets the target" if remeasure
        else f"{changed} changes since the last measurement (< {policy.remeasure_growth_fraction:.0%} of {measured})"
    )
    return IncrementalOutcome(added, updated, removed, ann.ntotal, remeasure, r1, r10, proposed, reason)
