"""Tune search parameters to a recall target on held-out queries, and measure what the index delivers.

Queries are vectors the index does not contain: items held out of the build (or of an update)
and, when given, a sample of real query vectors. Ground truth is exact inner product over the
index's contents. A found item counts as a hit when its exact score reaches the k-th exact score
(ties with the k-th neighbour are hits: with duplicate vectors any of them is a correct answer).
Settings are tried cheapest first and the first that meets the target on every query source wins.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedding.index.build import set_threads

log = logging.getLogger(__name__)

DEFAULT_TARGET_RECALL = 0.95
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
NPROBE_LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
                 1536, 2048, 4096, 8192, 16384, 32768, 65536)
K_FACTOR_REFINE = 4  # re-rank 4*k candidates with the finer codes
TIE_EPS = 1e-5  # float32 inner products of equal vectors can differ in the last bits
HELD_OUT = "held_out_items"
RECENT = "recent_queries"


@dataclass(frozen=True)
class LatencyStats:
    p50_ms: float
    p99_ms: float
    mean_ms: float
    batch_qps: float
    single_qps: float
    n_queries: int
    threads: int  # batch search; single queries use single_threads
    single_threads: int = 1


@dataclass(frozen=True)
class GroundTruth:
    """Exact top-``k`` of ``queries`` over the gallery (``vectors`` row i has label ``labels[i]``, sorted)."""

    source: str  # where the queries come from (HELD_OUT, RECENT, ...)
    queries: np.ndarray  # (nq, d) unit vectors
    vectors: np.ndarray  # (n, d) the index's contents, rows by ascending label
    labels: np.ndarray  # (n,) ascending labels
    top_labels: np.ndarray  # (nq, k)
    top_scores: np.ndarray  # (nq, k), descending

    def exact_scores(self, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(exact scores, known) of found labels; unknown labels (not in the gallery, -1) are not hits."""
        pos = np.minimum(np.searchsorted(self.labels, np.maximum(found, 0)), len(self.labels) - 1)
        known = (found >= 0) & (self.labels[pos] == found)
        scores = np.einsum("qd,qkd->qk", self.queries, self.vectors[pos])
        return scores, known


@dataclass(frozen=True)
class TuneResult:
    params: dict[str, Any]  # chosen search parameters
    target_recall: float
    recall_at_1: float
    recall_at_10: float
    meets_target: bool
    latency: LatencyStats
    query_source: str  # e.g. "held_out_items+recent_queries"
    recall_by_source: dict[str, float] = field(default_factory=dict)  # recall@k per query source
    n_queries: int = 0
    tried: tuple[tuple[dict[str, Any], float], ...] = field(default_factory=tuple)  # (params, min recall@k)

    def metrics(self) -> dict[str, Any]:
        """Flat dict for the registry."""
        return {
            "target_recall": self.target_recall,
            "recall_at_1": self.recall_at_1,
            "recall_at_10": self.recall_at_10,
            "meets_target": self.meets_target,
            "query_source": self.query_source,
            "recall_by_source": dict(self.recall_by_source),
            **{f"latency_{k}": v for k, v in asdict(self.latency).items() if k not in ("threads", "n_queries")},
            "tune_queries": self.n_queries,
            "threads": self.latency.threads,
            "tried": [{"params": p, "recall_at_10": r} for p, r in self.tried],
        }


