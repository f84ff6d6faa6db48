"""Embedding rows with a model version, streaming: one path for the index build, ``steward embed``
(a collection, or a file of rows that are in no collection: :func:`file_source`) and the Prefect
fan-out.

Memory stays bounded by ``batch_size`` rows: a source yields Arrow record batches (a collection as
of a batch, one partition of it, or a file that is in no collection), each is embedded and handed
on. :func:`write_embeddings` appends them to a Parquet file that appears atomically (written under a
temporary name, then renamed), so a crash never leaves a half file where a reader would look.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import NotFoundError
from core.progress import progress

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from embedding.inference import Embedder
    from storage.workspace import Workspace


@dataclass(frozen=True)
class EmbeddedBatch:
    item_ids: pa.Array
    labels: pa.Array  # string; nulls where the rows have no label
    embeddings: np.ndarray  # float32 (n, out_dim), rows L2-normalised


def input_columns(embedder: Embedder) -> list[str]:
    """The columns a source must provide for ``embedder`` (besides ``item_id`` and ``label``)."""
    return ["features" if embedder.input_kind == "features" else "text"]


def collection_source(workspace: Workspace, collection: str, embedder: Embedder, *, as_of: int | None = None,
                      partition: Collection[int] | None = None, batch_size: int = 8192) -> Iterator[pa.RecordBatch]:
    """The live items of ``collection`` as of ``as_of`` (optionally one partition of batch files)."""
    return workspace.store.iter_batches(collection, as_of=as_of, columns=["label", *input_columns(embedder)],
                                        batch_size=batch_size, partition=partition)


def embed_batches(embedder: Embedder, batches: Iterable[pa.RecordBatch], *, desc: str = "embedding",
                  show_progress: bool = False, total_rows: int | None = None) -> Iterator[EmbeddedBatch]:
    """Embed each record batch (``item_id``, the model's input column, optional ``label``)."""
    import pyarrow as pa

    for rb in progress(batches, desc, total=total_rows, unit="row", enabled=show_progress,
                       weight=lambda b: b.num_rows):
        labels = rb.column("label") if "label" in rb.schema.names else pa.nulls(rb.num_rows, pa.string())
        yield EmbeddedBatch(rb.column("item_id").cast(pa.string()), labels.cast(pa.string()),
                            np.asarray(embedder.embed_table(rb), dtype=np.float32))


def collect(embedded: Iterable[EmbeddedBatch]) -> tuple[list[str], np.ndarray]:
    """All ``(item_ids, embeddings)`` of a stream, in memory (an index needs them anyway)."""
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for eb in embedded:
        ids.extend(eb.item_ids.to_pylist())
        parts.append(eb.embeddings)
    if not ids:
        raise NotFoundError("there are no items to embed; ingest data first")
    return ids, np.concatenate(parts)


def write_parquet(embedded: Iterable[EmbeddedBatch], path: str | os.PathLike[str], out_dim: int) -> int:
    """Write ``(item_id, label, embedding)`` rows atomically; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("item_id", pa.string()), ("label", pa.string()),
                        ("embedding", pa.list_(pa.float32(), out_dim))])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for eb in embedded:
                flat = pa.array(eb.embeddings.ravel(), pa.float32())
                writer.write_table(pa.table({
                    "item_id": eb.item_ids, "label": eb.labels,
                    "embedding": pa.FixedSizeListArray.from_arrays(flat, out_dim),
                }, schema=schema))
                rows += len(eb.item_ids)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


def write_embeddings(
    workspace: Workspace, collection: str, model_version: int | None, path: str | os.PathLike[str], *,
    as_of: int | None = None, partition: Collection[int] | None = None, batch_size: int = 8192,
    device: str = "cpu", progress: bool = False,
) -> int:
    """Embed the items as of ``as_of`` (optionally one partition of batch files) to Parquet; returns the row count."""
    from embedding.inference import load_embedder

    embedder = load_embedder(workspace, collection, model_version, device=device)
    source = collection_source(workspace, collection, embedder, as_of=as_of, partition=partition,
                               batch_size=batch_size)
    return write_parquet(embed_batches(embedder, source, desc=f"embed {collection}", show_progress=progress),
                         path, embedder.output_dim)


def gallery_embeddings(workspace: Workspace, collection: str, embedder: Embedder, *, as_of: int | None,
                       batch_size: int = 8192, progress: bool = True) -> tuple[list[str], np.ndarray]:
    """(item_ids, embeddings) of every item as of ``as_of``: what an index is built from."""
    source = collection_source(workspace, collection, embedder, as_of=as_of, batch_size=batch_size)
    try:
        return collect(embed_batches(embedder, source, desc=f"embedding {collection}", show_progress=progress))
    except NotFoundError as e:
        raise NotFoundError(f"collection {collection!r} has no items as of batch {as_of}; ingest data first") from e


MAX_REJECT_EXAMPLES = 10


@dataclass
class RejectTally:
    """What :func:`file_source` read and refused, counted as it streams."""

    rows_read: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)  # the first MAX_REJECT_EXAMPLES: row, item_id, reason

    def reject(self, row: int, item_id: str | None, reason: str) -> None:
        self.rejected += 1
        # One count per kind of problem, not per value: "duplicate item_id 'x'..." would make one per id.
        self.reasons[reason.split(" '")[0].split(" (")[0]] += 1
        if len(self.examples) < MAX_REJECT_EXAMPLES:
            self.examples.append({"row": row, "item_id": item_id, "reason": reason})


@dataclass(frozen=True)
class FileEmbedding:
    """``steward embed --input``'s result (the ``embed_file_result`` JSON shape)."""

    collection: str
    model_version: int
    input: str
    rows_read: int
    rows: int  # embedded (and written)
    rejected: int
    reject_reasons: dict[str, int]
    rejected_examples: tuple[dict, ...]
    out: str | None  # the Parquet written; None when the rows went elsewhere (stdout, memory)
    seconds: float
    # In memory (no ``out`` and no sink): the embedded rows, in file order. Not part of the JSON shape.
    item_ids: list[str] | None = field(default=None, repr=False, compare=False)
    embeddings: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"schema_version": 1, "collection": self.collection, "model_version": self.model_version,
                "input": self.input, "rows_read": self.rows_read, "rows": self.rows, "rejected": self.rejected,
                "reject_reasons": dict(self.reject_reasons), "rejected_examples": [dict(e) for e in self.rejected_examples],
                "out": self.out, "seconds": self.seconds}

    @classmethod
    def from_tally(cls, collection: str, model_version: int, path: str, tally: RejectTally, rows: int,
                   out: str | None, seconds: float, **extra: Any) -> FileEmbedding:
        return cls(collection, model_version, os.path.abspath(path), tally.rows_read, rows, tally.rejected,
                   dict(tally.reasons), tuple(tally.examples),
                   (out if "://" in out else os.path.abspath(out)) if out else None, seconds, **extra)


