"""``AnnIndex``: a faiss index addressed by ``item_id`` strings, with add/update/remove and a file format.

Item ids map to int64 labels through ``faiss.IndexIDMap2``; labels are handed out once and never
reused, so an updated item gets a fresh label and its old vector is removed. Index types that
cannot delete (HNSW, refine wrappers) keep removed labels as tombstones that every search
excludes with an ``IDSelector``; a rebuild drops them.

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
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ArtifactIntegrityError, ConflictError, NotFoundError, ValidationError
from embedding.index.build import (
    _find,
    as_float32_matrix,
    enable_direct_map,
    new_faiss_index,
    normalized,
    train_and_add,
)
from embedding.index.choice import IndexChoice, choose_index

log = logging.getLogger(__name__)

MAGIC = b"STWDIDX1"
FOOTER = struct.Struct("<QQ8s")  # faiss part length, metadata length, magic
FORMAT_VERSION = 1
OVERFETCH = 4  # first pass of a filtered search asks for k * OVERFETCH candidates
EXACT_FILTER_MAX = 50_000  # below this many passing items a filtered search scans them exactly


@dataclass(frozen=True)
class SearchResult:
    item_ids: list[list[str]]  # per query, best first; shorter than k when fewer items qualify
    scores: np.ndarray  # (nq, k) inner products (cosine), -inf where no item was found


class AnnIndex:
    """A searchable set of (item_id, vector) pairs; cosine similarity via inner product."""

    def __init__(
        self,
        index: Any,
        *,
        factory: str,
        family: str,
        labels: np.ndarray,
        item_ids: Sequence[str],
        next_label: int,
        tombstones: Iterable[int] = (),
        search_params: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        read_only: bool = False,
    ) -> None:
        self._index = index
        self.factory = factory
        self.family = family
        self._label_of: dict[str, int] = {iid: int(lab) for iid, lab in zip(item_ids, labels, strict=True)}
        self._item_of: dict[int, str] = {lab: iid for iid, lab in self._label_of.items()}
        self._next_label = int(next_label)
        self._tombstones: set[int] = {int(t) for t in tombstones}
        self.search_params: dict[str, Any] = dict(search_params or {})
        self.meta: dict[str, Any] = dict(meta or {})
        self.read_only = read_only

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
        """Choose (unless given), train and fill an index; vectors are normalised first."""
        x = normalized(as_float32_matrix(vectors))
        ids = [str(i) for i in item_ids]
        if len(ids) != len(x):
            raise ValidationError(f"{len(ids)} item ids but {len(x)} vectors; they must pair up")
        if len(set(ids)) != len(ids):
            raise ValidationError("item ids must be unique within one build; deduplicate the gallery first")
        choice = choice or choose_index(len(x), x.shape[1], **choice_kwargs)
        index = new_faiss_index(choice, x.shape[1])
        labels = np.arange(len(x), dtype=np.int64)
        stats = train_and_add(index, choice, x, labels, threads=threads, progress=progress)
        meta = {
            "dim": int(x.shape[1]),
            "choice_reason": choice.reason,
            "choice_params": choice.params,
            "build_seconds": stats.build_seconds,
            "train_seconds": stats.train_seconds,
            "threads": stats.threads,
            "measured_ntotal": len(x),
            "changed_since_measure": 0,
        }
        return cls(index, factory=choice.factory, family=choice.family, labels=labels, item_ids=ids,
                   next_label=len(x), meta=meta)

    # ------------------------------------------------------------------ properties
    @property
    def ntotal(self) -> int:
        """Live items (tombstoned vectors excluded)."""
        return len(self._label_of)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    @property
    def faiss_index(self) -> Any:
        return self._index

    def item_ids(self) -> list[str]:
        return list(self._label_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._label_of

    def __len__(self) -> int:
        return self.ntotal

    # ------------------------------------------------------------------ lookups
    def label_of(self, item_id: str) -> int:
        try:
            return self._label_of[item_id]
        except KeyError as e:
            raise NotFoundError(f"item_id {item_id!r} is not in the index") from e

    def item_of(self, label: int) -> str | None:
        return self._item_of.get(int(label))

    def live_labels(self) -> np.ndarray:
        return np.fromiter(self._item_of.keys(), dtype=np.int64, count=len(self._item_of))

    def vectors_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """Stored vectors (reconstructed: approximate for compressed indexes)."""
        out = np.empty((len(labels), self.dim), dtype=np.float32)
        for i, lab in enumerate(labels):
            out[i] = self._index.reconstruct(int(lab))
        return out

    def vector_of(self, item_id: str) -> np.ndarray:
        return self.vectors_of_labels(np.array([self.label_of(item_id)]))[0]

    # ------------------------------------------------------------------ mutation
    def _check_writable(self) -> None:
        if self.read_only:
            raise ConflictError("this index was loaded memory-mapped (read-only); load it with mmap=False to modify")

    def add(self, item_ids: Sequence[str], vectors: np.ndarray) -> tuple[int, int]:
        """Add items; ids already present are updated (old vector replaced). Returns (added, updated)."""
        self._check_writable()
        ids = [str(i) for i in item_ids]
        x = normalized(as_float32_matrix(vectors, self.dim))
        if len(ids) != len(x):
            raise ValidationError(f"{len(ids)} item ids but {len(x)} vectors; they must pair up")
        if len(set(ids)) != len(ids):
            raise ValidationError("item ids must be unique within one add call")
        existing = [i for i in ids if i in self._label_of]
        if existing:
            self._drop_labels([self._label_of[i] for i in existing])
        labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
        if len(ids):
            self._index.add_with_ids(x, labels)
        self._next_label += len(ids)
        for iid, lab in zip(ids, labels, strict=True):
            self._label_of[iid] = int(lab)
            self._item_of[int(lab)] = iid
        self.meta["changed_since_measure"] = int(self.meta.get("changed_since_measure", 0)) + len(ids)
        return len(ids) - len(existing), len(existing)

    def remove(self, item_ids: Iterable[str]) -> int:
        """Remove items (unknown ids are ignored); returns how many were removed."""
        self._check_writable()
        labels = [self._label_of[i] for i in item_ids if i in self._label_of]
        self._drop_labels(labels)
        self.meta["changed_since_measure"] = int(self.meta.get("changed_since_measure", 0)) + len(labels)
        return len(labels)

    def _drop_labels(self, labels: list[int]) -> None:
        if not labels:
            return
        for lab in labels:
            del self._label_of[self._item_of.pop(lab)]
        arr = np.asarray(labels, dtype=np.int64)
        try:
            removed = self._index.remove_ids(arr)
        except RuntimeError:
            # HNSW and refine indexes cannot delete: hide the vectors from every search instead.
            self._tombstones.update(labels)
            return
        if removed != len(labels):  # pragma: no cover - would mean the id map and faiss disagree
            raise ConflictError(f"faiss removed {removed} of {len(labels)} vectors; rebuild the index")

    # ------------------------------------------------------------------ search
    def _params(self, selector: Any | None) -> tuple[Any, list[Any]]:
        """faiss SearchParameters tree carrying tuned parameters and the id selector.

        The selector goes to the innermost index, translated from labels to faiss's internal
        positions (the id map only translates a top-level selector, which refine wrappers ignore).
        Returns the params and every SWIG object that must stay alive during the search.
        """
        import faiss

        keep: list[Any] = []
        sel = None
        if selector is not None:
            sel = faiss.IDSelectorTranslated(self._index.id_map, selector)
            keep += [selector, sel]

        def walk(idx: Any) -> Any:
            idx = faiss.downcast_index(idx)
            if isinstance(idx, faiss.IndexRefine):
                inner = walk(idx.base_index)
                p = faiss.IndexRefineSearchParameters(
                    k_factor=float(self.search_params.get("k_factor", 4)), base_index_params=inner
                )
            elif isinstance(idx, faiss.IndexPreTransform):
                p = faiss.SearchParametersPreTransform(index_params=walk(idx.index))
            elif isinstance(idx, faiss.IndexIVF):
                p = faiss.SearchParametersIVF(nprobe=int(self.search_params.get("nprobe", 1)))
                if sel is not None:
                    p.sel = sel
            elif isinstance(idx, faiss.IndexHNSW):
                p = faiss.SearchParametersHNSW(efSearch=int(self.search_params.get("efSearch", 16)))
                if sel is not None:
                    p.sel = sel
            else:
                p = faiss.SearchParameters()
                if sel is not None:
                    p.sel = sel
            keep.append(p)
            return p

        return walk(self._index.index), keep

    def search_labels(
        self, vectors: np.ndarray, k: int, *, allowed: np.ndarray | None = None, normalize: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw faiss search: (scores, labels), label -1 where nothing was found."""
        import faiss

        x = as_float32_matrix(vectors, self.dim)
        if normalize:
            x = normalized(x)
        if k < 1:
            raise ValidationError(f"k must be at least 1, got {k}")
        refs: list[Any] = []  # SWIG does not keep sub-selectors alive; hold them for the search
        selector = None
        if self._tombstones:
            dead = faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64))
            selector = faiss.IDSelectorNot(dead)
            refs.append(dead)
        if allowed is not None:
            ok = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            refs.append(ok)
            if selector is not None:
                refs.append(selector)
                selector = faiss.IDSelectorAnd(ok, selector)
            else:
                selector = ok
        params, keep = self._params(selector)
        k_eff = min(k, max(self._index.ntotal, 1))
        # pytorch-metric-learning imports faiss.contrib.torch_utils, which replaces Index.search with a
        # wrapper that drops `params`; its numpy original survives as `search_numpy`.
        search = getattr(self._index, "search_numpy", self._index.search)
        scores, labels = search(x, k_eff, params=params)
        del keep, refs
        if k_eff < k:
            pad = k - k_eff
            scores = np.hstack([scores, np.full((len(x), pad), -np.inf, dtype=np.float32)])
            labels = np.hstack([labels, np.full((len(x), pad), -1, dtype=np.int64)])
        scores = np.where(labels < 0, -np.inf, scores).astype(np.float32)
        return scores, labels

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
        x = as_float32_matrix(vectors, self.dim)
        extra = 1 if exclude is not None else 0
        scores, labels = self.search_labels(x, (k + extra) * (OVERFETCH if filter else 1))
        rows = self._rows(scores, labels, k, filter, exclude)
        short = [q for q, (ids, _) in enumerate(rows) if len(ids) < k] if filter else []
        if short and self.ntotal > 0:
            # The over-fetch did not find k passing items: search again restricted to the items
            # that pass, so selective filters still get complete answers.
            allowed = np.fromiter(
                (lab for lab, iid in self._item_of.items() if filter(iid)), dtype=np.int64
            )
            if len(allowed) and len(allowed) <= EXACT_FILTER_MAX:
                # Few items pass: an exact scan over them is cheap and, unlike a graph walk
                # restricted by a selector, cannot miss any.
                s2, l2 = self._exact_among(allowed, x[short], k + extra)
            elif len(allowed):
                s2, l2 = self.search_labels(x[short], k + extra, allowed=allowed)
            if len(allowed):
                sub_exclude = [exclude[q] for q in short] if exclude is not None else None
                for j, (ids, sc) in enumerate(self._rows(s2, l2, k, filter, sub_exclude)):
                    rows[short[j]] = (ids, sc)
        out = np.full((len(x), k), -np.inf, dtype=np.float32)
        for q, (_, sc) in enumerate(rows):
            out[q, : len(sc)] = sc
        return SearchResult(item_ids=[ids for ids, _ in rows], scores=out)

    def _exact_among(self, allowed: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from embedding.index.tune import exact_neighbours

        gallery = self.vectors_of_labels(allowed)
        q = normalized(queries)
        labels = exact_neighbours(gallery, allowed, q, k)
        pos = {int(lab): i for i, lab in enumerate(allowed)}
        scores = np.full(labels.shape, -np.inf, dtype=np.float32)
        for r in range(len(labels)):
            for c, lab in enumerate(labels[r]):
                if lab >= 0:
                    scores[r, c] = float(gallery[pos[int(lab)]] @ q[r])
        return scores, labels

    def _rows(
        self,
        scores: np.ndarray,
        labels: np.ndarray,
        k: int,
        filter: Callable[[str], bool] | None,
        exclude: Sequence[str | None] | None,
    ) -> list[tuple[list[str], list[float]]]:
        rows = []
        for q in range(len(labels)):
            ids: list[str] = []
            sc: list[float] = []
            skip = exclude[q] if exclude is not None else None
            for lab, s in zip(labels[q], scores[q], strict=True):
                if lab < 0:
                    continue
                iid = self._item_of.get(int(lab))
                if iid is None or iid == skip or (filter is not None and not filter(iid)):
                    continue
                ids.append(iid)
                sc.append(float(s))
                if len(ids) == k:
                    break
            rows.append((ids, sc))
        return rows

    def search_ids(
        self, item_ids: Sequence[str], k: int, filter: Callable[[str], bool] | None = None
    ) -> SearchResult:
        """Neighbours of items already in the index (each query item itself is left out)."""
        ids = [str(i) for i in item_ids]
        vectors = self.vectors_of_labels(np.array([self.label_of(i) for i in ids], dtype=np.int64))
        return self.search(vectors, k, filter, exclude=ids)

    # ------------------------------------------------------------------ persistence
    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "factory": self.factory,
            "family": self.family,
            "dim": self.dim,
            "next_label": self._next_label,
            "search_params": self.search_params,
            "meta": self.meta,
        }

    def _id_table(self) -> bytes:
        labels = np.fromiter(self._item_of.keys(), dtype=np.int64, count=len(self._item_of))
        encoded = [self._item_of[int(lab)].encode("utf-8") for lab in labels]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        buf = io.BytesIO()
        np.savez(
            buf,
            labels=labels,
            offsets=offsets,
            data=np.frombuffer(b"".join(encoded), dtype=np.uint8),
            tombstones=np.fromiter(self._tombstones, dtype=np.int64, count=len(self._tombstones)),
        )
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
        import faiss

        # faiss.read_index already returns the concrete class; downcasting again would make a
        # second proxy and let the first one free the index when it is garbage-collected.
        if not isinstance(index, faiss.IndexIDMap2):
            raise ArtifactIntegrityError("index file does not hold an id-mapped faiss index")
        if not read_only:
            enable_direct_map(index)
        arrays = np.load(io.BytesIO(table), allow_pickle=False)
        offsets, data = arrays["offsets"], arrays["data"].tobytes()
        item_ids = [data[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
        return cls(
            index,
            factory=header["factory"],
            family=header["family"],
            labels=arrays["labels"],
            item_ids=item_ids,
            next_label=header["next_label"],
            tombstones=arrays["tombstones"].tolist(),
            search_params=header["search_params"],
            meta=header["meta"],
            read_only=read_only,
        )


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
    if header.get("format") != FORMAT_VERSION:
        raise ArtifactIntegrityError(f"{where}: index format {header.get('format')} is not {FORMAT_VERSION}")
    return header, table, faiss_len


__all__ = ["AnnIndex", "SearchResult", "_find"]
