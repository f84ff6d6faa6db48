"""Turn an :class:`IndexChoice` into a trained faiss index; vector checks shared by build and update."""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from core.errors import ValidationError
from embedding.index.choice import IndexChoice

log = logging.getLogger(__name__)

# k-means quality stops improving past ~256 points per centroid (faiss guideline); more only costs time.
TRAIN_POINTS_PER_CENTROID = 40  # faiss guideline 30-256 per centroid (it warns below 39); k-means time is linear in it
# k-means iterations for IVF centroids: faiss defaults to 25; the centroids only route queries and
# nprobe tuning absorbs the difference, while training dominated build time at 1M (2 cores).
KMEANS_ITERATIONS = 10
ZERO_NORM = 1e-12  # below this a vector counts as zero


def _available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container), not the host's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> int:
    import faiss

    n = threads or _available_cpus()
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


def checked_vectors(item_ids: np.ndarray, vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Unit-norm float32 copy of ``vectors`` paired with ``item_ids``; zero vectors are refused.

    A zero vector has no direction: cosine similarity to it is undefined and faiss would file it
    under an arbitrary list or graph node, so it is refused with the ids that carry one.
    """
    x = as_float32_matrix(vectors, dim)
    if len(item_ids) != len(x):
        raise ValidationError(f"{len(item_ids)} item ids but {len(x)} vectors; they must pair up")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    zero = norms <= ZERO_NORM
    if zero.any():
        bad = np.asarray(item_ids)[zero][:5].tolist()
        raise ValidationError(
            f"{int(zero.sum())} vectors have zero norm (item ids {bad}{'...' if zero.sum() > 5 else ''}): "
            "cosine search cannot place them; fix the embedder input for these items or remove them"
        )
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


def new_faiss_index(choice: IndexChoice, dim: int):
    """An empty faiss index for the factory string (inner product), ready for ``train``/``add``."""
    import faiss

    try:
        index = faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValidationError(f"faiss cannot build index factory {choice.factory!r} at dim {dim}: {e}") from e
    hnsw = _find(index, faiss.IndexHNSW)
    if hnsw is not None and "efConstruction" in choice.params:
        hnsw.hnsw.efConstruction = int(choice.params["efConstruction"])
    return index


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


def prepare_for_add(index, *, by_id: bool) -> None:
    """IVF indexes need a direct map to reconstruct vectors by label.

    A bare IVF index is filled with ``add_with_ids`` (our labels), which only the Hashtable map
    records and which lets ``remove_ids`` delete; IVF inside a wrapper is filled with sequential
    ``add`` and takes the cheaper Array map.
    """
    import faiss

    ivf = _find(index, faiss.IndexIVF)
    if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable if by_id else faiss.DirectMap.Array)


def train(index, choice: IndexChoice, vectors: np.ndarray, *, seed: int = 0) -> float:
    """Train on a sample when the index needs it; returns the seconds spent."""
    if index.is_trained:
        return 0.0
    t0 = time.perf_counter()
    nlist = int(choice.params.get("nlist", 1))
    n_train = min(len(vectors), max(TRAIN_POINTS_PER_CENTROID * nlist, 10_000))
    rng = np.random.default_rng(seed)
    sample = vectors if n_train >= len(vectors) else vectors[np.sort(rng.choice(len(vectors), n_train, replace=False))]
    import faiss

    ivf = _find(index, faiss.IndexIVF)
    if ivf is not None:
        ivf.cp.niter = KMEANS_ITERATIONS
    log.info("training %s on %d vectors", choice.factory, len(sample))
    index.train(sample)
    return time.perf_counter() - t0