def file_source(path: str | os.PathLike[str], *, kind: str, dim: int | None, tally: RejectTally,
                batch_size: int = 8192) -> Iterator[pa.RecordBatch]:
    """The good rows of a Parquet/CSV/JSONL file of items that are in no collection, validated as
    ingest validates a batch (``kind``/``dim``: the model's collection's); bad rows go to ``tally``
    (row numbers count from 0 over the whole file), never silently away. A file-level problem (no
    item_id, wrong kind or dimension) raises ValidationError."""
    import pyarrow as pa

    from storage.ingest_validation import validate_batch
    from storage.parquet_store import iter_input_file

    column = "features" if kind == "features" else "text"
    seen: set[str] = set()
    offset = 0
    for chunk in iter_input_file(path, batch_size):
        v = validate_batch(chunk, source=str(path), kind=kind, dim=dim)
        for row, item_id, reason in zip(v.quarantined.column("row").to_pylist(),
                                        (v.quarantined.column("item_id").to_pylist() if "item_id" in
                                         v.quarantined.column_names else [None] * v.quarantined.num_rows),
                                        v.quarantined.column("reason").to_pylist(), strict=True):
            tally.reject(offset + row, item_id, reason)
        good = v.good
        ids = good.column("item_id").to_pylist()
        deleted = good.column("deleted").to_pylist()
        keep = []
        for i, (item_id, gone) in enumerate(zip(ids, deleted, strict=True)):
            if gone:
                tally.reject(-1, item_id, "row is marked deleted (there is nothing to embed)")
            elif item_id in seen:
                tally.reject(-1, item_id, f"duplicate item_id {item_id!r} (an earlier chunk of the file has it)")
            else:
                seen.add(item_id)
                keep.append(i)
        tally.rows_read += chunk.num_rows
        offset += chunk.num_rows
        if keep:
            out = good.take(pa.array(keep, pa.int64())).select(["item_id", "label", column])
            yield from out.combine_chunks().to_batches()


def embed_file(workspace: Workspace, collection: str, model_version: int | None, path: str | os.PathLike[str], *,
               out: str | os.PathLike[str] | None = None, sink: Callable[[EmbeddedBatch], None] | None = None,
               batch_size: int = 8192, device: str = "cpu", progress: bool = False) -> FileEmbedding:
    """Embed a file's rows with a model version of ``collection`` (default: production's), streaming:
    to Parquet at ``out`` (written atomically), or each batch to ``sink``, or (neither) in memory on
    the result's ``item_ids``/``embeddings``."""
    from embedding.inference import load_embedder

    started = time.perf_counter()
    embedder = load_embedder(workspace, collection, model_version, device=device)
    coll = workspace.registry.catalog.get_collection(collection)
    tally = RejectTally()
    source = file_source(path, kind=embedder.input_kind, dim=coll.dim if embedder.input_kind == "features" else None,
                         tally=tally, batch_size=batch_size)
    embedded = embed_batches(embedder, source, desc=f"embedding {os.path.basename(path)}", show_progress=progress)

    def result(rows: int, **extra: object) -> FileEmbedding:
        return FileEmbedding.from_tally(collection, embedder.model_version, str(path), tally, rows,
                                        None if out is None else str(out), time.perf_counter() - started, **extra)

    if out is not None:
        return result(write_parquet(embedded, out, embedder.output_dim))
    if sink is not None:
        rows = 0
        for eb in embedded:
            sink(eb)
            rows += len(eb.item_ids)
        return result(rows)
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for eb in embedded:
        ids.extend(eb.item_ids.to_pylist())
        parts.append(eb.embeddings)
    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.output_dim), np.float32)
    return result(len(ids), item_ids=ids, embeddings=vectors)


__all__ = ["EmbeddedBatch", "FileEmbedding", "RejectTally", "collect", "collection_source", "embed_batches",
           "embed_file", "file_source", "gallery_embeddings", "write_embeddings", "write_parquet"]
