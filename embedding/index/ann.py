"""``AnnIndex``: a faiss index addressed by ``item_id`` strings, with add/update/remove and a file format.

Labels are positions: the i-th vector ever added gets label i, and a label is never reused (an
updated item gets a new label, its old one dies). The id table is therefore a numpy array indexed
by label (label -> item id), so mapping a search's labels to item ids is one fancy-index; the
reverse lookup (item id -> label) is a sorted copy of the live ids searched with
``np.searchsorted``, rebuilt lazily after a change. No Python dict holds one entry per item.

faiss stores the same labels: bare IVF indexes get them through ``add_with_ids`` (and can then
delete with ``remove_ids``); every other type assigns sequential ids on ``add``, which equal the
labels because nothing is ever removed from them. Removed items of those types stay in faiss as
tombstones: a bool array over labels says which are live, and one ``IDSelectorBitmap`` over it is
built after each change (never per search) and passed with the tuned search parameters.

File layout (one artifact, memory-mappable): the faiss index as ``faiss.write_index`` writes it,
then a JSON header and the id table, then a fixed footer. faiss reads from the start and ignores
what follows, so ``faiss.read_index(path, IO_FLAG_MMAP_IFC)`` maps the file as is. The header
carries the sha256 of the faiss part and of the id table; a mismatch is refused on load.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ArtifactIntegrityError, ConflictError, NotFoundError, ValidationError
from embedding.index.build import (
    _find,
    as_float32_matrix,
    checked_vectors,
    new_faiss_index,
    normalized,
    prepare_for_add,
    set_threads,
    train,
)
from embedding.index.choice import METRIC, IndexChoice, choose_index

log = logging.getLogger(__name__)

MAGIC = b"STWDIDX1"
FOOTER = struct.Struct("<QQ8s")  # faiss part length, metadata length, magic
FORMAT_VERSION = 2  # 2: labels are positions, id table is an array, tombstones a bitmap
OVERFETCH = 4  # first pass of a filtered search asks for k * OVERFETCH candidates
EXACT_FILTER_MAX = 50_000  # below this many passing items a filtered search scans them exactly
MAX_ESCALATIONS = 6  # a short answer retries with efSearch/nprobe doubled up to this many times
# A query whose squared norm is within this of 1 is searched as given: cosine scores move by at most
# ~5e-6, well under the tie tolerance of tuning (1e-5), and the copy/scale is skipped.
UNIT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SearchResult:
    item_ids: list[list[str]]  # per query, best first; shorter than k only when fewer items qualify
    scores: np.ndarray  # (nq, k) inner products (cosine), -inf where no item was found
    # Queries answered with fewer than k items (only when the index holds fewer than k items that
    # qualify); callers report it rather than pass a short answer off as complete.
    short: tuple[int, ...] = field(default_factory=tuple)


class AnnIndex:
    """A searchable set of (item_id, vector) pairs; cosine similarity via inner product."""

    def __init__(
        self,
        index: Any,
        *,
        factory: str,
        family: str,
        item_ids: np.ndarray,
        live: np.ndarray,
        search_params: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        read_only: bool = False,
    ) -> None:
        import faiss

        self._index = index
        self.factory = factory
        self.family = family
        self._ids = np.asarray(item_ids, dtype=str)  # label -> item id (dead labels keep theirs)
        self._live = np.asarray(live, dtype=bool).copy()  # label -> still in the index
        if len(self._ids) != len(self._live):
            raise ArtifactIntegrityError("id table and live bitmap differ in length; the index file is corrupted")
        top = faiss.downcast_index(index)
        # Bare IVF stores our labels and can delete them; everything else keeps sequential ids.
        self._by_id = isinstance(top, faiss.IndexIVF)
        self.meta: dict[str, Any] = dict(meta or {})
        self.read_only = read_only
        self._bind(index)
        self._faiss = faiss
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._n_live = int(self._live.sum())
        self._search_params: dict[str, Any] = dict(search_params or {})
        self._refresh()

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        item_ids: Sequence[str],
        vectors: np.ndarray,
        choice: IndexChoice | None = None,
        *,
        threads: int | None = None,
        progress: bool = False,
        **choice_kwargs: Any,
    ) -> AnnIndex:
        """Choose (unless given), train and fill an index in one add; vectors are normalised first."""
        import time

        ids = np.asarray([str(i) for i in item_ids], dtype=str)
        x = checked_vectors(ids, vectors)
        if len(np.unique(ids)) != len(ids):
            raise ValidationError("item ids must be unique within one build; deduplicate the gallery first")
        choice = choice or choose_index(len(x), x.shape[1], **choice_kwargs)
        n_threads = set_threads(threads)
        t0 = time.perf_counter()
        index = new_faiss_index(choice, x.shape[1])
        train_s = train(index, choice, x)
        ann = cls(index, factory=choice.factory, family=choice.family, item_ids=ids[:0],
                  live=np.zeros(0, bool))
        ann._append(ids, x)  # one add: HNSW graphs built in chunks came out measurably worse
        ann.meta = {
            "dim": int(x.shape[1]),
            "choice_reason": choice.reason,
            "choice_params": choice.params,
            "build_seconds": time.perf_counter() - t0,
            "train_seconds": train_s,
            "threads": n_threads,
        }
        return ann

    def compact(self) -> None:
        """Drop dead vectors in place: same trained structure (``clone_index`` + ``reset``), one add.

        Labels are renumbered; compressed indexes re-encode their own reconstructions, which
        round-trips (a code's decoded vector encodes back to itself).
        """
        import faiss

        self._check_writable()
        labels = self.live_labels()
        x = self.vectors_of_labels(labels)
        ids = self._ids[labels]
        index = faiss.clone_index(self._index)
        index.reset()
        self._index = index
        self._bind(index)
        self._ids, self._live, self._n_live = ids[:0], np.zeros(0, bool), 0
        self._append(ids, x)
        self.meta["compactions"] = int(self.meta.get("compactions", 0)) + 1

    def _bind(self, index: Any) -> None:
        """Cache what every search touches: the dimension and the SWIG ``search_c`` of the index.

        ``search_c`` is the C++ ``Index::search`` itself. faiss's Python ``search`` wraps it with
        argument checks and output allocation (done here once, cheaper), and pytorch-metric-learning
        (imported by training) swaps ``search`` for a torch wrapper that drops ``params``; neither
        touches ``search_c``.
        """
        import faiss

        self._dim = int(index.d)
        self._search_c = index.search_c
        self._ptr = faiss.swig_ptr
        self._norm_sq = faiss.fvec_norm_L2sqr

    # ------------------------------------------------------------------ properties
    @property
    def ntotal(self) -> int:
        """Live items (tombstoned vectors excluded)."""
        return self._n_live

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def tombstone_count(self) -> int:
        """Removed vectors still stored in faiss (types that cannot delete)."""
        return int(self._index.ntotal) - self._n_live

    @property
    def faiss_index(self) -> Any:
        return self._index

    @property
    def search_params(self) -> dict[str, Any]:
        return dict(self._search_params)

    @search_params.setter
    def search_params(self, params: dict[str, Any]) -> None:
        self._search_params = dict(params)
        self._refresh()

    def item_ids(self) -> list[str]:
        return self._ids[self._live].tolist()

    def __contains__(self, item_id: object) -> bool:
        return bool(self._lookup(np.asarray([str(item_id)]))[1][0])

    def __len__(self) -> int:
        return self.ntotal

    # ------------------------------------------------------------------ lookups
    def _lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, found) for item ids: binary search in the sorted live ids."""
        if self._sorted is None:
            live = np.flatnonzero(self._live)
            order = np.argsort(self._ids[live], kind="stable")
            self._sorted = (self._ids[live][order], live[order].astype(np.int64))
        keys, labels = self._sorted
        if len(keys) == 0:
            return np.full(len(ids), -1, np.int64), np.zeros(len(ids), bool)
        pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        found = keys[pos] == ids
        return np.where(found, labels[pos], -1), found

    def label_of(self, item_id: str) -> int:
        labels, found = self._lookup(np.asarray([str(item_id)]))
        if not found[0]:
            raise NotFoundError(f"item_id {item_id!r} is not in the index")
        return int(labels[0])

    def labels_of(self, item_ids: Sequence[str]) -> np.ndarray:
        ids = np.asarray([str(i) for i in item_ids], dtype=str)
        labels, found = self._lookup(ids)
        if not found.all():
            missing = ids[~found][:5].tolist()
            raise NotFoundError(f"{int((~found).sum())} item ids are not in the index, e.g. {missing}")
        return labels

    def item_of(self, label: int) -> str | None:
        lab = int(label)
        return str(self._ids[lab]) if 0 <= lab < len(self._live) and self._live[lab] else None

    def live_labels(self) -> np.ndarray:
        return np.flatnonzero(self._live).astype(np.int64)

    def vectors_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """Stored vectors (reconstructed: approximate for compressed indexes)."""
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if len(labels) == 0:
            return np.empty((0, self.dim), np.float32)
        return np.asarray(self._index.reconstruct_batch(labels), dtype=np.float32)

    def vector_of(self, item_id: str) -> np.ndarray:
        return self.vectors_of_labels(np.array([self.label_of(item_id)]))[0]

    # ------------------------------------------------------------------ mutation
    def _check_writable(self) -> None:
        if self.read_only:
            raise ConflictError("this index was loaded memory-mapped (read-only); load it with mmap=False to modify")

    def _append(self, ids: np.ndarray, x: np.ndarray) -> None:
        """Add normalised vectors under fresh labels."""
        start = len(self._live)
        labels = np.arange(start, start + len(ids), dtype=np.int64)
        if len(ids):
            prepare_for_add(self._index, by_id=self._by_id)
            if self._by_id:
                self._index.add_with_ids(x, labels)
            else:
                if int(self._index.ntotal) != start:  # pragma: no cover - would break label == position
                    raise ConflictError(f"faiss holds {self._index.ntotal} vectors but {start} labels were given out")
                self._index.add(x)
        self._ids = np.concatenate([self._ids, ids.astype(str)]) if len(self._ids) else ids.astype(str)
        self._live = np.concatenate([self._live, np.ones(len(ids), bool)])
        self._n_live += len(ids)
        self._changed()

    def add(self, item_ids: Sequence[str], vectors: np.ndarray) -> tuple[int, int]:
        """Add items; ids already present are updated (old vector replaced). Returns (added, updated)."""
        self._check_writable()
        ids = np.asarray([str(i) for i in item_ids], dtype=str)
        x = checked_vectors(ids, vectors, self.dim)
        if len(np.unique(ids)) != len(ids):
            raise ValidationError("item ids must be unique within one add call")
        labels, found = self._lookup(ids)
        self._drop_labels(labels[found])
        self._append(ids, x)
        return int((~found).sum()), int(found.sum())

    def remove(self, item_ids: Iterable[str]) -> int:
        """Remove items (unknown ids are ignored); returns how many were removed."""
        self._check_writable()
        ids = np.asarray([str(i) for i in item_ids], dtype=str)
        if len(ids) == 0:
            return 0
        labels, found = self._lookup(np.unique(ids))
        self._drop_labels(labels[found])
        return int(found.sum())

    def _drop_labels(self, labels: np.ndarray) -> None:
        if len(labels) == 0:
            return
        import faiss

        labels = np.ascontiguousarray(labels, dtype=np.int64)
        self._live[labels] = False
        self._n_live -= len(labels)
        if self._by_id:
            try:  # IVF-Flat/SQ with a hashtable direct map deletes; fast-scan lists cannot
                removed = self._index.remove_ids(faiss.IDSelectorArray(len(labels), faiss.swig_ptr(labels)))
                if removed != len(labels):  # pragma: no cover - would mean the table and faiss disagree
                    raise ConflictError(f"faiss removed {removed} of {len(labels)} vectors; rebuild the index")
            except RuntimeError:
                log.debug("%s cannot delete; keeping %d tombstones", self.factory, len(labels))
        self._changed()

    def _changed(self) -> None:
        self._sorted = None
        self._refresh()

    # ------------------------------------------------------------------ search parameters
    def _refresh(self) -> None:
        """Set the tuned values on the index and rebuild the tombstone selector, once per change.

        Without tombstones a search passes no SearchParameters at all: the tuned values live on the
        faiss index itself, so the call is the very one a hand-written faiss search makes. With
        tombstones the selector has to travel in SearchParameters, with the same values.
        """
        import faiss

        self._keep: list[Any] = []
        sel = None
        if int(self._index.ntotal) > self._n_live:
            self._bits = np.packbits(self._live, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(self._bits), faiss.swig_ptr(self._bits))
            self._keep.append(sel)
        self._sel = sel
        self._set_index_level(self._search_params)
        self._params = None if sel is None else self._params_tree(self._search_params, sel, self._keep)
        self._reach = self._reach_of(self._search_params)

    def _set_index_level(self, values: dict[str, Any]) -> None:
        """The values ``_params_tree`` would pass, set on the index tree (faiss's defaults when untuned)."""
        import faiss

        idx = faiss.downcast_index(self._index)
        while idx is not None:
            if isinstance(idx, faiss.IndexRefine):
                idx.k_factor = float(values.get("k_factor", 4)) if values else 1.0
                idx = faiss.downcast_index(idx.base_index)
            elif isinstance(idx, faiss.IndexPreTransform):
                idx = faiss.downcast_index(idx.index)
            else:
                if isinstance(idx, faiss.IndexIVF):
                    idx.nprobe = int(values.get("nprobe", 1))
                elif isinstance(idx, faiss.IndexHNSW):
                    idx.hnsw.efSearch = int(values.get("efSearch", 16))
                return

    def _reach_of(self, params: dict[str, Any]) -> int:
        """Largest k the current parameters can answer in full (HNSW: efSearch)."""
        if self.family == "hnsw" or "HNSW" in self.factory.split(",")[0]:
            return int(params.get("efSearch", 16))
        return 1 << 62

    def _params_tree(self, values: dict[str, Any], sel: Any, keep: list[Any]) -> Any:
        """faiss SearchParameters for the index tree; ``keep`` holds the SWIG objects alive."""
        import faiss

        if sel is None and not values:
            return None

        def walk(idx: Any) -> Any:
            idx = faiss.downcast_index(idx)
            if isinstance(idx, faiss.IndexRefine):
                p = faiss.IndexRefineSearchParameters(
                    k_factor=float(values.get("k_factor", 4)), base_index_params=walk(idx.base_index))
            elif isinstance(idx, faiss.IndexPreTransform):
                p = faiss.SearchParametersPreTransform(index_params=walk(idx.index))
            elif isinstance(idx, faiss.IndexIVF):
                p = faiss.SearchParametersIVF(nprobe=int(values.get("nprobe", 1)))
            elif isinstance(idx, faiss.IndexHNSW):
                p = faiss.SearchParametersHNSW(efSearch=int(values.get("efSearch", 16)))
            else:
                p = faiss.SearchParameters()
            if sel is not None and not isinstance(idx, faiss.IndexRefine | faiss.IndexPreTransform):
                p.sel = sel
            keep.append(p)  # SWIG does not keep sub-objects alive
            return p

        return walk(self._index)

    def _escalated(self, k: int, step: int, keep: list[Any]) -> Any:
        """Parameters reaching further than the tuned ones, for a call that came back short."""
        values = dict(self._search_params)
        if "efSearch" in values or self._reach < (1 << 62):
            values["efSearch"] = max(int(values.get("efSearch", 16)), k) * (2**step)
        if "nprobe" in values or self._by_id:
            ivf = _find_ivf(self._index)
            nlist = int(ivf.nlist) if ivf is not None else 1
            values["nprobe"] = min(nlist, max(int(values.get("nprobe", 1)), 1) * (2 ** max(step, 1)))
        return self._params_tree(values, self._sel, keep)

    # ------------------------------------------------------------------ search
    def _prepare(self, vectors: np.ndarray, normalize: bool) -> np.ndarray:
        """Queries as a C-contiguous float32 (nq, dim) array of unit rows.

        Unit queries (what steward's embedders return) are searched as given, without a copy;
        other rows are scaled to unit norm. This runs on every search, so the single-query case
        takes its squared norm with one faiss C call (numpy calls cost microseconds each on tiny arrays).
        """
        x = vectors
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim != 2 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32)
            if x.ndim == 1:
                x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self._dim:
            as_float32_matrix(x, self._dim)  # raises the explanatory ValidationError
        if not normalize:
            return x
        if x.shape[0] == 1:
            sq = self._norm_sq(self._ptr(x), self._dim)  # a C call: ~4x cheaper than numpy's dot here
            if abs(sq - 1.0) <= UNIT_TOLERANCE:  # False for NaN too
                return x
            if not math.isfinite(sq):
                raise ValidationError("query vectors contain NaN or infinite values")
            return x * np.float32(1.0 / math.sqrt(sq)) if sq > 0 else x.copy()
        sq = np.einsum("ij,ij->i", x, x)
        if len(sq) and float(np.abs(sq - 1.0).max()) <= UNIT_TOLERANCE:
            return x
        x = x.copy()
        self._faiss.normalize_L2(x)  # zero rows stay zero
        if not np.isfinite(x).all():
            raise ValidationError("query vectors contain NaN or infinite values")
        return x

    def _raw_search(self, x: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """The C++ search into fresh output arrays (``x``: C-contiguous float32, see ``_bind``)."""
        n = x.shape[0]
        scores = np.empty((n, k), np.float32)
        labels = np.empty((n, k), np.int64)
        ptr = self._ptr
        self._search_c(n, ptr(x), k, ptr(scores), ptr(labels), params)
        return scores, labels

    def _faiss_search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw faiss call with the cached parameters; short rows retried with a wider reach."""
        if k <= self._reach:
            scores, labels = self._raw_search(x, k, self._params)
        else:
            keep: list[Any] = []
            scores, labels = self._raw_search(x, k, self._escalated(k, 0, keep))
        want = min(k, self._n_live)
        if want > 0 and (labels[0, want - 1] < 0 if len(labels) == 1 else labels[:, want - 1].min() < 0):
            scores, labels = self._complete(x, k, want, scores, labels)
        return scores, labels

    def _complete(self, x: np.ndarray, k: int, want: int, scores: np.ndarray, labels: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Rows with fewer than ``want`` results: search them again reaching further, then exactly."""
        rows = np.flatnonzero(labels[:, want - 1] < 0)
        for step in range(1, MAX_ESCALATIONS + 1):
            keep: list[Any] = []
            s2, l2 = self._raw_search(np.ascontiguousarray(x[rows]), k, self._escalated(k, step, keep))
            scores[rows], labels[rows] = s2, l2
            rows = rows[l2[:, want - 1] < 0]
            if len(rows) == 0:
                return scores, labels
        s2, l2 = self._exact_among(self.live_labels(), x[rows], k)
        scores[rows], labels[rows] = s2, l2
        return scores, labels

    def search_labels(
        self, vectors: np.ndarray, k: int, *, normalize: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw faiss search: (scores, labels), label -1 (score -inf) where nothing was found."""
        if k < 1:
            raise ValidationError(f"k must be at least 1, got {k}")
        scores, labels = self._faiss_search(self._prepare(vectors, normalize), k)
        return np.where(labels < 0, np.float32(-np.inf), scores), labels

    def _result(self, scores: np.ndarray, labels: np.ndarray, k: int) -> SearchResult:
        """Vectorised label -> item id mapping (rows trimmed only when the index has < k items)."""
        # faiss puts gaps last: a full last column means no gaps
        if (labels[0, -1] >= 0) if len(labels) == 1 else (labels[:, -1].min() >= 0):
            return SearchResult(self._ids[labels].tolist(), scores, ())
        ids = self._ids[np.maximum(labels, 0)].tolist()
        bad = labels < 0
        counts = (~bad).sum(axis=1)
        short = tuple(np.flatnonzero(counts < k).tolist())
        return SearchResult([row[:c] for row, c in zip(ids, counts.tolist(), strict=True)],
                            np.where(bad, np.float32(-np.inf), scores), short)

    def search_one(self, vector: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        """Single-query path: (item ids, scores) for one vector, nothing else on the way."""
        scores, labels = self._faiss_search(self._prepare(vector, True), k)
        lab = labels[0]
        if lab[-1] < 0:
            lab = lab[lab >= 0]
        return self._ids[lab].tolist(), scores[0, : len(lab)]

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filter: Callable[[str], bool] | None = None,
        *,
        exclude: Sequence[str | None] | None = None,
    ) -> SearchResult:
        """Top-``k`` items per query vector, optionally only items for which ``filter(item_id)`` is true.

        ``exclude`` names one item per query to leave out of its answer (used by ``search_ids``).
        """
        if k < 1:
            raise ValidationError(f"k must be at least 1, got {k}")
        x = self._prepare(vectors, True)
        if filter is not None:
            return self._filtered(x, k, filter, exclude)
        if exclude is None:
            scores, labels = self._faiss_search(x, k)
            return self._result(scores, labels, k)
        excl = self._lookup(np.asarray([e if e is not None else "" for e in exclude], dtype=str))[0]
        scores, labels = self._faiss_search(x, k + 1)
        return self._result(*_drop(scores, labels, excl, k), k)

    def search_ids(
        self, item_ids: Sequence[str], k: int, filter: Callable[[str], bool] | None = None
    ) -> SearchResult:
        """Neighbours of items already in the index (each query item itself is left out)."""
        ids = [str(i) for i in item_ids]
        vectors = self.vectors_of_labels(self.labels_of(ids))
        return self.search(vectors, k, filter, exclude=ids)

    # ------------------------------------------------------------------ filtered search (slow path)
    def _filtered(self, x: np.ndarray, k: int, filter: Callable[[str], bool],
                  exclude: Sequence[str | None] | None) -> SearchResult:
        excl = (self._lookup(np.asarray([e or "" for e in exclude], dtype=str))[0] if exclude is not None
                else np.full(len(x), -1, np.int64))
        scores, labels = self._faiss_search(x, (k + 1) * OVERFETCH)
        passes = self._passing(labels, filter)
        scores, labels = _drop(scores, np.where(passes, labels, -1), excl, k)
        short = np.flatnonzero((labels >= 0).sum(axis=1) < k)
        if len(short):
            # The over-fetch did not find k passing items: scan exactly among the items that pass
            # (a graph walk restricted by a selector can miss some), so selective filters still
            # get complete answers.
            live = self.live_labels()
            allowed = live[self._passing(live[None, :], filter)[0]]
            if len(allowed) > EXACT_FILTER_MAX:
                log.warning("filter passes %d items; exact scan over them", len(allowed))
            s2, l2 = self._exact_among(allowed, x[short], k + 1)
            scores[short], labels[short] = _drop(s2, l2, excl[short], k)
        return self._result(scores, labels, k)

    def _passing(self, labels: np.ndarray, filter: Callable[[str], bool]) -> np.ndarray:
        uniq = np.unique(labels[labels >= 0])
        ok = np.fromiter((bool(filter(i)) for i in self._ids[uniq].tolist()), dtype=bool, count=len(uniq))
        return np.isin(labels, uniq[ok])

    def _exact_among(self, allowed: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` among ``allowed`` labels (scores -inf / labels -1 past the end)."""
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_l = np.full((len(queries), k), -1, np.int64)
        if len(allowed) == 0 or len(queries) == 0:
            return out_s, out_l
        sims = queries @ self.vectors_of_labels(allowed).T
        kk = min(k, len(allowed))
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        out_s[:, :kk] = np.take_along_axis(sims, top, axis=1)
        out_l[:, :kk] = allowed[top]
        return out_s, out_l

    # ------------------------------------------------------------------ persistence
    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "factory": self.factory,
            "family": self.family,
            "dim": self.dim,
            "search_params": self._search_params,
            "meta": self.meta,
        }

    def _id_table(self) -> bytes:
        encoded = [s.encode("utf-8") for s in self._ids.tolist()]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        buf = io.BytesIO()
        np.savez(buf, offsets=offsets, data=np.frombuffer(b"".join(encoded), dtype=np.uint8),
                 live=np.packbits(self._live, bitorder="little"), n=np.int64(len(self._live)))
        return buf.getvalue()

    def _trailer(self, faiss_len: int, faiss_sha: str) -> bytes:
        table = self._id_table()
        header = self._header() | {
            "faiss_sha256": faiss_sha,
            "faiss_bytes": faiss_len,
            "ids_sha256": hashlib.sha256(table).hexdigest(),
            "ids_bytes": len(table),
        }
        head = json.dumps(header, default=_json_default).encode("utf-8")
        meta = struct.pack("<Q", len(head)) + head + table
        return meta + FOOTER.pack(faiss_len, len(meta), MAGIC)

    def to_bytes(self) -> bytes:
        import faiss

        blob = faiss.serialize_index(self._index).tobytes()
        return blob + self._trailer(len(blob), hashlib.sha256(blob).hexdigest())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index file atomically (temp file in the same folder, then rename)."""
        import faiss

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            faiss_len = os.path.getsize(tmp)
            faiss_sha = _sha256_file(tmp, faiss_len)
            with open(tmp, "ab") as fh:
                fh.write(self._trailer(faiss_len, faiss_sha))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_bytes(cls, data: bytes) -> AnnIndex:
        import faiss

        header, table, faiss_len = _parse_trailer(data[-FOOTER.size - _max_meta(data):], len(data), where="bytes")
        blob = data[:faiss_len]
        _check(hashlib.sha256(blob).hexdigest(), header["faiss_sha256"], "index bytes")
        index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        return cls._assemble(index, header, table, read_only=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = False, verify: bool = True) -> AnnIndex:
        """Read an index file; ``verify`` checks the sha256 of both parts, ``mmap`` maps the vectors."""
        import faiss

        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"index file {path} does not exist")
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if size < FOOTER.size:
                raise ArtifactIntegrityError(f"index file {path} is truncated ({size} bytes)")
            fh.seek(size - FOOTER.size)
            faiss_len, meta_len, magic = FOOTER.unpack(fh.read(FOOTER.size))
            if magic != MAGIC or faiss_len + meta_len + FOOTER.size != size:
                raise ArtifactIntegrityError(f"{path} is not a steward index file or is truncated/altered")
            fh.seek(faiss_len)
            header, table, _ = _parse_trailer(fh.read(meta_len) + FOOTER.pack(faiss_len, meta_len, magic),
                                              size, where=str(path))
        if verify:
            _check(_sha256_file(path, faiss_len), header["faiss_sha256"], f"index file {path}")
        # IO_FLAG_MMAP_IFC maps the stored vectors/codes in place (zero copy); plain IO_FLAG_MMAP
        # only applies to on-disk IVF lists and still copies flat and HNSW storage into RAM.
        flags = (faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY) if mmap else 0
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as e:
            raise ArtifactIntegrityError(f"faiss could not read {path}: {e}") from e
        return cls._assemble(index, header, table, read_only=mmap)

    @classmethod
    def _assemble(cls, index: Any, header: dict[str, Any], table: bytes, *, read_only: bool) -> AnnIndex:
        if header.get("format") == 1:
            return cls._upgraded_from_format_1(index, header, table)
        arrays = np.load(io.BytesIO(table), allow_pickle=False)
        offsets, data = arrays["offsets"], arrays["data"].tobytes()
        n = int(arrays["n"])
        ids = np.asarray([data[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)], dtype=str)
        live = np.unpackbits(arrays["live"], count=n, bitorder="little").astype(bool)
        return cls(
            index,
            factory=header["factory"],
            family=header["family"],
            item_ids=ids,
            live=live,
            search_params=header["search_params"],
            meta=header["meta"],
            read_only=read_only,
        )


    @classmethod
    def _upgraded_from_format_1(cls, index: Any, header: dict[str, Any], table: bytes) -> AnnIndex:
        """A format-1 index (faiss ``IndexIDMap2`` with free labels, tombstones as a label list), read
        back into this format: its live vectors are re-added to an index of the same factory, and its
        search parameters and metrics are kept. Production keeps serving across the upgrade; the
        next ``steward index build`` or update writes the new format (and measures it afresh)."""
        import faiss

        arrays = np.load(io.BytesIO(table), allow_pickle=False)
        offsets, data = arrays["offsets"], arrays["data"].tobytes()
        labels = arrays["labels"].astype(np.int64)
        dead = set(arrays["tombstones"].astype(np.int64).tolist())
        keep = np.array([int(lab) not in dead for lab in labels.tolist()], dtype=bool)
        ids = np.asarray([data[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(labels))], dtype=str)
        outer = faiss.downcast_index(index)
        if not isinstance(outer, faiss.IndexIDMap2):
            raise ArtifactIntegrityError("format-1 index file does not hold an id-mapped faiss index; "
                                         "rebuild it with `steward index build`")
        ivf = _find(outer, faiss.IndexIVF)
        if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map()
        try:
            vectors = np.stack([outer.reconstruct(int(lab)) for lab in labels[keep].tolist()]) if keep.any() \
                else np.zeros((0, int(header["dim"])), np.float32)
        except RuntimeError as e:
            raise ArtifactIntegrityError(f"format-1 index cannot give back its vectors ({e}); rebuild it with "
                                         "`steward index build`") from e
        choice = IndexChoice(factory=header["factory"], metric=METRIC, family=header["family"],
                             reason="upgraded from index format 1 (same factory)")
        ann = cls.build(ids[keep], vectors, choice)
        ann.search_params = dict(header.get("search_params") or {})
        ann.meta = {**(header.get("meta") or {}), "upgraded_from_format": 1}
        log.warning("index in format 1 upgraded in memory (%d items); rebuild or update it to store format %d",
                    len(ann), FORMAT_VERSION)
        return ann


def _find_ivf(index: Any) -> Any:
    import faiss

    return _find(index, faiss.IndexIVF)


def _drop(scores: np.ndarray, labels: np.ndarray, excl: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's excluded label (and gaps), keep the first ``k`` columns, order preserved."""
    bad = (labels < 0) | (labels == excl[:, None])
    order = np.argsort(bad, axis=1, kind="stable")[:, :k]
    labels = np.take_along_axis(labels, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    gone = np.take_along_axis(bad, order, axis=1)
    return np.where(gone, np.float32(-np.inf), scores), np.where(gone, -1, labels)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__} in an index header")


def _sha256_file(path: str | os.PathLike[str], length: int) -> str:
    h = hashlib.sha256()
    remaining = length
    with open(path, "rb") as fh:
        while remaining > 0:
            chunk = fh.read(min(remaining, 1 << 22))
            if not chunk:
                break
            h.update(chunk)
            remaining -= len(chunk)
    return h.hexdigest()


def _check(actual: str, expected: str, what: str) -> None:
    if actual != expected:
        raise ArtifactIntegrityError(
            f"{what} failed its checksum (sha256 {actual[:12]}..., expected {expected[:12]}...): "
            "it is corrupted; rebuild the index or restore it from the artifact store"
        )


def _max_meta(data: bytes) -> int:
    if len(data) < FOOTER.size:
        raise ArtifactIntegrityError(f"index bytes are truncated ({len(data)} bytes)")
    faiss_len, meta_len, magic = FOOTER.unpack(data[-FOOTER.size :])
    if magic != MAGIC or faiss_len + meta_len + FOOTER.size != len(data):
        raise ArtifactIntegrityError("bytes are not a steward index or are truncated/altered")
    return meta_len


def _parse_trailer(trailer: bytes, total: int, *, where: str) -> tuple[dict[str, Any], bytes, int]:
    """Split ``meta + footer`` into (header, id table, faiss length), verifying the id table."""
    faiss_len, meta_len, magic = FOOTER.unpack(trailer[-FOOTER.size :])
    meta = trailer[: -FOOTER.size]
    if magic != MAGIC or len(meta) != meta_len or faiss_len + meta_len + FOOTER.size != total:
        raise ArtifactIntegrityError(f"{where}: not a steward index or truncated/altered")
    try:
        (head_len,) = struct.unpack("<Q", meta[:8])
        header = json.loads(meta[8 : 8 + head_len])
    except (struct.error, ValueError) as e:
        raise ArtifactIntegrityError(f"{where}: index header is unreadable ({e}); the file is corrupted") from e
    table = meta[8 + head_len :]
    _check(hashlib.sha256(table).hexdigest(), header.get("ids_sha256", ""), f"{where} (id table)")
    if header.get("format") not in (1, FORMAT_VERSION):  # 1 is upgraded on load
        raise ArtifactIntegrityError(
            f"{where}: index format {header.get('format')} is not {FORMAT_VERSION}; rebuild it with "
            "`steward index build`")
    return header, table, faiss_len


__all__ = ["AnnIndex", "SearchResult", "_find", "normalized"]
