"""Reference embeddings kept beside an index: what the drift check compares a new batch against,
computed once when the index is built (or updated) instead of again at every check.

An index version built as of batch N stores, as one artifact named in its params
(``reference_embeddings``), the embeddings of the rows of the last ``window`` non-empty batches up
to N: exactly the reference the next drift check reads. Each row carries its ``item_id``, its batch
and the sha256 of its input (the features' float32 bytes, or the text's UTF-8 bytes), so a reader
takes a stored vector only for the very row it has; any other row (an item rewritten since, a batch
outside the window) is embedded as before. Rows are the same outputs of the same model version that
a check would compute, so the decision does not change.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ArtifactIntegrityError, NotFoundError
from storage.registry.entities import REFERENCE_EMBEDDINGS_PARAM

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from storage.registry.entities import IndexVersion
    from storage.workspace import Workspace

log = logging.getLogger(__name__)

PARAM = REFERENCE_EMBEDDINGS_PARAM  # the index params key: {"artifact": sha, "batches": [...], "rows": n}


def input_digests(table: pa.Table | pa.RecordBatch, column: str) -> np.ndarray:
    """(n, 32) uint8: sha256 of each row's input (``features`` as float32 bytes, or ``text`` as UTF-8)."""
    if column == "text":
        from embedding.text_cache import text_digests

        return text_digests(table.column("text").to_pylist())
    from storage.parquet_store import features_to_numpy

    x = np.ascontiguousarray(features_to_numpy(table, column), dtype=np.float32)
    out = np.empty((len(x), 32), dtype=np.uint8)
    for i, row in enumerate(x):
        out[i] = np.frombuffer(hashlib.sha256(row.tobytes()).digest(), dtype=np.uint8)
    return out


@dataclass(frozen=True)
class ReferenceEmbeddings:
    item_ids: np.ndarray  # str (n,)
    batches: np.ndarray  # int64 (n,): the batch each row came from
    digests: np.ndarray  # uint8 (n, 32): sha256 of the row's input
    vectors: np.ndarray  # float32 (n, d): the model's output for the row

    def __len__(self) -> int:
        return len(self.item_ids)

    @classmethod
    def empty(cls, dim: int) -> ReferenceEmbeddings:
        return cls(np.array([], dtype=str), np.zeros(0, np.int64), np.zeros((0, 32), np.uint8),
                   np.zeros((0, dim), np.float32))

    def select(self, mask: np.ndarray) -> ReferenceEmbeddings:
        return ReferenceEmbeddings(self.item_ids[mask], self.batches[mask], self.digests[mask], self.vectors[mask])

    @classmethod
    def concat(cls, parts: Sequence[ReferenceEmbeddings]) -> ReferenceEmbeddings:
        return cls(np.concatenate([p.item_ids for p in parts]).astype(str), np.concatenate([p.batches for p in parts]),
                   np.concatenate([p.digests for p in parts]), np.concatenate([p.vectors for p in parts]))

    @cached_property
    def _rows(self) -> dict[tuple[str, bytes], int]:
        return {(str(i), d.tobytes()): r for r, (i, d) in enumerate(zip(self.item_ids, self.digests, strict=True))}

    def lookup(self, item_ids: Sequence[str], digests: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """``(vectors, found)`` for rows given by id and input digest; a row is found only when both match."""
        where = self._rows
        rows = np.array([where.get((str(i), d.tobytes()), -1) for i, d in zip(item_ids, digests, strict=True)],
                        dtype=np.int64)
        found = rows >= 0
        if not found.any():
            return None, found
        out = np.zeros((len(rows), self.vectors.shape[1]), dtype=np.float32)
        out[found] = self.vectors[rows[found]]
        return out, found

    def to_bytes(self) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        dim = int(self.vectors.shape[1])
        table = pa.table({
            "item_id": pa.array(self.item_ids.tolist(), pa.string()),
            "batch": pa.array(self.batches, pa.int64()),
            "digest": pa.array([d.tobytes() for d in self.digests], pa.binary(32)),
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(self.vectors, np.float32).ravel(), pa.float32()), dim),
        })
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceEmbeddings:
        import pyarrow.parquet as pq

        from storage.parquet_store import arrow_to_numpy, features_to_numpy

        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which imports pandas
        table = pq.ParquetFile(io.BytesIO(data)).read()
        digests = np.frombuffer(b"".join(table.column("digest").to_pylist()), dtype=np.uint8).reshape(-1, 32)
        return cls(np.array(table.column("item_id").to_pylist(), dtype=str),
                   np.asarray(arrow_to_numpy(table.column("batch")), dtype=np.int64), digests,
                   features_to_numpy(table, "embedding"))


