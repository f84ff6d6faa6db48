"""Writing a collection's embeddings (item_id, label, embedding) to Parquet, streaming.

Memory stays bounded by ``batch_size`` rows: the store streams record batches, each is embedded
and appended to the file. The file appears atomically (written under a temporary name, then
renamed), so a crash never leaves a half file where a reader would look.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from steward.workspace import Workspace


def write_embeddings(
    workspace: Workspace, collection: str, model_version: int | None, path: str | os.PathLike[str], *,
    as_of: int | None = None, partition: Collection[int] | None = None, batch_size: int = 8192,
    device: str = "cpu", progress: bool = False,
) -> int:
    """Embed the items as of ``as_of`` (optionally one partition of batch files); return the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from embedding.inference import load_embedder

    embedder = load_embedder(workspace, collection, model_version, device=device)
    column = "features" if embedder.input_kind == "features" else "text"
    schema = pa.schema([("item_id", pa.string()), ("label", pa.string()),
                        ("embedding", pa.list_(pa.float32(), embedder.output_dim))])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            batches = workspace.store.iter_batches(collection, as_of=as_of, columns=["label", column],
                                                   batch_size=batch_size, partition=partition)
            for rb in tqdm(batches, desc=f"embed {collection}", unit="batch", disable=not progress):
                emb = embedder.embed_table(rb)
                labels = rb.column("label") if "label" in rb.schema.names else pa.nulls(rb.num_rows, pa.string())
                writer.write_table(pa.table({
                    "item_id": rb.column("item_id").cast(pa.string()),
                    "label": labels.cast(pa.string()),
                    "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel(), pa.float32()), embedder.output_dim),
                }, schema=schema))
                rows += rb.num_rows
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows
