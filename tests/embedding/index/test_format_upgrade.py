"""An index written by the previous release (format 1) still loads: production keeps serving."""

from __future__ import annotations

import hashlib
import io
import json
import struct

import numpy as np
import pytest

from embedding.index.ann import FOOTER, MAGIC, AnnIndex


def _format_1_bytes(factory: str, family: str, x: np.ndarray, ids: list[str], labels: np.ndarray,
                    tombstones: list[int]) -> bytes:
    """The layout format 1 wrote: IndexIDMap2 with free labels, then header + npz id table + footer."""
    import faiss

    inner = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not inner.is_trained:
        inner.train(x)
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(x, labels)
    blob = faiss.serialize_index(index).tobytes()
    encoded = [i.encode() for i in ids]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buf = io.BytesIO()
    np.savez(buf, labels=labels, offsets=offsets, data=np.frombuffer(b"".join(encoded), np.uint8),
             tombstones=np.asarray(tombstones, np.int64))
    table = buf.getvalue()
    header = {"format": 1, "factory": factory, "family": family, "dim": x.shape[1],
              "next_label": int(labels.max()) + 1, "search_params": {"nprobe": 4} if family == "ivf_flat" else {},
              "meta": {"recall_at_10": 0.97}, "faiss_sha256": hashlib.sha256(blob).hexdigest(),
              "faiss_bytes": len(blob), "ids_sha256": hashlib.sha256(table).hexdigest(), "ids_bytes": len(table)}
    head = json.dumps(header).encode()
    meta = struct.pack("<Q", len(head)) + head + table
    return blob + meta + FOOTER.pack(len(blob), len(meta), MAGIC)


@pytest.mark.parametrize(("factory", "family"), [("Flat", "flat"), ("IVF4,Flat", "ivf_flat")])
def test_format_1_index_loads_with_its_items_and_without_its_tombstones(tmp_path, factory, family) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"item-{i}" for i in range(60)]
    labels = np.arange(100, 160, dtype=np.int64)  # format 1 labels were not positions
    path = tmp_path / "old.index"
    path.write_bytes(_format_1_bytes(factory, family, x, ids, labels, tombstones=[100, 105]))

    for ann in (AnnIndex.load(path), AnnIndex.from_bytes(path.read_bytes())):
        assert len(ann) == 58 and "item-0" not in ann and "item-5" not in ann
        assert ann.meta["upgraded_from_format"] == 1 and ann.meta["recall_at_10"] == 0.97
        res = ann.search(x[[7, 30]], k=1)
        assert [r[0] for r in res.item_ids] == ["item-7", "item-30"]  # the stored vectors came back
        assert "item-0" not in {i for r in ann.search(x[[0]], k=58).item_ids for i in r}
