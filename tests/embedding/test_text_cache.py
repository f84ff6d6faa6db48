"""The encoding cache: each text is encoded once per encoder name and version."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from embedding.text_cache import CachedTextEncoder, encoder_key, text_digests
from storage.vector_cache import VectorCache


class CountingEncoder:
    """A deterministic fake encoder that records every text it was asked to encode."""

    dim = 8

    def __init__(self, name: str = "fake", version: str = "1") -> None:
        self.name, self.version = name, version
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        salt = f"{self.name}{self.version}"
        return np.array([np.frombuffer(hashlib.sha256((salt + t).encode()).digest()[:8], np.uint8) / 255.0
                         for t in texts], dtype=np.float32)


def _cached(tmp_path, enc: CountingEncoder, chunk: int = 3) -> CachedTextEncoder:
    loads: list[int] = []

    def load() -> CountingEncoder:
        loads.append(1)
        return enc

    out = CachedTextEncoder(VectorCache(tmp_path / "vectors"), encoder_key(enc), load, chunk=chunk)
    out.loads = loads  # type: ignore[attr-defined]
    return out


TEXTS = ["a red bicycle", "a crimson bike", "tax law in France", "", "a red bicycle"]


def test_second_encode_of_the_same_texts_does_not_call_the_encoder(tmp_path):
    enc = CountingEncoder()
    first = _cached(tmp_path, enc).encode(TEXTS)
    assert sorted(enc.seen) == sorted(set(TEXTS))  # each distinct text once, duplicates included once
    np.testing.assert_array_equal(first, enc.encode(TEXTS))  # same vectors as encoding directly
    enc.seen.clear()
    again = _cached(tmp_path, enc)  # a fresh process-level object: the cache is on disk
    second = again.encode(TEXTS)
    assert enc.seen == [] and again.loads == []  # the encoder was not even loaded
    np.testing.assert_array_equal(second, first)


def test_a_changed_text_re_encodes_only_that_row(tmp_path):
    enc = CountingEncoder()
    first = _cached(tmp_path, enc).encode(TEXTS)
    enc.seen.clear()
    changed = [*TEXTS[:2], "tax law in Spain", *TEXTS[3:]]
    second = _cached(tmp_path, enc).encode(changed)
    assert enc.seen == ["tax law in Spain"]
    np.testing.assert_array_equal(np.delete(second, 2, axis=0), np.delete(first, 2, axis=0))
    assert not np.array_equal(second[2], first[2])


def test_a_different_encoder_does_not_reuse_vectors(tmp_path):
    _cached(tmp_path, CountingEncoder("fake", "1")).encode(TEXTS)
    for other in (CountingEncoder("fake", "2"), CountingEncoder("other", "1")):
        out = _cached(tmp_path, other).encode(TEXTS)
        assert sorted(other.seen) == sorted(set(TEXTS))
        np.testing.assert_array_equal(out, other.encode(TEXTS))


def test_text_digests_are_sha256_of_utf8():
    d = text_digests(["é", None])
    assert d.shape == (2, 32) and d.dtype == np.uint8
    assert d[0].tobytes() == hashlib.sha256("é".encode()).digest()
    assert d[1].tobytes() == hashlib.sha256(b"").digest()


def test_embedder_caches_item_rows_but_not_ad_hoc_queries(tmp_path, monkeypatch):
    import embedding.model
    from embedding.inference import Embedder
    from embedding.model import TEXT_ENCODER_DIM, HeadSpec, build_head

    class Fake384(CountingEncoder):
        def encode(self, texts):
            self.seen.extend(texts)
            return np.ones((len(texts), TEXT_ENCODER_DIM), np.float32)

    fake = Fake384()
    monkeypatch.setattr(embedding.model, "get_text_encoder", lambda device="cpu": fake)
    e = Embedder(build_head(HeadSpec(TEXT_ENCODER_DIM, (8,), 4), 0), model_version=1, input_kind="text")
    e.text_cache = VectorCache(tmp_path / "vectors")
    items = pa.table({"item_id": ["a", "b"], "text": ["x", "y"]})
    e.embed_table(items)
    e.embed_table(items)
    assert fake.seen == ["x", "y"]  # the second call came from the cache
    e.embed_table(pa.table({"text": ["q"]}))
    e.embed_table(pa.table({"text": ["q"]}))
    assert fake.seen == ["x", "y", "q", "q"]  # queries are not cached
