"""Embedding rows with a model version, streaming: one path for the index build, ``steward embed``
and the Prefect fan-out.

Memory stays bounded by ``batch_size`` rows: a source yields Arrow record batches (a collection as
of a batch, one partition of it, or a file that is in no collection), each is embedded and handed
on. :func:`write_embeddings` appends them to a Parquet file that appears atomically (written under a
temporary name, then renamed), so a crash never leaves a half file where a reader would look.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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


__all__ = ["EmbeddedBatch", "collect", "collection_source", "embed_batches", "gallery_embeddings",
                      "write_embeddings", "write_parquet"]
