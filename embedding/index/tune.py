"""Tune search parameters to a recall target and measure what the index delivers.

Recall@k is |ANN top-k ∩ exact top-k| / k, averaged over held-out queries, with the exact answer
from ``IndexFlatIP`` over the same vectors. The smallest ``nprobe`` / ``efSearch`` that meets the
target wins (recall grows with both, so a binary search over a ladder of values suffices).
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
K_FACTOR_REFINE = 4  # re-rank 4*k candidates with the finer codes


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
class TuneResult:
    params: dict[str, Any]  # chosen search parameters
    target_recall: float
    recall_at_1: float
    recall_at_10: float
    meets_target: bool
    latency: LatencyStats
    tried: tuple[tuple[dict[str, Any], float], ...] = field(default_factory=tuple)  # (params, recall@10)

    def metrics(self) -> dict[str, Any]:
        """Flat dict for the registry."""
        return {
            "target_recall": self.target_recall,
            "recall_at_1": self.recall_at_1,
            "recall_at_10": self.recall_at_10,
            "meets_target": self.meets_target,
            **{f"latency_{k}": v for k, v in asdict(self.latency).items() if k not in ("threads", "n_queries")},
            "tune_queries": self.latency.n_queries,
            "threads": self.latency.threads,
            "tried": [{"params": p, "recall_at_10": r} for p, r in self.tried],
        }


def exact_neighbours(gallery: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Labels of the exact top-``k`` by inner product (BLAS-backed ``IndexFlatIP``)."""
    import faiss

    flat = faiss.IndexFlatIP(gallery.shape[1])
    flat.add(np.ascontiguousarray(gallery, dtype=np.float32))
    _, idx = flat.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(gallery)))
    return np.where(idx >= 0, labels[np.clip(idx, 0, None)], -1)


def drop_self(found: np.ndarray, self_labels: np.ndarray | None, k: int) -> np.ndarray:
    """Remove each query's own label (leave-one-out queries taken from the gallery); keep k columns."""
    if self_labels is None:
        return found[:, :k]
    out = np.full((len(found), k), -1, dtype=np.int64)
    for q in range(len(found)):
        row = found[q][found[q] != self_labels[q]]
        out[q, : min(k, len(row))] = row[:k]
    return out


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean |found[:, :k] ∩ truth[:, :k]| / k (truth rows with fewer than k items count what exists)."""
    hits = 0.0
    for f, t in zip(found[:, :k], truth[:, :k], strict=True):
        t = t[t >= 0]
        if len(t):
            hits += len(np.intersect1d(f[f >= 0], t)) / len(t)
    return hits / len(found) if len(found) else 1.0


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


def ladder(ann: Any) -> tuple[str, list[int]]:
    """The parameter that trades speed for recall in this index, and its candidate values."""
    if ann.family == "hnsw":
        return "efSearch", list(EF_LADDER)
    if ann.family in ("ivf_flat", "ivf_pq"):
        nlist = int(ann.meta.get("choice_params", {}).get("nlist") or _nlist(ann))
        values = [1]
        while values[-1] < nlist:
            values.append(min(values[-1] * 2, nlist))
        return "nprobe", values
    return "", []


def _nlist(ann: Any) -> int:
    import faiss

    from embedding.index.build import _find

    ivf = _find(ann.faiss_index, faiss.IndexIVF)
    return int(ivf.nlist) if ivf is not None else 1


def tune(
    ann: Any,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    target_recall: float = DEFAULT_TARGET_RECALL,
    k: int = 10,
    self_labels: np.ndarray | None = None,
    threads: int | None = None,
    max_single: int = 300,
) -> TuneResult:
    """Set ``ann.search_params`` to the cheapest setting reaching ``target_recall`` at ``k``.

    ``truth`` holds exact top-``k`` labels per query (self excluded when ``self_labels`` is given,
    i.e. when the queries are gallery items). When no setting reaches the target, the most
    accurate one is kept and ``meets_target`` is False.
    """
    set_threads(threads)
    extra = 1 if self_labels is not None else 0

    def evaluate(params: dict[str, Any]) -> tuple[float, float]:
        ann.search_params = params
        _, found = ann.search_labels(queries, k + extra)
        found = drop_self(found, self_labels, k)
        return recall_at(found, truth, 1), recall_at(found, truth, k)

    name, values = ladder(ann)
    base: dict[str, Any] = {"k_factor": K_FACTOR_REFINE} if "Refine" in ann.factory else {}
    tried: list[tuple[dict[str, Any], float]] = []
    if not name:
        r1, r10 = evaluate(base)
        tried.append((dict(base), r10))
        chosen = dict(base)
    else:
        if name == "efSearch":
            values = [v for v in values if v >= k] or [k]
        results: dict[int, tuple[float, float]] = {}

        def at(i: int) -> tuple[float, float]:
            if i not in results:
                results[i] = evaluate(base | {name: values[i]})
                tried.append((base | {name: values[i]}, results[i][1]))
                log.info("%s=%d -> recall@%d %.4f", name, values[i], k, results[i][1])
            return results[i]

        lo, hi = 0, len(values) - 1
        if at(hi)[1] < target_recall:
            best = hi
        else:
            while lo < hi:  # smallest index meeting the target
                mid = (lo + hi) // 2
                if at(mid)[1] >= target_recall:
                    hi = mid
                else:
                    lo = mid + 1
            best = lo
        r1, r10 = at(best)
        chosen = base | {name: values[best]}
    ann.search_params = chosen
    latency = measure_latency(
        lambda x, kk: ann.search_labels(x, kk), queries, k, max_single=max_single, threads=threads
    )
    if r10 < target_recall:
        log.warning("%s reaches recall@%d %.3f < target %.3f at its most accurate setting %s",
                    ann.factory, k, r10, target_recall, chosen)
    return TuneResult(
        params=chosen,
        target_recall=target_recall,
        recall_at_1=r1,
        recall_at_10=r10,
        meets_target=r10 >= target_recall,
        latency=latency,
        tried=tuple(tried),
    )


def leave_one_out_sample(
    ann: Any, n_queries: int, *, seed: int = 0, k: int = 10,
    gallery: np.ndarray | None = None, labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries drawn from the index's own items with exact truth excluding the query itself.

    Returns (queries, self_labels, truth). Without ``gallery``/``labels`` the vectors are
    reconstructed from the index, so for compressed indexes the truth is then on the stored codes
    (it measures search error, not compression error).
    """
    if gallery is None or labels is None:
        labels = ann.live_labels()
        gallery = ann.vectors_of_labels(labels)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(labels), min(n_queries, len(labels)), replace=False)
    queries = gallery[pick]
    self_labels = labels[pick]
    truth = drop_self(exact_neighbours(gallery, labels, queries, k + 1), self_labels, k)
    return queries, self_labels, truth


def cpu_count() -> int:
    return os.cpu_count() or 1
