"""Which faiss index to build: a pure function of collection size, dimension and budgets.

The rules follow the faiss wiki "guidelines to choose an index" and autofaiss:

* exact ``Flat`` while the collection is small (or exact search already meets the latency target);
* ``HNSW{M},Flat`` when its graph fits the memory budget (fastest single queries at high recall);
* ``IVF{K},Flat`` with K a power of two between 4·√N and 16·√N when HNSW does not fit;
* ``IVF{K},PQ{m}x4fs`` (4-bit fast-scan product quantization) with an ``SQ8`` refine step when
  even raw vectors do not fit, dropping the refine step only when that does not fit either.
  The faiss guideline also suggests an OPQ rotation; with faiss-cpu 1.15.1 here, OPQ and 8-bit PQ
  training did not finish within a minute even at 8k x 64, while fast-scan PQ trains in well
  under a second, so the rotation is left out.

Every choice is inner product: embeddings are L2-normalised, so inner product is cosine.
Nothing here touches faiss; the builder turns the factory string into an index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError, ValidationError

METRIC = "inner_product"
EXACT_MAX_N = 10_000
HNSW_M = 32
HNSW_M_SMALL = 16
# Single-query exact search runs at roughly this many multiply-adds per millisecond on the
# 2-core reference machine (200k x 128 took 39 ms); used only to estimate whether exact search
# would already meet a latency target.
FLAT_MADDS_PER_MS = 650_000
# faiss warns below 39 training points per centroid; k-means needs them to place centroids well.
MIN_POINTS_PER_CENTROID = 39
ID_BYTES = 8  # int64 label stored per vector by the id map
# Past this size IVF-Flat beats HNSW on this hardware: HNSW's build grows superlinearly and, on
# large clustered galleries, needed efSearch 1536 for recall@10 0.95 (1M x 128: 465-675 s to build
# and tune, 5-22x faster than exact), while IVF4096,Flat trained in about a minute and reached
# recall@10 1.0 at nprobe 8, about 200x faster than exact (benchmarks/RESULTS.md, index section).
HNSW_MAX_N = 500_000


@dataclass(frozen=True)
class IndexChoice:
    factory: str  # faiss index_factory string (wrapped in an id map by the builder)
    metric: str
    family: str  # "flat" | "hnsw" | "ivf_flat" | "ivf_pq"
    params: dict[str, Any] = field(default_factory=dict)  # build parameters (M, nlist, pq_m, ...)
    estimated_bytes: int = 0
    reason: str = ""


def flat_bytes(n: int, dim: int) -> int:
    return n * (4 * dim + ID_BYTES)


def hnsw_bytes(n: int, dim: int, m: int) -> int:
    # Level-0 links cost 2*M int32 per vector; upper levels add about 1/M of that again.
    return int(n * (4 * dim + 8 * m * (1 + 1 / m) + ID_BYTES))


def ivf_nlist(n: int) -> int:
    """Power of two nearest 4·√N, kept inside [4·√N, 16·√N] and trainable from N points.

    The low end of the guideline's range: k-means costs grow with nlist² x points-per-centroid, and
    on 2 cores nlist 8192 at 1M vectors takes minutes where 4096 takes about 45 s; nprobe tuning
    recovers the recall.
    """
    root = math.sqrt(n)
    target = 4 * root
    nlist = 2 ** round(math.log2(target))
    nlist = max(nlist, 2 ** math.ceil(math.log2(4 * root)))
    nlist = min(nlist, 2 ** math.floor(math.log2(16 * root)))
    trainable = max(1, n // MIN_POINTS_PER_CENTROID)
    while nlist > trainable and nlist > 1:
        nlist //= 2
    return max(nlist, 1)


def ivf_flat_bytes(n: int, dim: int, nlist: int) -> int:
    return n * (4 * dim + ID_BYTES) + nlist * 4 * dim


def pq_m(dim: int) -> int:
    """Sub-quantizer count for 4-bit fast-scan PQ: the largest even divisor of dim up to dim/2
    (2-dimensional sub-vectors, dim/4 bytes per code)."""
    for m in range(dim // 2, 1, -1):
        if m % 2 == 0 and dim % m == 0:
            return m
    raise ConfigError(f"dim={dim} has no even divisor for product quantization; use an even embedding size")


def ivf_pq_bytes(n: int, dim: int, nlist: int, m: int, refine: bool) -> int:
    per_vector = m // 2 + ID_BYTES + (dim if refine else 0)  # 4-bit codes; SQ8 refine: 1 byte/dim
    return n * per_vector + nlist * 4 * dim


def estimated_flat_latency_ms(n: int, dim: int) -> float:
    return n * dim / FLAT_MADDS_PER_MS


def choose_index(
    n: int,
    dim: int,
    *,
    memory_budget_bytes: int | None = None,
    latency_target_ms: float | None = None,
    exact_max_n: int = EXACT_MAX_N,
) -> IndexChoice:
    """Pick the index for ``n`` vectors of ``dim`` dimensions.

    ``memory_budget_bytes`` bounds the index structure in RAM (None: unbounded);
    ``latency_target_ms`` is the single-query latency that would make exact search good enough.
    """
    if n < 1:
        raise ValidationError(f"cannot build an index over n={n} vectors; the gallery is empty")
    if dim < 1:
        raise ValidationError(f"vector dimension must be positive, got dim={dim}")
    if memory_budget_bytes is not None and memory_budget_bytes <= 0:
        raise ConfigError(f"memory budget must be positive, got {memory_budget_bytes} bytes")
    budget = memory_budget_bytes if memory_budget_bytes is not None else math.inf

    flat = flat_bytes(n, dim)
    flat_ms = estimated_flat_latency_ms(n, dim)
    if flat <= budget:
        if n <= exact_max_n:
            return IndexChoice(
                "Flat", METRIC, "flat", {}, flat,
                f"n={n} <= {exact_max_n}: exact search is cheap and needs no training or tuning",
            )
        if latency_target_ms is not None and flat_ms <= latency_target_ms:
            return IndexChoice(
                "Flat", METRIC, "flat", {}, flat,
                f"exact search is estimated at {flat_ms:.2f} ms per query, within the "
                f"{latency_target_ms} ms target",
            )

    for m in (HNSW_M, HNSW_M_SMALL) if n <= HNSW_MAX_N else ():
        size = hnsw_bytes(n, dim, m)
        if size <= budget:
            return IndexChoice(
                f"HNSW{m},Flat", METRIC, "hnsw", {"M": m, "efConstruction": 40}, size,
                f"n={n} is past exact search and HNSW{m} ({size / 2**20:.0f} MiB) fits the memory budget: "
                "fastest single queries at high recall, tuned by efSearch",
            )

    nlist = ivf_nlist(n)
    size = ivf_flat_bytes(n, dim, nlist)
    if size <= budget:
        return IndexChoice(
            f"IVF{nlist},Flat", METRIC, "ivf_flat", {"nlist": nlist}, size,
            (f"n={n} > {HNSW_MAX_N}: IVF with nlist={nlist} (4..16 x sqrt(N)) builds in minutes where HNSW "
             "takes far longer, and answers faster at the same recall; tuned by nprobe") if n > HNSW_MAX_N else
            (f"HNSW does not fit {budget / 2**20:.0f} MiB but raw vectors do: IVF with nlist={nlist} "
             "(4..16 x sqrt(N)), tuned by nprobe"),
        )

    m = pq_m(dim)
    for refine in (True, False):
        size = ivf_pq_bytes(n, dim, nlist, m, refine)
        if size <= budget:
            factory = f"IVF{nlist},PQ{m}x4fs" + (",Refine(SQ8)" if refine else "")
            return IndexChoice(
                factory, METRIC, "ivf_pq",
                {"nlist": nlist, "pq_m": m, "refine": "SQ8" if refine else None}, size,
                f"raw vectors ({flat / 2**20:.0f} MiB) exceed the {budget / 2**20:.0f} MiB budget: "
                f"IVF-PQ (fast-scan) at {m // 2} bytes/vector"
                + (", re-ranked with SQ8 codes to recover recall" if refine else ", no room for a refine step"),
            )
    raise ConfigError(
        f"no index fits a memory budget of {memory_budget_bytes} bytes for n={n}, dim={dim}; "
        f"the smallest (IVF-PQ) needs about {ivf_pq_bytes(n, dim, nlist, m, False)} bytes: raise the budget"
    )
