"""A content-addressed cache of vectors on local disk: what an encoder made of an input, kept so the
same input is never encoded twice.

Keys are 32-byte digests (sha256 of the input's content); vectors live per *namespace* (an encoder's
name and version: a different encoder never reuses another's vectors). Each namespace is a folder of
``.npy`` shards, one structured array each (``key`` 32 uint8, ``vector`` d float32), memory-mapped
when read: only the keys are read up front (32 bytes a row), vectors when asked for, so a large
collection's cache does not have to fit in memory. A store writes one new shard under a temporary
name and renames it, so readers never see half a shard and concurrent writers (two flows, a CLI
beside a worker) never overwrite each other; when a namespace has more than ``MAX_SHARDS`` shards,
the next store merges them into one, shard by shard (the merged shard appears before the old ones
are removed; a reader that lists a shard that is then removed treats its rows as misses).

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
    index: dict[bytes, int] = field(default_factory=dict)  # key -> row over all shards, in order
    parts: list[np.ndarray] = field(default_factory=list)  # each shard's vectors (memory-mapped)
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # first row of each shard, then n

    @property
    def dim(self) -> int | None:
        return int(self.parts[0].shape[1]) if self.parts else None

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Vectors of global ``rows``, gathered shard by shard."""
        out = np.empty((len(rows), self.dim or 0), dtype=np.float32)
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        for s in np.unique(shard):
            mine = shard == s
            out[mine] = self.parts[s][rows[mine] - self.offsets[s]]
        return out


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
        return sorted(p for p in d.iterdir() if p.suffix == ".npy" and not p.name.startswith("."))

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
        offsets = [0]
        for path in shards:
            try:
                arr = np.load(path, mmap_mode="r")
                keys, vecs = arr["key"], arr["vector"]
            except FileNotFoundError:
                continue  # merged away by another process since we listed it
            except (OSError, ValueError, KeyError, IndexError) as e:
                log.warning("vector cache shard %s is unreadable (%s); its rows will be re-encoded", path, e)
                continue
            if vecs.ndim != 2 or keys.shape[1:] != (KEY_BYTES,) or (parts and vecs.shape[1] != parts[0].shape[1]):
                log.warning("vector cache shard %s has an unexpected shape %s; ignored", path, vecs.shape)
                continue
            n = offsets[-1]
            for i, k in enumerate(np.asarray(keys)):
                index.setdefault(k.tobytes(), n + i)
            parts.append(vecs)
            offsets.append(n + len(vecs))
        loaded = _Loaded(names, index, parts, np.array(offsets, dtype=np.int64))
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
        if not loaded.parts or not found.any():
            return None, found
        out = np.zeros((len(keys), loaded.dim), dtype=np.float32)
        out[found] = loaded.rows(rows[found])
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
        _write_shard(d / f"{uuid.uuid4().hex}.npy", keys, vectors)
        shards = self._shards(namespace)
        if len(shards) > MAX_SHARDS:
            self._merge(namespace, shards)

    def _merge(self, namespace: str, shards: list[Path]) -> None:
        """One shard with every distinct key (first copy wins), written shard by shard (bounded memory)."""
        loaded = self._load(namespace)
        if not loaded.parts:
            return
        rows = np.fromiter(loaded.index.values(), dtype=np.int64, count=len(loaded.index))
        rows.sort()
        path = self._dir(namespace) / f"{uuid.uuid4().hex}.npy"
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npy")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=_dtype(loaded.dim), shape=(len(rows),))
            keys = np.frombuffer(b"".join(loaded.index), dtype=np.uint8).reshape(-1, KEY_BYTES)
            by_row = np.argsort(np.fromiter(loaded.index.values(), dtype=np.int64, count=len(loaded.index)))
            out["key"] = keys[by_row]
            step = 65_536
            for start in range(0, len(rows), step):
                out["vector"][start:start + step] = loaded.rows(rows[start:start + step])
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        for p in shards:
            if p.name in loaded.shards:
                p.unlink(missing_ok=True)

    def size(self, namespace: str) -> int:
        """How many vectors ``namespace`` holds."""
        return len(self._load(namespace).index)


def _check_keys(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
        raise ValidationError(f"vector-cache keys must be (n, {KEY_BYTES}) uint8 digests, got {keys.dtype} {keys.shape}")
    return keys


def _dtype(dim: int) -> np.dtype:
    return np.dtype([("key", np.uint8, (KEY_BYTES,)), ("vector", np.float32, (dim,))])


def _write_shard(path: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    arr = np.empty(len(keys), dtype=_dtype(vectors.shape[1]))
    arr["key"], arr["vector"] = keys, vectors
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npy")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["KEY_BYTES", "MAX_SHARDS", "VectorCache", "namespace_dir_name"]