def exact_neighbours(gallery: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Labels of the exact top-``k`` by inner product (BLAS-backed ``IndexFlatIP``)."""
    return _exact(gallery, labels, queries, k)[1]


def _exact(gallery: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    flat = faiss.IndexFlatIP(gallery.shape[1])
    flat.add(np.ascontiguousarray(gallery, dtype=np.float32))
    scores, idx = flat.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(gallery)))
    return scores, np.where(idx >= 0, np.asarray(labels)[np.clip(idx, 0, None)], -1)


def ground_truth(gallery: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int, source: str) -> GroundTruth:
    """Exact top-``k`` of (unit) ``queries`` over ``gallery`` whose rows carry ``labels``."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) > 1 and np.any(np.diff(labels) <= 0):
        order = np.argsort(labels)
        gallery, labels = gallery[order], labels[order]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    scores, top = _exact(gallery, labels, q, k)
    return GroundTruth(source, q, gallery, labels, top, scores)


def recall_at(found: np.ndarray, truth: GroundTruth | np.ndarray, k: int) -> float:
    """Mean share of the top-``k`` found that are true top-``k`` neighbours, ties with the k-th counted.

    With a plain label array as ``truth`` (no scores) it is |found ∩ truth| / k per query.
    """
    found = np.asarray(found)[:, :k]
    if not isinstance(truth, GroundTruth):
        t = np.asarray(truth)[:, :k]
        hits = [len(np.intersect1d(f[f >= 0], r[r >= 0])) / max(len(r[r >= 0]), 1) for f, r in zip(found, t, strict=True)]
        return float(np.mean(hits)) if hits else 1.0
    kk = min(k, truth.top_labels.shape[1])
    if kk == 0 or len(found) == 0:
        return 1.0
    scores, known = truth.exact_scores(found)
    kth = truth.top_scores[:, kk - 1]
    hit = known & (scores >= kth[:, None] - TIE_EPS)
    return float(np.mean(np.minimum(hit.sum(axis=1), kk) / kk))


def measure_latency(
    search: Callable[[np.ndarray, int], Any], queries: np.ndarray, k: int, *, max_single: int = 300,
    threads: int | None = None, single_threads: int = 1,
) -> LatencyStats:
    """Single-query latency percentiles (one query per call) and batch throughput (all at once).

    Single queries run on ``single_threads`` OpenMP threads (default 1, one query per core as a
    server would run them): faiss parallelises a lone IVF query over its probes, and on a busy
    2-core machine the thread hand-off costs more than the search. Batches use ``threads``.
    """
    n_threads = set_threads(single_threads)
    single = queries[:max_single]
    search(single[:1], k)  # warm-up: first call pays for lazy allocations
    times = np.empty(len(single))
    for i in range(len(single)):
        t0 = time.perf_counter()
        search(single[i : i + 1], k)
        times[i] = time.perf_counter() - t0
    n_threads = set_threads(threads)
    t0 = time.perf_counter()
    search(queries, k)
    batch_s = time.perf_counter() - t0
    return LatencyStats(
        p50_ms=float(np.percentile(times, 50) * 1e3),
        p99_ms=float(np.percentile(times, 99) * 1e3),
        mean_ms=float(times.mean() * 1e3),
        batch_qps=float(len(queries) / batch_s) if batch_s > 0 else float("inf"),
        single_qps=float(1.0 / times.mean()) if times.mean() > 0 else float("inf"),
        n_queries=len(queries),
        threads=n_threads,
        single_threads=single_threads,
    )


def ladder(ann: Any, k: int = 10) -> tuple[str, list[int]]:
    """The parameter that trades speed for recall in this index, and its values, cheapest first."""
    import faiss

    from embedding.index.build import _find

    if _find(ann.faiss_index, faiss.IndexHNSW) is not None:
        values = [v for v in EF_LADDER if v >= k]
        return "efSearch", (values if values and values[0] == k else [k, *values])  # efSearch >= k always
    ivf = _find(ann.faiss_index, faiss.IndexIVF)
    if ivf is not None:
        nlist = int(ivf.nlist)
        return "nprobe", [v for v in NPROBE_LADDER if v < nlist] + [nlist]
    return "", []


def measure(ann: Any, truths: list[GroundTruth], k: int = 10) -> dict[str, tuple[float, float]]:
    """(recall@1, recall@k) per query source at the index's current search parameters."""
    out = {}
    for t in truths:
        _, found = ann.search_labels(t.queries, k, normalize=False)
        out[t.source] = (recall_at(found, t, 1), recall_at(found, t, k))
    return out


def tune(
    ann: Any,
    truths: GroundTruth | list[GroundTruth],
    *,
    target_recall: float = DEFAULT_TARGET_RECALL,
    k: int = 10,
    threads: int | None = None,
    max_single: int = 300,
    start: dict[str, Any] | None = None,
) -> TuneResult:
    """Set ``ann.search_params`` to the cheapest setting reaching ``target_recall`` at ``k`` on every source.

    Settings are tried cheapest first (from ``start`` when given) and the first that meets the
    target wins. When none does, the most accurate is kept and ``meets_target`` is False.
    """
    truths = [truths] if isinstance(truths, GroundTruth) else list(truths)
    set_threads(threads)
    name, values = ladder(ann, k)
    base: dict[str, Any] = {"k_factor": K_FACTOR_REFINE} if "Refine" in ann.factory else {}
    if name and start and name in start:
        values = [v for v in values if v >= int(start[name])] or values[-1:]
    tried: list[tuple[dict[str, Any], float]] = []
    candidates = [base | {name: v} for v in values] if name else [dict(base)]
    best: tuple[float, dict[str, Any], dict[str, tuple[float, float]]] | None = None
    for params in candidates:
        ann.search_params = params
        per = measure(ann, truths, k)
        worst = min(r for _, r in per.values())
        tried.append((params, worst))
        log.info("%s -> recall@%d %.4f", params, k, worst)
        if best is None or worst > best[0]:
            best = (worst, params, per)
        if worst >= target_recall:
            best = (worst, params, per)
            break
    assert best is not None
    worst, chosen, per = best
    ann.search_params = chosen
    all_q = np.concatenate([t.queries for t in truths])
    latency = measure_latency(lambda x, kk: ann.search(x, kk), all_q, k, max_single=max_single, threads=threads)
    n = sum(len(t.queries) for t in truths)
    r1 = sum(per[t.source][0] * len(t.queries) for t in truths) / max(n, 1)
    r10 = sum(per[t.source][1] * len(t.queries) for t in truths) / max(n, 1)
    if worst < target_recall:
        log.warning("%s reaches recall@%d %.3f < target %.3f at its most accurate setting %s",
                    ann.factory, k, worst, target_recall, chosen)
    return TuneResult(
        params=chosen, target_recall=target_recall, recall_at_1=r1, recall_at_10=r10,
        meets_target=worst >= target_recall, latency=latency,
        query_source="+".join(t.source for t in truths),
        recall_by_source={t.source: per[t.source][1] for t in truths}, n_queries=n, tried=tuple(tried),
    )


def held_out_split(n: int, n_queries: int, *, seed: int = 0, newest_fraction: float = 0.2) -> np.ndarray:
    """Positions of items to hold out as tuning queries: a random sample of the newest items.

    Rows come in ingest order, so the last ``newest_fraction`` are the newest: tuning on them
    measures the index on data like what arrives next. At most a fifth of a small gallery is held out.
    """
    m = min(n_queries, n // 5)
    if m < 1:
        return np.zeros(0, np.int64)
    pool = max(m, int(np.ceil(newest_fraction * n)))
    rng = np.random.default_rng(seed)
    return np.sort(n - pool + rng.choice(pool, m, replace=False)).astype(np.int64)


def cpu_count() -> int:
    return os.cpu_count() or 1
