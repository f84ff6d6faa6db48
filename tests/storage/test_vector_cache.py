"""The content-addressed vector cache: atomic shards, namespaces, merging."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.errors import ValidationError
from storage import vector_cache
from storage.vector_cache import VectorCache


def _keys(*names: str) -> np.ndarray:
    return np.array([np.frombuffer(hashlib.sha256(n.encode()).digest(), np.uint8) for n in names])


def test_lookup_returns_stored_rows_and_misses(tmp_path):
    cache = VectorCache(tmp_path)
    cache.store("enc@1", _keys("a", "b"), np.array([[1, 2], [3, 4]], np.float32))
    vecs, found = VectorCache(tmp_path).lookup("enc@1", _keys("b", "c", "a"))
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(vecs[[0, 2]], [[3, 4], [1, 2]])
    assert VectorCache(tmp_path).lookup("enc@2", _keys("a"))[1].tolist() == [False]
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary file left behind


def test_many_stores_are_merged_into_one_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(vector_cache, "MAX_SHARDS", 3)
    cache = VectorCache(tmp_path)
    for i in range(5):
        cache.store("enc", _keys(f"t{i}"), np.full((1, 2), i, np.float32))
    assert len(list((tmp_path / "enc").glob("*.npy"))) <= 3
    vecs, found = VectorCache(tmp_path).lookup("enc", _keys(*(f"t{i}" for i in range(5))))
    assert found.all()
    np.testing.assert_array_equal(vecs[:, 0], np.arange(5))


def test_a_corrupt_shard_is_a_miss_not_an_error(tmp_path):
    cache = VectorCache(tmp_path)
    cache.store("enc", _keys("a"), np.ones((1, 2), np.float32))
    (tmp_path / "enc" / "zz-broken.npy").write_bytes(b"not a zip")
    assert VectorCache(tmp_path).lookup("enc", _keys("a"))[1].tolist() == [True]


def test_bad_keys_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="digests"):
        VectorCache(tmp_path).lookup("enc", np.zeros((2, 16), np.uint8))
