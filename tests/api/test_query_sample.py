"""The search service samples the query vectors it answers, for index tuning (index.query_sample_*)."""

from __future__ import annotations

import numpy as np

from tests.api.fakes import COLLECTION, FakeEmbedder, gallery
from tests.factories import make_settings

IDS, FEATS = gallery()


def _serve(settings, workspace, loader, requests):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app

    app = create_app(settings, workspace=workspace, loader=loader, poll_seconds=0.05)
    with TestClient(app) as client:  # leaving it shuts the app down: the recorder writes then
        for body in requests:
            r = client.post("/search", json=body)
            assert r.status_code == 200, r.text
        recorder = app.state.service.queries
        assert not list(workspace.queries.read(COLLECTION, 1, max_age_seconds=3600))  # nothing written per query
    return recorder


def test_answered_vector_queries_are_sampled_and_written_on_shutdown(api_settings, api_workspace, pairs, loader):
    requests = [{"vectors": FEATS[i : i + 2].tolist(), "k": 3} for i in range(0, 20, 2)]
    requests.append({"item_ids": IDS[:4], "k": 3})  # items of the index are not new queries
    recorder = _serve(api_settings, api_workspace, loader, requests)
    assert recorder.enabled
    (sample,) = api_workspace.queries.read(COLLECTION, 1, max_age_seconds=3600)
    assert sample.seen == 20 and sample.vectors.shape[0] == 20
    # the sample holds what model v1 made of each query, beside the raw features it came from
    order = np.argsort(sample.inputs[:, 0])
    np.testing.assert_allclose(sample.inputs[order], FEATS[:20][np.argsort(FEATS[:20, 0])], rtol=1e-6)
    np.testing.assert_allclose(sample.vectors, FakeEmbedder(1).embed_features(sample.inputs), rtol=1e-5, atol=1e-6)


def test_no_sample_when_the_size_is_zero(tmp_path, api_workspace, pairs, loader):
    from tests.api.fakes import TOKEN

    settings = make_settings(tmp_path / "home", STEWARD_API_TOKEN=TOKEN, STEWARD_INDEX_QUERY_SAMPLE_SIZE="0")
    recorder = _serve(settings, api_workspace, loader, [{"vectors": FEATS[:3].tolist(), "k": 3}])
    assert recorder is None
    assert api_workspace.queries.read(COLLECTION, 1, max_age_seconds=3600) == []
