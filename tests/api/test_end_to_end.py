"""The service on real artifacts: real embedders (torch heads) and real indexes from the artifact store.

Models are untrained heads with different seeds (training is not what this tests); the index is
built by ``embedding.index.service``. Checks: search answers from the production pair, a promotion
swaps both at once, and a pair whose artifact was altered is refused while production keeps serving.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.api.fakes import TOKEN
from tests.factories import feature_table

pytest.importorskip("embedding.inference")
index_service = pytest.importorskip("embedding.index.service")

COLLECTION = "shop"
DIM = 8


def _register_head(workspace, seed: int) -> int:
    from embedding.model import HeadSpec, build_head
    from storage.serialization import state_dict_to_bytes

    spec = HeadSpec(in_dim=DIM, hidden_dims=(16,), out_dim=8)
    head = build_head(spec, seed=seed)
    sha = workspace.artifacts.put_bytes(state_dict_to_bytes(head.state_dict()))
    model = workspace.registry.models.register_model(
        COLLECTION,
        config={"architecture": spec.to_dict(), "input_kind": "features"},
        metrics={"overall": {"map_at_r": 0.5}},
        artifacts={"weights": sha},
    )
    return model.version


@pytest.fixture
def real_world(api_workspace):
    table = feature_table(120, DIM, n_classes=4, seed=3)
    api_workspace.store.ingest_table(table, COLLECTION)
    pairs = {}
    for seed in (1, 2, 3):
        version = _register_head(api_workspace, seed)
        pairs[version] = index_service.build_index_for_model(api_workspace, COLLECTION, version).id
    api_workspace.registry.models.switch_alias(COLLECTION, 1, pairs[1], actor="test", reason="first")
    ids = table.column("item_id").to_pylist()
    feats = np.asarray(table.column("features").combine_chunks().flatten(), dtype=np.float32).reshape(-1, DIM)
    return pairs, ids, feats


def test_real_pairs_serve_swap_and_refuse_altered_artifacts(api_settings, api_workspace, real_world):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app

    pairs, ids, feats = real_world
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(api_settings, workspace=api_workspace, poll_seconds=0.1)) as c:
        r = c.post("/search", json={"vectors": feats[:5].tolist(), "k": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["model_version"], body["index_version"]) == (1, pairs[1])
        # an item's own features find the item itself (same model embedded the gallery)
        assert [h["item_ids"][0] for h in body["results"]] == ids[:5]
        assert c.post("/search", json={"vectors": [[0.0] * (DIM + 1)]}).status_code == 422
        r = c.post("/search", json={"item_ids": [ids[7]], "k": 2})
        assert r.status_code == 200
        hits = r.json()["results"][0]["item_ids"]
        assert len(hits) == 2 and ids[7] not in hits  # the index leaves the query item out
        assert c.post("/search", json={"item_ids": ["nope"]}).status_code == 404

        r = c.post("/promote", json={"model_version": 2}, headers=auth)
        assert r.status_code == 200, r.text
        body = c.post("/search", json={"vectors": feats[:5].tolist(), "k": 3}).json()
        assert (body["model_version"], body["index_version"]) == (2, pairs[2])
        assert [h["item_ids"][0] for h in body["results"]] == ids[:5]

        # Alter the stored index of model v3: promoting it must fail its checksum, v2 keeps serving.
        # (The index, not the weights: building the index already loaded v3's verified weights, and
        # the embedder cache rightly serves that verified in-memory copy.)
        sha = api_workspace.registry.models.get_index(pairs[3]).artifact
        path = api_workspace.artifacts.local_path(sha)
        path.chmod(0o644)
        data = path.read_bytes()
        path.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
        r = c.post("/promote", json={"model_version": 3}, headers=auth)
        assert r.status_code == 409, r.text
        assert api_workspace.registry.models.get_alias(COLLECTION).model_version == 2
        assert c.post("/search", json={"item_ids": [ids[0]]}).json()["model_version"] == 2
