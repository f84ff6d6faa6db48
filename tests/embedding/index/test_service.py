"""Index versions through the registry and artifact store, with a small fake embedder."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from core.errors import ArtifactIntegrityError, ConflictError, NotFoundError
from embedding.index.incremental import IncrementalPolicy
from embedding.index.service import build_index_for_model, load_index, update_index
from tests.embedding.index.fakes import DIM, FakeEmbedder
from tests.factories import feature_table


@pytest.fixture
def ws(workspace):
    workspace.store.ingest_table(feature_table(1500, DIM, n_classes=6, seed=1), "shop")
    workspace.registry.models.register_model("shop", config={}, metrics={}, artifacts={})
    return workspace


def exact(ws, emb, as_of, queries, k):
    t = ws.store.read("shop", as_of=as_of, columns=["features"])
    ids = t.column("item_id").to_pylist()
    g = emb.embed_table(t)
    order = np.argsort(-(queries @ g.T), axis=1)[:, :k]
    return [[ids[j] for j in row] for row in order]


def test_build_registers_a_tuned_version_and_load_verifies_it(ws):
    emb = FakeEmbedder()
    iv = build_index_for_model(ws, "shop", 1, embedder=emb, batch_size=256, tune_queries=200, progress=False)
    assert emb.calls >= 6  # streamed in record batches, not one table
    assert iv.num_vectors == 1500 and iv.as_of_batch == 1 and iv.factory == "Flat"
    for key in ("recall_at_1", "recall_at_10", "latency_p50_ms", "latency_p99_ms", "latency_batch_qps",
                "build_seconds", "bytes", "threads"):
        assert key in iv.metrics
    assert iv.metrics["recall_at_10"] == pytest.approx(1.0)
    assert iv.metrics["query_source"] == "held_out_items" and iv.metrics["tune_queries"] == 200
    assert ws.registry.models.list_indexes("shop", 1)[-1].id == iv.id
    ann = load_index(ws, iv.id)
    q = emb.embed_table(ws.store.read("shop", columns=["features"]).slice(0, 5))
    assert ann.search(q, 5).item_ids == exact(ws, emb, 1, q, 5)
    assert ws.production.index("shop", model_version=1).id == iv.id


def test_corrupted_artifact_is_refused_on_load(ws):
    iv = build_index_for_model(ws, "shop", 1, embedder=FakeEmbedder(), tune_queries=50, progress=False)
    path = ws.artifacts.local_path(iv.artifact)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError):
        load_index(ws, iv.id)


def test_update_applies_new_updated_and_deleted_items(ws):
    emb = FakeEmbedder()
    iv = build_index_for_model(ws, "shop", 1, embedder=emb, tune_queries=50, progress=False)
    new = feature_table(100, DIM, n_classes=6, seed=2, start=5000)
    upd = feature_table(50, DIM, n_classes=6, seed=3)  # ids i0..i49 with new features
    dele = feature_table(20, DIM, seed=4, start=100).append_column("deleted", pa.array([True] * 20))
    ws.store.ingest_table(pa.concat_tables([new, upd]), "shop")
    ws.store.ingest_table(dele, "shop")
    iv2 = update_index(ws, "shop", iv.id, 3, embedder=emb, policy=IncrementalPolicy(sample_queries=100))
    assert iv2.as_of_batch == 3 and iv2.params["parent_index"] == iv.id
    assert iv2.num_vectors == 1500 + 100 - 20
    inc = iv2.metrics["incremental"]
    assert (inc["added"], inc["updated"], inc["removed"]) == (100, 50, 20)
    ann = load_index(ws, iv2.id)
    q = emb.embed_table(upd.slice(0, 10))
    assert ann.search(q, 10).item_ids == exact(ws, emb, 3, q, 10)
    assert "i100" not in ann and "i5000" in ann
    assert iv2.metrics["measured_after"] == "update" and iv2.metrics["recall_at_10"] >= 0.95
    assert iv2.metrics["query_source"] == "held_out_items" and iv2.metrics["latency_p50_ms"] > 0
    with pytest.raises(ConflictError):
        update_index(ws, "shop", iv2.id, 3, embedder=emb)


def test_missing_things_are_not_found(ws):
    with pytest.raises(NotFoundError):
        build_index_for_model(ws, "shop", 9, embedder=FakeEmbedder(), progress=False)
    with pytest.raises(NotFoundError):
        load_index(ws, 12345)
    with pytest.raises(NotFoundError):
        ws.production.index("shop")


def test_index_keeps_the_reference_window_embeddings_and_updates_them(ws):
    """The stored reference rows are exactly what embedding each window batch gives, matched by input."""
    from embedding.index.reference import input_digests, load_reference

    emb = FakeEmbedder()
    iv = build_index_for_model(ws, "shop", 1, embedder=emb, tune_queries=50, progress=False)
    assert iv.params["reference_embeddings"]["batches"] == [1]
    upd = feature_table(50, DIM, n_classes=6, seed=3)  # rewrites i0..i49 of batch 1
    ws.store.ingest_table(pa.concat_tables([feature_table(100, DIM, n_classes=6, seed=2, start=5000), upd]), "shop")
    iv2 = update_index(ws, "shop", iv.id, 2, embedder=emb, policy=IncrementalPolicy(sample_queries=50))
    assert iv2.params["reference_embeddings"]["batches"] == [1, 2]
    ref = load_reference(ws, iv2)
    assert len(ref) == 1500 + 150 - 50  # batch 1's rewritten rows are no longer its items' versions
    for seq in (1, 2):
        t = ws.store.read_batch("shop", seq, columns=["features"])
        vecs, found = ref.lookup(t.column("item_id").to_pylist(), input_digests(t, "features"))
        expected_found = np.array([seq == 2 or int(i[1:]) >= 50 for i in t.column("item_id").to_pylist()])
        np.testing.assert_array_equal(found, expected_found)
        np.testing.assert_allclose(vecs[found], emb.embed_table(t)[found], rtol=1e-6)


def test_build_and_update_tune_on_the_query_vectors_the_service_recorded(ws):
    """What `steward api` sampled (embedding/index/query_sample.py) reaches tuning as recent queries."""
    import time

    from storage.query_samples import QuerySample

    emb = FakeEmbedder()
    raw = np.random.default_rng(5).standard_normal((80, DIM)).astype(np.float32)
    ws.queries.write("shop", 1, "api-1", QuerySample(emb.embed_features(raw), seen=900, written_at=time.time(),
                                                     inputs=raw))
    iv = build_index_for_model(ws, "shop", 1, embedder=emb, tune_queries=100, progress=False)
    assert iv.metrics["query_source"] == "held_out_items+recent_queries"
    assert set(iv.metrics["recall_by_source"]) == {"held_out_items", "recent_queries"}
    assert iv.metrics["recent_queries"] == {"n": 80, "from_model_version": 1, "embedded_from_inputs": False,
                                            "queries_seen": 900, "from": "search service"}
    ws.store.ingest_table(feature_table(60, DIM, n_classes=6, seed=2, start=5000), "shop")
    iv2 = update_index(ws, "shop", iv.id, 2, embedder=emb, policy=IncrementalPolicy(sample_queries=30))
    assert iv2.metrics["query_source"] == "held_out_items+recent_queries"
    assert iv2.metrics["recent_queries"]["n"] == 80
    # a new model version the service has not served: the raw feature queries are embedded with it
    ws.registry.models.register_model("shop", config={}, metrics={}, artifacts={})
    iv3 = build_index_for_model(ws, "shop", 2, embedder=emb, tune_queries=100, progress=False)
    assert iv3.metrics["recent_queries"]["embedded_from_inputs"] is True
    assert iv3.metrics["query_source"] == "held_out_items+recent_queries"
