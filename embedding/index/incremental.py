"""Incremental maintenance between rebuilds: add/update/remove, fresh metrics, compaction, re-tuning.

Every update measures the index it leaves behind: a sample of the changed items is held out of the
index while recall (exact inner product over the index's contents as ground truth, ties counted)
and single-query latency are measured, then added. Dead vectors are compacted away (same trained
structure, one add) when they exceed ``max_tombstone_fraction`` of the live items, or when
single-query latency has grown past ``max_latency_ratio`` times the fresh build's. When recall
misses the target the search parameter is re-tuned upward; a rebuild is proposed only when even
that fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from embedding.index.ann import AnnIndex
from embedding.index.build import checked_vectors
from embedding.index.tune import (
    DEFAULT_TARGET_RECALL,
    HELD_OUT,
    RECENT,
    GroundTruth,
    LatencyStats,
    ground_truth,
    measure,
    measure_latency,
    tune,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncrementalPolicy:
    target_recall: float = DEFAULT_TARGET_RECALL
    max_tombstone_fraction: float = 0.10  # dead vectors (share of live) that trigger a compaction
    max_latency_ratio: float = 1.5  # single-query p50 vs the fresh build's that triggers a compaction
    compact: bool = True  # False: only propose it
    sample_queries: int = 500  # changed items held out as queries
    k: int = 10
    seed: int = 0
    latency_queries: int = 200


@dataclass(frozen=True)
class IncrementalOutcome:
    added: int
    updated: int
    removed: int
    ntotal: int
    remeasured: bool  # always True when the index holds more than k items
    recall_at_1: float | None
    recall_at_10: float | None
    query_source: str
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_ratio: float | None  # p50 / the fresh build's p50
    tombstones: int
    compacted: bool
    retuned: bool
    search_params: dict
    rebuild_proposed: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _truths(ann: AnnIndex, queries: np.ndarray, recent: np.ndarray | None, k: int) -> list[GroundTruth]:
    labels = ann.live_labels()
    contents = ann.vectors_of_labels(labels)
    out = []
    if len(queries):
        out.append(ground_truth(contents, labels, queries, k, HELD_OUT))
    if recent is not None and len(recent):
        out.append(ground_truth(contents, labels, recent, k, RECENT))
    return out


def _latency(ann: AnnIndex, truths: list[GroundTruth], policy: IncrementalPolicy) -> LatencyStats:
    q = np.concatenate([t.queries for t in truths])
    return measure_latency(lambda x, kk: ann.search(x, kk), q, policy.k, max_single=policy.latency_queries)


def apply_changes(
    ann: AnnIndex,
    upsert_ids: Sequence[str] = (),
    upsert_vectors: np.ndarray | None = None,
    remove_ids: Sequence[str] = (),
    policy: IncrementalPolicy | None = None,
    *,
    recent_queries: np.ndarray | None = None,
) -> IncrementalOutcome:
    """Apply one batch of changes in place, measure the result, compact or re-tune when it pays."""
    policy = policy or IncrementalPolicy()
    removed = ann.remove(remove_ids) if len(remove_ids) else 0
    ids = np.asarray([str(i) for i in upsert_ids], dtype=str)
    if len(ids) and upsert_vectors is None:
        raise ValueError("upsert_vectors is required with upsert_ids")
    x = checked_vectors(ids, upsert_vectors if len(ids) else np.zeros((0, ann.dim), np.float32), ann.dim)
    rng = np.random.default_rng(policy.seed)
    held = np.zeros(len(ids), bool)
    held[rng.choice(len(ids), min(policy.sample_queries, len(ids) // 2), replace=False)] = True
    existed = np.fromiter((i in ann for i in ids[held]), bool, count=int(held.sum()))
    ann.remove(ids[held])  # updated items among the held-out ones lose their old vector now
    added, updated = ann.add(ids[~held], x[~held]) if (~held).any() else (0, 0)
    added += int((~existed).sum())
    updated += int(existed.sum())
    recent = None
    if recent_queries is not None and len(recent_queries):
        recent = np.asarray(recent_queries, np.float32)
        recent = recent / np.maximum(np.linalg.norm(recent, axis=1, keepdims=True), 1e-12)

    reasons: list[str] = []
    compacted = retuned = False
    fresh_p50 = ann.meta.get("fresh_latency_p50_ms")
    if policy.compact and ann.tombstone_count > policy.max_tombstone_fraction * max(ann.ntotal, 1):
        log.info("compacting %s: %d dead vectors", ann.factory, ann.tombstone_count)
        ann.compact()
        compacted = True
        reasons.append(f"compacted: dead vectors exceeded {policy.max_tombstone_fraction:.0%} of live")
    r1 = r10 = None
    lat = None
    source = ""
    measurable = ann.ntotal > policy.k and (held.any() or recent is not None)
    if measurable:
        truths = _truths(ann, x[held], recent, policy.k)
        lat = _latency(ann, truths, policy)
        if fresh_p50 and lat.p50_ms > policy.max_latency_ratio * fresh_p50:
            again = _latency(ann, truths, policy)  # one slow sample on a busy machine is not a trend
            lat = again if again.p50_ms < lat.p50_ms else lat
        if (fresh_p50 and not compacted and ann.tombstone_count and policy.compact
                and lat.p50_ms > policy.max_latency_ratio * fresh_p50):
            log.info("compacting %s: latency %.3f ms vs fresh %.3f ms", ann.factory, lat.p50_ms, fresh_p50)
            ann.compact()
            compacted = True
            reasons.append(f"compacted: p50 {lat.p50_ms:.3f} ms exceeded {policy.max_latency_ratio}x "
                           f"the fresh {fresh_p50:.3f} ms")
            truths = _truths(ann, x[held], recent, policy.k)
            lat = _latency(ann, truths, policy)
        per = measure(ann, truths, policy.k)
        worst = min(r for _, r in per.values())
        if worst < policy.target_recall:
            res = tune(ann, truths, target_recall=policy.target_recall, k=policy.k, start=ann.search_params,
                       max_single=policy.latency_queries)
            retuned = True
            per = measure(ann, truths, policy.k)
            worst = min(r for _, r in per.values())
            lat = res.latency
            reasons.append(f"re-tuned search to {res.params}")
        n = sum(len(t.queries) for t in truths)
        r1 = sum(per[t.source][0] * len(t.queries) for t in truths) / n
        r10 = sum(per[t.source][1] * len(t.queries) for t in truths) / n
        source = "+".join(t.source for t in truths)
        if worst < policy.target_recall:
            reasons.append(f"recall@{policy.k} {worst:.3f} stays below the {policy.target_recall} target "
                           "at the most accurate search setting")
    if held.any():
        ann.add(ids[held], x[held])
    if compacted and lat is not None:
        ann.meta["fresh_latency_p50_ms"] = lat.p50_ms  # a compacted index is a fresh one
    proposed = any(r.startswith("recall@") for r in reasons)
    if not policy.compact and ann.tombstone_count > policy.max_tombstone_fraction * max(ann.ntotal, 1):
        proposed = True
        reasons.append(f"{ann.tombstone_count} removed vectors still occupy the index")
    reason = "; ".join(reasons) if reasons else (
        f"recall@{policy.k} {r10:.3f} meets the target" if r10 is not None else "too few items to measure")
    ratio = (lat.p50_ms / fresh_p50) if (lat is not None and fresh_p50) else None
    return IncrementalOutcome(
        added=added, updated=updated, removed=removed, ntotal=ann.ntotal, remeasured=bool(measurable),
        recall_at_1=r1, recall_at_10=r10, query_source=source,
        latency_p50_ms=lat.p50_ms if lat else None, latency_p99_ms=lat.p99_ms if lat else None,
        latency_ratio=ratio, tombstones=ann.tombstone_count, compacted=compacted, retuned=retuned,
        search_params=ann.search_params, rebuild_proposed=proposed, reason=reason,
    )
