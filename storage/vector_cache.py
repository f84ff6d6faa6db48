"""A content-addressed cache of vectors on local disk: what an encoder made of an input, kept so the
same input is never encoded twice.

Keys are 32-byte digests (sha256 of the input's content); vectors live per *namespace* (an encoder's
name and version: a different encoder never reuses another's vectors). Each namespace is a folder of
``.npz`` shards (``keys`` (n, 32) uint8, ``vectors`` (n, d) float32). A store writes one new shard
under a temporary name and renames it, so readers never see half a shard and concurrent writers
(two flows, a CLI beside a worker) never overwrite each other; when a namespace has more than
``MAX_SHARDS`` shards, the next store merges them into one (the merged shard appears before the
old ones are removed; a reader that lists a shard that is then removed treats its rows as misses).

The cache is a speed-up, never a source of truth: a lost or unreadable shard only costs a re-encode.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ValidationError

log = logging.getLogger(__name__)

KEY_BYTES = 32
MAX_SHARDS = 16
_NAMESPACE = re.compile(r"[^A-Za-z0-9._@+-]")


def namespace_dir_name(namespace: str) -> str:
    """A folder name for ``namespace`` (anything outside ``[A-Za-z0-9._@+-]`` becomes ``_``)."""
    if not namespace:
        raise ValidationError("a vector-cache namespace must not be empty (name the encoder and its version)")
    return _NAMESPACE.sub("_", namespace)


@dataclass
class _Loaded:
    shards: frozenset[str] = frozenset()
    index: dict[bytes, int] = field(default_factory=dict)
    vectors: np.ndarray | None = None


class VectorCache:
    """Vectors by content digest, per namespace, under ``root`` (see module doc)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def _dir(self, namespace: str) -> Path:
        return self.root / namespace_dir_name(namespace)

    def _shards(self, namespace: str) -> list[Path]:
        d = self._dir(namespace)
        if not d.is_dir():
            return []
        return sorted(p for p in d.iterdir() if p.suffix == ".npz" and not p.name.startswith("."))

    def _load(self, namespace: str) -> _Loaded:
        """The namespace's vectors in memory, re-read only when its shards changed."""
        shards = self._shards(namespace)
        names = frozenset(p.name for p in shards)
        with self._lock:
            cached = self._loaded.get(namespace)
        if cached is not None and cached.shards == names:
            return cached
        index: dict[bytes, int] = {}
        parts: list[np.ndarray] = []
        n = 0
        for path in shards:
            try:
                with np.load(path) as z:
                    keys, vecs = z["keys"], z["vectors"]
            except FileNotFoundError:
                continue  # merged away by another process since we listed it
            except (OSError, ValueError, KeyError) as e:
                log.warning("vector cache shard %s is unreadable (%s); its rows will be re-encoded", path, e)
                continue
            if parts and vecs.shape[1] != parts[0].shape[1]:
                log.warning("vector cache shard %s has dimension %d, not %d; ignored", path, vecs.shape[1],
                            parts[0].shape[1])
                continue
            for i, k in enumerate(keys):
                index.setdefault(k.tobytes(), n + i)
            parts.append(np.asarray(vecs, dtype=np.float32))
            n += len(vecs)
        loaded = _Loaded(names, index, np.concatenate(parts) if parts else None)
        with self._lock:
            self._loaded[namespace] = loaded
        return loaded

    def lookup(self, namespace: str, keys: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """``(vectors, found)`` for ``keys`` ((n, 32) uint8): rows of ``vectors`` where ``found`` is
        False are zeros; ``vectors`` is None when nothing was found."""
        keys = _check_keys(keys)
        loaded = self._load(namespace)
        rows = np.array([loaded.index.get(k.tobytes(), -1) for k in keys], dtype=np.int64)
        found = rows >= 0
        if loaded.vectors is None or not found.any():
            return None, found
        out = np.zeros((len(keys), loaded.vectors.shape[1]), dtype=np.float32)
        out[found] = loaded.vectors[rows[found]]
        return out, found

    def store(self, namespace: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` under ``keys`` (a new shard, written atomically); merge shards when many."""
        keys = _check_keys(keys)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValidationError(f"{len(keys)} keys but vectors of shape {vectors.shape}; they must pair up")
        if not len(keys):
            return
        d = self._dir(namespace)
        d.mkdir(parents=True, exist_ok=True)
        _write_shard(d / f"{uuid.uuid4().hex}.npz", keys, vectors)
        shards = self._shards(namespace)
        if len(shards) > MAX_SHARDS:
            self._merge(namespace, shards)

    def _merge(self, namespace: str, shards: list[Path]) -> None:
        loaded = self._load(namespace)
        if loaded.vectors is None:
            return
        keys = np.empty((len(loaded.index), KEY_BYTES), dtype=np.uint8)
        rows = np.empty(len(loaded.index), dtype=np.int64)
        for i, (k, r) in enumerate(loaded.index.items()):
            keys[i] = np.frombuffer(k, dtype=np.uint8)
            rows[i] = r
        _write_shard(self._dir(namespace) / f"{uuid.uuid4().hex}.npz", keys, loaded.vectors[rows])
        for path in shards:
            if path.name in loaded.shards:
                path.unlink(missing_ok=True)

    def size(self, namespace: str) -> int:
        """How many vectors ``namespace`` holds."""
        return len(self._load(namespace).index)


def _check_keys(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
        raise ValidationError(f"vector-cache keys must be (n, {KEY_BYTES}) uint8 digests, got {keys.dtype} {keys.shape}")
    return keys


def _write_shard(path: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, keys=keys, vectors=vectors)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["KEY_BYTES", "MAX_SHARDS", "VectorCache", "namespace_dir_name"]
