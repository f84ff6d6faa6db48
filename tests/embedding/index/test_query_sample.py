"""Recent query vectors: the reservoir, the recorder's bounded-rate writes, and what builds read back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.settings import IndexSettings
from embedding.index.query_sample import QueryRecorder, QueryReservoir, recent_queries
from storage.filesystem import open_location
from storage.query_samples import QuerySample, QuerySampleStore


def numbered(n: int, dim: int = 4, start: int = 0) -> np.ndarray:
    """Row i carries its arrival number in column 0, so a sample says which queries it kept."""
    x = np.zeros((n, dim), np.float32)
    x[:, 0] = np.arange(start, start + n)
    return x


def test_reservoir_is_bounded_and_uniform_before_the_horizon():
    res = QueryReservoir(200, 100_000, seed=0)
    for i in range(0, 10_000, 50):  # batches of 50, like multi-query requests
        res.offer(numbered(50, start=i))
    vectors, inputs, seen = res.snapshot()
    assert vectors.shape == (200, 4) and inputs is None and seen == 10_000
    arrival = vectors[:, 0]
    assert len(np.unique(arrival)) == 200  # no query twice
    # uniform over all 10k: a quarter of the sample in each quarter of the stream (binomial, 200 draws)
    counts = np.histogram(arrival, bins=4, range=(0, 10_000))[0]
    assert counts.min() >= 30 and counts.max() <= 75


def test_reservoir_forgets_old_queries_past_the_horizon():
    res = QueryReservoir(100, 1_000, seed=1)
    for i in range(0, 20_000, 100):
        res.offer(numbered(100, start=i))
    arrival = res.snapshot()[0][:, 0]
    age = 20_000 - arrival
    # survival after `age` queries is (1 - 1/1000)^age: nothing ~10 horizons old, median age ~ ln2 * 1000
    assert age.max() < 10_000
    assert 300 < np.median(age) < 1_500


def test_reservoir_keeps_inputs_aligned_and_drops_them_when_an_offer_lacks_them():
    res = QueryReservoir(50, 500, seed=2)
    for i in range(0, 2_000, 10):
        x = numbered(10, start=i)
        res.offer(x, inputs=2 * x[:, :3])
    vectors, inputs, _ = res.snapshot()
    np.testing.assert_array_equal(inputs[:, 0], 2 * vectors[:, 0])
    res.offer(numbered(1, start=5_000))  # a text query: no raw features
    assert res.snapshot()[1] is None


def store_at(tmp_path) -> QuerySampleStore:
    return QuerySampleStore(open_location(str(tmp_path / "artifacts")))


def test_recorder_writes_at_a_bounded_rate_and_on_stop(tmp_path):
    store = store_at(tmp_path)
    rec = QueryRecorder(store, IndexSettings(query_sample_size=20, query_sample_flush_seconds=60), writer="w1", seed=0)
    rec.offer("shop", 3, numbered(5))
    assert store.read("shop", 3, max_age_seconds=1e9) == []  # an offer never writes
    assert rec.flush(now=1_000.0) == 1
    rec.offer("shop", 3, numbered(5, start=5))
    assert rec.flush(now=1_030.0) == 0  # changed, but written 30 s ago
    assert len(store.read("shop", 3, max_age_seconds=1e12)[0].vectors) == 5
    assert rec.flush(now=1_060.0) == 1
    assert rec.flush(now=1_200.0) == 0  # nothing new since
    rec.offer("shop", 3, numbered(1, start=10))
    rec.stop()  # shutdown writes what changed, whatever the rate
    (sample,) = store.read("shop", 3, max_age_seconds=1e12)
    assert sample.seen == 11 and sorted(sample.vectors[:, 0]) == list(range(11))


def test_recorder_is_off_without_a_store_or_a_size(tmp_path):
    assert not QueryRecorder(None, IndexSettings()).enabled
    rec = QueryRecorder(store_at(tmp_path), IndexSettings(query_sample_size=0))
    rec.offer("shop", 1, numbered(3))
    assert not rec.enabled and rec.flush(force=True) == 0


class Features:
    input_kind = "features"
    input_dim = 3

    def embed_features(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, np.float32) @ np.array([[1, 0], [0, 1], [1, 1]], np.float32)
        return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_recent_queries_prefer_the_model_version_and_embed_raw_inputs_for_a_new_one(tmp_path):
    rng = np.random.default_rng(0)
    ws = SimpleNamespace(settings=SimpleNamespace(index=IndexSettings(query_sample_size=30)), queries=store_at(tmp_path))
    v1 = rng.standard_normal((40, 2)).astype(np.float32)
    raw = rng.standard_normal((40, 3)).astype(np.float32)
    v1[0] = 0.0  # a zero row would make tuning refuse the sample: it is left out
    ws.queries.write("shop", 1, "w", QuerySample(v1, seen=500, written_at=0.0, inputs=raw))
    same = recent_queries(ws, "shop", 1, embedder=Features(), now=10.0)
    assert same.from_model_version == 1 and not same.embedded_from_inputs and same.queries_seen == 500
    assert len(same.vectors) == 30 and (np.linalg.norm(same.vectors, axis=1) > 0).all()  # capped at the size
    new = recent_queries(ws, "shop", 2, embedder=Features(), now=10.0)  # a candidate never served yet
    assert new.from_model_version == 1 and new.embedded_from_inputs and new.vectors.shape == (30, 2)
    assert np.allclose(np.linalg.norm(new.vectors, axis=1), 1.0)
    text = SimpleNamespace(input_kind="text")
    assert recent_queries(ws, "shop", 2, embedder=text, now=10.0) is None  # texts are not kept: nothing to embed
    assert recent_queries(ws, "shop", 1, now=10.0 + 200 * 3600) is None  # older than max_age_hours
    off = SimpleNamespace(settings=SimpleNamespace(index=IndexSettings(query_sample_size=0)), queries=ws.queries)
    assert recent_queries(off, "shop", 1, now=10.0) is None


def test_settings_refuse_a_horizon_below_the_size():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="query_sample_horizon"):
        IndexSettings(query_sample_size=1000, query_sample_horizon=10)
