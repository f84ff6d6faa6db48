"""Turn an :class:`IndexChoice` into a trained, filled faiss index (wrapped in an id map)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from core.errors import ValidationError
from embedding.index.choice import IndexChoice

log = logging.getLogger(__name__)

# k-means quality stops improving past ~256 points per centroid (faiss guideline); more only costs time.
TRAIN_POINTS_PER_CENTROID = 64  # faiss guideline 30-256 per centroid; k-means time is linear in it
ADD_CHUNK = 65_536


@dataclass(frozen=True)
class BuildStats:
    build_seconds: float
    train_seconds: float
    threads: int
    num_vectors: int


def set_threads(threads: int | None) -> int:
    import faiss

    n = threads or os.cpu_count() or 1
    faiss.omp_set_num_threads(n)
    return n


def as_float32_matrix(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValidationError(f"vectors must be a 2-d array (n, dim), got shape {vectors.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValidationError(f"vectors have dimension {x.shape[1]} but the index expects {dim}")
    if not np.isfinite(x).all():
        raise ValidationError("vectors contain NaN or infinite values; fix the embedder output")
    return x


def normalized(x: np.ndarray) -> np.ndarray:
    """A unit-norm copy: inner product on unit vectors is cosine similarity."""
    import faiss

    y = np.array(x, dtype=np.float32, copy=True)
    faiss.normalize_L2(y)
    return y


def new_faiss_index(choice: IndexChoice, dim: int):
    """An empty ``IndexIDMap2`` around the factory index, ready for ``train``/``add_with_ids``."""
    import faiss

    base = faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT)
    hnsw = _find(base, faiss.IndexHNSW)
    if hnsw is not None and "efConstruction" in choice.params:
        hnsw.hnsw.efConstruction = int(choice.params["efConstruction"])
    return faiss.IndexIDMap2(base)


def _find(index, cls):
    """The first sub-index of type ``cls`` (through refine, pre-transform and id-map wrappers)."""
    import faiss

    idx = faiss.downcast_index(index)
    while idx is not None:
        if isinstance(idx, cls):
            return idx
        if isinstance(idx, faiss.IndexIDMap2 | faiss.IndexIDMap | faiss.IndexPreTransform):
            idx = faiss.downcast_index(idx.index)
        elif isinstance(idx, faiss.IndexRefine):
            idx = faiss.downcast_index(idx.base_index)
        else:
            return None
    return None


def enable_direct_map(index) -> None:
    """IVF indexes need a direct map to reconstruct vectors by id.

    Under ``IndexIDMap2`` faiss adds with sequential ids, which only the Array direct map records
    (a Hashtable map stays empty in faiss 1.15). Array maps cannot delete, so IVF removals fall
    back to tombstones like HNSW does.
    """
    import faiss

    ivf = _find(index, faiss.IndexIVF)
    if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
        ivf.make_direct_map(True)


def train_and_add(
    index,
    choice: IndexChoice,
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    threads: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> BuildStats:
    """Train (when the index needs it) on a sample, then add all vectors in chunks."""
    n_threads = set_threads(threads)
    t0 = time.perf_counter()
    train_s = 0.0
    if not index.is_trained:
        nlist = int(choice.params.get("nlist", 1))
        n_train = min(len(vectors), max(TRAIN_POINTS_PER_CENTROID * nlist, 10_000))
        rng = np.random.default_rng(seed)
        sample = vectors if n_train >= len(vectors) else vectors[np.sort(rng.choice(len(vectors), n_train, replace=False))]
        log.info("training %s on %d vectors", choice.factory, len(sample))
        index.train(sample)
        train_s = time.perf_counter() - t0
    enable_direct_map(index)
    from core.progress import progress as report_progress

    chunks = range(0, len(vectors), ADD_CHUNK)
    for start in report_progress(chunks, f"adding to {choice.factory}", total=len(chunks), unit="chunk",
                                 enabled=progress):
        index.add_with_ids(vectors[start : start + ADD_CHUNK], labels[start : start + ADD_CHUNK])
    return BuildStats(time.perf_counter() - t0, train_s, n_threads, len(vectors))
