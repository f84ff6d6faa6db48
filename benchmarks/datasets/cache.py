"""On-disk cache of the corpus builder under ``benchmarks/.cache/text_corpus/`` (git-ignored).

Three kinds of entries, each written atomically (temporary file in the same folder, then
``os.replace``), so an interrupted build never leaves a half-written entry behind:

- ``collection-<key>.parquet`` + ``.json``: the raw docstrings and the walk's statistics, keyed by
  the environment (Python and every installed distribution's version), the packages walked, the
  walk bounds and the walker's source (collecting costs a minute or two; cleaning and selecting
  are recomputed from it on every load, in about a second);
- ``<name>-<content hash>.parquet`` + ``.json``: the selected rows and their metadata, and
  ``<name>-select-<key>.json`` pointing at them from the key of everything that determines them
  (collection key, seed, selection parameters, the cleaning and selection source), so a repeated
  load skips cleaning too;
- ``<name>-<content hash>-<encoder>.npy``: their embeddings, so a second load never re-encodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.datasets.collect import WALKER, CollectConfig, Collection, RawDoc

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "text_corpus"
_RAW_FIELDS = ("label", "module", "name", "kind", "group", "doc")


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_table(path: Path, table: pa.Table) -> None:
    _atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"))


def write_npy(path: Path, array: np.ndarray) -> None:
    def save(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    _atomic(path, save)


def collection_key(packages: list[str], config: CollectConfig, environment: dict[str, str]) -> str:
    walker = hashlib.sha256(WALKER.read_bytes()).hexdigest()
    blob = json.dumps({"packages": packages, "config": config.__dict__, "environment": environment,
                       "walker": walker}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_collection(cache_dir: Path, key: str, collection: Collection) -> None:
    table = pa.table({f: [getattr(d, f) for d in collection.docs] for f in _RAW_FIELDS},
                     schema=pa.schema([(f, pa.string()) for f in _RAW_FIELDS]))
    write_table(cache_dir / f"collection-{key}.parquet", table)
    write_json(cache_dir / f"collection-{key}.json", {"stats": list(collection.stats), "seconds": collection.seconds,
                                                      "config": collection.config.__dict__})


def load_collection(cache_dir: Path, key: str) -> Collection | None:
    table_path, info_path = cache_dir / f"collection-{key}.parquet", cache_dir / f"collection-{key}.json"
    if not (table_path.exists() and info_path.exists()):
        return None
    cols = pq.read_table(table_path).to_pydict()
    docs = tuple(RawDoc(*vals) for vals in zip(*(cols[f] for f in _RAW_FIELDS), strict=True))
    info = json.loads(info_path.read_text())
    return Collection(docs, tuple(info["stats"]), float(info["seconds"]), CollectConfig(**info["config"]))


def selection_key(collection_key: str, name: str, seed: int, params: dict[str, Any]) -> str:
    here = Path(__file__).parent
    code = hashlib.sha256(b"".join((here / f).read_bytes() for f in ("cleaning.py", "selection.py"))).hexdigest()
    blob = json.dumps({"collection": collection_key, "name": name, "seed": seed, "params": params, "code": code},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_selection(cache_dir: Path, name: str, key: str, rows: list[dict[str, str]], meta: dict[str, Any]) -> None:
    """Rows and metadata under their content hash, then the pointer from ``key`` (written last, so
    it never points at files that are not there)."""
    table_path, meta_path = corpus_paths(cache_dir, name, meta["content_hash"])
    fields = list(rows[0]) if rows else []
    write_table(table_path, pa.table({f: pa.array([r[f] for r in rows], pa.string()) for f in fields}))
    write_json(meta_path, meta)
    write_json(cache_dir / f"{name}-select-{key}.json", {"content_hash": meta["content_hash"]})


def load_selection(cache_dir: Path, name: str, key: str) -> tuple[list[dict[str, str]], dict[str, Any]] | None:
    pointer = cache_dir / f"{name}-select-{key}.json"
    if not pointer.exists():
        return None
    table_path, meta_path = corpus_paths(cache_dir, name, json.loads(pointer.read_text())["content_hash"])
    if not (table_path.exists() and meta_path.exists()):
        return None
    return pq.read_table(table_path).to_pylist(), json.loads(meta_path.read_text())


def encoder_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name)


def embeddings_path(cache_dir: Path, name: str, digest: str, encoder: str) -> Path:
    return cache_dir / f"{name}-{digest[:16]}-{encoder_slug(encoder)}.npy"


def corpus_paths(cache_dir: Path, name: str, digest: str) -> tuple[Path, Path]:
    stem = f"{name}-{digest[:16]}"
    return cache_dir / f"{stem}.parquet", cache_dir / f"{stem}.json"