def reference_window(workspace: Workspace, collection: str, as_of: int, size: int) -> list[int]:
    """The last ``size`` non-empty batches up to ``as_of``: the reference of the check after ``as_of``."""
    batches = [b.seq for b in workspace.registry.catalog.list_batches(collection) if b.rows > 0 and b.seq <= as_of]
    return batches[-size:] if size > 0 else []


def window_rows(workspace: Workspace, collection: str, column: str, seqs: Iterable[int],
                vectors_by_id: Mapping[str, np.ndarray]) -> ReferenceEmbeddings | None:
    """The rows of batches ``seqs`` whose item's newest version (among ``seqs``, which must reach the
    gallery's ``as_of``) is that row, with their gallery vectors; None when there are none."""
    import pyarrow as pa

    parts: list[ReferenceEmbeddings] = []
    newer: set[str] = set()
    for seq in sorted(seqs, reverse=True):  # newest first: a later batch's row supersedes an earlier one
        table = workspace.store.read_batch(collection, seq, columns=[column])
        ids = [str(i) for i in table.column("item_id").to_pylist()]
        keep = np.array([i not in newer and i in vectors_by_id for i in ids], dtype=bool)
        newer.update(ids)
        if not keep.any():
            continue
        kept_ids = np.array(ids, dtype=str)[keep]
        parts.append(ReferenceEmbeddings(
            kept_ids, np.full(len(kept_ids), seq, np.int64), input_digests(table.filter(pa.array(keep)), column),
            np.stack([vectors_by_id[i] for i in kept_ids]).astype(np.float32)))
    return ReferenceEmbeddings.concat(parts) if parts else None


def save_reference(workspace: Workspace, ref: ReferenceEmbeddings | None) -> dict[str, Any]:
    """Store ``ref`` as an artifact; the params entry that names it (empty when there is nothing)."""
    if ref is None or not len(ref):
        return {}
    sha = workspace.artifacts.put_bytes(ref.to_bytes())
    return {PARAM: {"artifact": sha, "batches": sorted({int(b) for b in ref.batches}), "rows": len(ref)}}


class RowsById(Mapping[str, np.ndarray]):
    """``item_id -> vector`` over a gallery's ``(ids, vectors)`` without copying the vectors."""

    def __init__(self, item_ids: Sequence[str], vectors: np.ndarray) -> None:
        self._row = {str(i): r for r, i in enumerate(item_ids)}
        self._vectors = vectors

    def __getitem__(self, item_id: str) -> np.ndarray:
        return self._vectors[self._row[item_id]]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def __iter__(self):
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


def load_reference(workspace: Workspace, iv: IndexVersion) -> ReferenceEmbeddings | None:
    """The reference embeddings stored with index version ``iv`` (None: it has none, or they are unreadable)."""
    entry = (iv.params or {}).get(PARAM) or {}
    sha = entry.get("artifact")
    if not sha:
        return None
    try:
        return ReferenceEmbeddings.from_bytes(workspace.artifacts.get_bytes(sha))
    except (ArtifactIntegrityError, NotFoundError, OSError, ValueError) as e:
        # Only a speed-up: the check embeds the reference itself instead.
        log.warning("reference embeddings of index %s are unusable (%s); embedding the reference instead", iv.id, e)
        return None


def reference_for_check(workspace: Workspace, collection: str, model_version: int,
                        batches: Iterable[int]) -> tuple[IndexVersion, ReferenceEmbeddings] | None:
    """The stored reference embeddings of ``model_version`` covering most of ``batches``: production's
    index when it is that model's, else the newest index of that model that has them."""
    wanted = set(batches)
    target = workspace.production.target(collection)
    candidates = list(reversed(workspace.registry.models.list_indexes(collection, model_version)))
    if target is not None and target.model_version == model_version and target.index_version is not None:
        candidates.sort(key=lambda iv: iv.id != target.index_version)  # production's first, then newest
    best = None
    for iv in candidates:
        covered = len(wanted & set(((iv.params or {}).get(PARAM) or {}).get("batches", ())))
        if covered and (best is None or covered > best[0]):
            best = (covered, iv)
        if covered == len(wanted):
            break
    if best is None:
        return None
    ref = load_reference(workspace, best[1])
    return (best[1], ref) if ref is not None else None


__all__ = ["PARAM", "ReferenceEmbeddings", "RowsById", "input_digests", "load_reference", "reference_for_check",
           "reference_window", "save_reference", "window_rows"]
