"""Which faiss index to build: a pure function of collection size, dimension and budgets.

The thresholds are crossovers measured by ``benchmarks/index.py --crossover`` on the 2-core
reference machine (single-query latency at recall@10 >= 0.95 on held-out queries, clustered
low-intrinsic-dimension data; the table is in benchmarks/RESULTS.md, Index section):

* exact ``Flat`` while one query costs at most ``EXACT_MAX_WORK`` multiply-adds (n x dim): there
  exact search answers within about 2x of the best ANN index and in well under 0.1 ms, with
  perfect recall and no tuning (past it exact falls behind fast: 0.14 ms vs 0.05 at 10k x 128,
  50 ms vs 0.13 at 200k x 128);
* ``HNSW32,Flat`` for high-dimensional galleries (dim >= ``HNSW_MIN_DIM``) up to ``HNSW_MAX_N``
  vectors: at 10k x 384 it answered in 0.07 ms vs IVF's 0.10, at 40k x 384 they tied;
* ``IVF{K},Flat`` everywhere else: at 64 and 128 dimensions it answered as fast as or faster than
  HNSW32 at every measured size (5k-200k; 0.13 vs 0.25 ms at 200k x 128) and builds faster;
* under a memory budget: ``HNSW32,SQ8`` (1 byte/dim) where HNSW would be chosen, else IVF-Flat,
  else ``IVF{K},PQ{m}x4fs`` with an SQ8 refine step, without it only when that does not fit.

``choice_from_factory`` takes a faiss ``index_factory`` string from a user who knows what they
want. Every choice is inner product: embeddings are L2-normalised, so inner product is cosine.
Nothing here touches faiss; the builder turns the factory string into an index.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError, ValidationError

METRIC = "inner_product"
# Crossovers (benchmarks/index.py --crossover; see the module docstring).
EXACT_MAX_WORK = 500_000  # n x dim up to which exact search is chosen (within ~2x of ANN, < 0.1 ms)
HNSW_MIN_DIM = 256  # below this IVF-Flat answered as fast as or faster than HNSW32 at every measured size
HNSW_MAX_N = 100_000  # at 384-d HNSW led at 10k and tied IVF at 40k; past this IVF (faster build, 2x at 200k)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
# faiss warns below 39 training points per centroid; k-means needs them to place centroids well.
MIN_POINTS_PER_CENTROID = 39
ID_BYTES = 8  # per vector: our label/id table
# Single-query exact search runs at roughly this many multiply-adds per millisecond here; only
# used to estimate whether exact search would already meet a latency target.
FLAT_MADDS_PER_MS = 650_000


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


def hnsw_sq_bytes(n: int, dim: int, m: int) -> int:
    return int(n * (dim + 8 * m * (1 + 1 / m) + ID_BYTES))


def choose_index(
    n: int,
    dim: int,
    *,
    memory_budget_bytes: int | None = None,
    latency_target_ms: float | None = None,
    exact_max_n: int | None = None,
) -> IndexChoice:
    """Pick the index for ``n`` vectors of ``dim`` dimensions.

    ``memory_budget_bytes`` bounds the index structure in RAM (None: unbounded);
    ``latency_target_ms`` is the single-query latency that would make exact search good enough;
    ``exact_max_n`` overrides the measured exact-search limit with a plain size.
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
    exact_ok = n <= exact_max_n if exact_max_n is not None else n * dim <= EXACT_MAX_WORK
    if flat <= budget:
        if exact_ok:
            return IndexChoice(
                "Flat", METRIC, "flat", {}, flat,
                f"n x dim = {n} x {dim} <= {EXACT_MAX_WORK:,} multiply-adds per query: exact search answers "
                "within about 2x of the best ANN index and under 0.1 ms at this size (measured), with perfect "
                "recall and no tuning"
                if exact_max_n is None else f"n={n} <= {exact_max_n}: exact search",
            )
        if latency_target_ms is not None and flat_ms <= latency_target_ms:
            return IndexChoice(
                "Flat", METRIC, "flat", {}, flat,
                f"exact search is estimated at {flat_ms:.2f} ms per query, within the "
                f"{latency_target_ms} ms target",
            )

    m = HNSW_M
    if n <= HNSW_MAX_N and dim >= HNSW_MIN_DIM:
        size = hnsw_bytes(n, dim, m)
        if size <= budget:
            return IndexChoice(
                f"HNSW{m},Flat", METRIC, "hnsw", {"M": m, "efConstruction": HNSW_EF_CONSTRUCTION}, size,
                f"dim={dim} >= {HNSW_MIN_DIM}, n={n} <= {HNSW_MAX_N:,} and past the exact-search crossover: "
                f"HNSW{m} ({size / 2**20:.0f} MiB) gave the fastest single queries at such sizes (measured), "
                "tuned by efSearch",
            )
        size = hnsw_sq_bytes(n, dim, m)
        if size <= budget:
            return IndexChoice(
                f"HNSW{m},SQ8", METRIC, "hnsw", {"M": m, "efConstruction": HNSW_EF_CONSTRUCTION}, size,
                f"HNSW{m} with float vectors ({hnsw_bytes(n, dim, m) / 2**20:.0f} MiB) exceeds the "
                f"{budget / 2**20:.0f} MiB budget; 8-bit scalar codes ({size / 2**20:.0f} MiB) fit",
            )

    nlist = ivf_nlist(n)
    size = ivf_flat_bytes(n, dim, nlist)
    if size <= budget:
        return IndexChoice(
            f"IVF{nlist},Flat", METRIC, "ivf_flat", {"nlist": nlist}, size,
            (f"n={n}, dim={dim}: IVF with nlist={nlist} (4..16 x sqrt(N)) answered as fast as or faster than "
             f"HNSW at equal recall (measured: below {HNSW_MIN_DIM} dimensions at every size, above "
             f"{HNSW_MAX_N:,} vectors at any dimension) and builds faster; tuned by nprobe")
            if (n > HNSW_MAX_N or dim < HNSW_MIN_DIM) else
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


def choice_from_factory(factory: str, n: int, dim: int) -> IndexChoice:
    """An explicit faiss ``index_factory`` string (``--factory``), inner product, family read from it."""
    f = factory.strip()
    if not f:
        raise ValidationError("--factory is empty; give a faiss index_factory string such as 'HNSW32,Flat'")
    if "IDMap" in f:
        raise ValidationError(f"factory {f!r}: steward maps item ids itself; leave IDMap out")
    ivf = re.search(r"IVF(\d+)", f)
    hnsw = re.search(r"HNSW(\d+)", f)
    if ivf:
        family = "ivf_pq" if "PQ" in f.split("IVF", 1)[1] else "ivf_flat"
        params: dict[str, Any] = {"nlist": int(ivf.group(1))}
        if int(ivf.group(1)) > n:
            raise ValidationError(f"factory {f!r} asks for {ivf.group(1)} lists but there are only {n} vectors")
    elif hnsw:
        family, params = "hnsw", {"M": int(hnsw.group(1)), "efConstruction": HNSW_EF_CONSTRUCTION}
    elif f == "Flat":
        family, params = "flat", {}
    else:
        family, params = "custom", {}
    return IndexChoice(f, METRIC, family, params, 0, f"factory {f!r} given explicitly (--factory)")
