"""Every endpoint of the search service, including bad requests and the token rule."""

from __future__ import annotations

import time

import numpy as np
import pytest

from steward.api.schemas import MAX_BATCH, MAX_K
from tests.api.fakes import COLLECTION, DIM_IN, N_ITEMS, FakeLoader, gallery, self_match_ok

IDS, FEATS = gallery()


def _query(client, **body):
    return client.post("/search", json=body)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# ---- search ---------------------------------------------------------------------------------


def test_search_by_vectors_answers_with_the_production_pair(client, pairs):
    r = _query(client, vectors=FEATS[:3].tolist(), k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_version"], body["index_version"]) == (1, pairs[1])
    assert body["collection"] == COLLECTION
    assert [len(h["item_ids"]) for h in body["results"]] == [5, 5, 5]
    assert self_match_ok(body, IDS[:3])
    scores = body["results"][0]["scores"]
    assert scores == sorted(scores, reverse=True)


def test_search_by_item_ids_and_named_collection(client):
    r = _query(client, collection=COLLECTION, item_ids=[IDS[4]], k=3)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["item_ids"][0] == IDS[4]


def test_k_larger_than_the_index_returns_every_item(client):
    r = _query(client, vectors=FEATS[:1].tolist(), k=MAX_K)
    assert r.status_code == 200
    assert len(r.json()["results"][0]["item_ids"]) == N_ITEMS


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"vectors": [[0.0] * (DIM_IN + 1)], "k": 3}, 422, "dimension 9"),
        ({"vectors": [[0.0] * DIM_IN, [0.0] * 3]}, 422, "different lengths"),
        ({"vectors": [[0.0] * DIM_IN], "k": 0}, 422, "k:"),
        ({"vectors": [[0.0] * DIM_IN], "k": MAX_K + 1}, 422, "k:"),
        ({"vectors": [[0.0] * DIM_IN]} | {"k": "ten"}, 422, "k:"),
        ({"k": 3}, 422, "exactly one of"),
        ({"vectors": [[0.0] * DIM_IN], "item_ids": ["x"]}, 422, "exactly one of"),
        ({"vectors": []}, 422, "empty"),
        ({"texts": ["hello"]}, 422, "takes feature vectors"),
        ({"item_ids": ["item-000", "no-such-item"]}, 404, "no-such-item"),
        ({"collection": "nope", "vectors": [[0.0] * DIM_IN]}, 404, "'nope' does not exist"),
        ({"vectors": [[0.0] * DIM_IN] * (MAX_BATCH + 1)}, 422, "vectors:"),
        ({"vectors": [[0.0] * DIM_IN], "bogus": 1}, 422, "bogus"),
    ],
)
def test_bad_search_requests_get_a_clear_4xx(client, body, status, needle):
    r = client.post("/search", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_non_finite_vectors_and_broken_json_are_4xx(client):
    bad = '{"vectors": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}'
    r = client.post("/search", content=bad, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "NaN" in r.json()["detail"]
    r = client.post("/search", content="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_oversized_body_is_refused_before_it_is_read(client):
    big = b'{"texts": ["' + b"a" * (17 * 2**20) + b'"]}'
    r = client.post("/search", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "exceeds" in r.json()["detail"]


def test_search_before_any_production_is_503(api_settings, api_workspace, loader):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app

    api_workspace.registry.catalog.ensure_collection(COLLECTION, kind="features", dim=DIM_IN)
    with TestClient(create_app(api_settings, workspace=api_workspace, loader=loader)) as c:
        r = c.post("/search", json={"vectors": [[0.0] * DIM_IN]})
        assert r.status_code == 503 and "no model in service" in r.json()["detail"]
        assert c.get("/health").status_code == 200  # nothing to serve is not an outage


# ---- health, versions, status --------------------------------------------------------------


def test_health_reports_the_served_pair(client, pairs):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["serving"][COLLECTION]["model_version"] == 1
    assert body["serving"][COLLECTION]["index_version"] == pairs[1]


def test_health_answers_when_the_registry_does_not(client, monkeypatch):
    def down():
        raise RuntimeError("database is down")

    monkeypatch.setattr(client.app.state.workspace.registry.catalog, "list_collections", down)
    body = client.get("/health").json()
    assert body["status"] == "degraded" and "database is down" in body["registry_error"]
    # search keeps working from the pair in memory
    assert client.post("/search", json={"vectors": FEATS[:1].tolist()}).status_code == 200


def test_versions_lists_production_and_history(client, api_workspace, pairs):
    api_workspace.registry.models.switch_alias(COLLECTION, 2, pairs[2], actor="ci", reason="better MAP@R")
    body = client.get("/versions").json()["collections"][COLLECTION]
    assert body["production"]["model_version"] == 2
    assert [h["reason"] for h in body["history"]] == ["first model", "better MAP@R"]
    assert body["history"][-1]["from_model"] == 1
    assert client.get("/versions", params={"collection": "nope"}).status_code == 404


def test_status_shows_drift_alerts_and_load_failures(api_settings, api_workspace, pairs):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app

    registry = api_workspace.registry
    report = registry.monitoring.record_drift_report(
        COLLECTION,
        batch_seq=2,
        model_version=1,
        drifted=True,
        alpha=0.05,
        summary={"mmd": {"statistic": 0.3, "p_value": 0.001}},
    )
    registry.monitoring.add_alert(
        COLLECTION,
        kind="drift",
        message="drift on batch 2",
        payload={},
        dedup_key="d2",
        drift_report_id=report.id,
    )
    loader = FakeLoader(broken={3})
    app = create_app(api_settings, workspace=api_workspace, loader=loader, poll_seconds=0.05)
    with TestClient(app) as c:
        status = c.get("/status").json()["collections"][COLLECTION]
        assert status["last_drift_check"]["report_id"] == report.id and status["last_drift_check"]["drifted"]
        assert [a["title"] for a in status["open_alerts"]] == ["drift on batch 2"]
        assert status["last_load_failure"] is None and status["serving_matches_production"]

        # Another process promotes a pair whose artifact is broken: keep serving v1, say why.
        registry.models.switch_alias(COLLECTION, 3, pairs[3], actor="other-process", reason="bad artifact")
        wait_for(lambda: app.state.serving.failures.get(COLLECTION) is not None)
        status = c.get("/status").json()["collections"][COLLECTION]
        assert "checksum" in status["last_load_failure"]["error"]
        assert status["last_load_failure"]["model_version"] == 3
        assert status["serving"]["model_version"] == 1 and not status["serving_matches_production"]
        assert status["open_alerts"] == []  # production changed after the alert
        r = c.post("/search", json={"vectors": FEATS[:2].tolist()})
        assert r.status_code == 200 and r.json()["model_version"] == 1 and self_match_ok(r.json(), IDS[:2])
        assert c.get("/health").json()["status"] == "ok"


# ---- promote / rollback and the token rule ------------------------------------------------------


def test_mutations_are_disabled_without_a_configured_token(tmp_path, pairs, api_workspace, loader):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app
    from tests.factories import make_settings

    settings = make_settings(tmp_path / "home")  # same registry, no token
    assert settings.api_token is None
    with TestClient(create_app(settings, workspace=api_workspace, loader=loader)) as c:
        for path, body in (("/promote", {"model_version": 2}), ("/rollback", {})):
            r = c.post(path, json=body, headers={"Authorization": "Bearer anything"})
            assert r.status_code == 403 and "disabled" in r.json()["detail"]
    assert api_workspace.registry.models.get_alias(COLLECTION).model_version == 1


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic s3cret-token", "Bearer "])
def test_mutations_need_the_right_token(client, api_workspace, header):
    headers = {"Authorization": header} if header else {}
    r = client.post("/promote", json={"model_version": 2}, headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert api_workspace.registry.models.get_alias(COLLECTION).model_version == 1


def test_promote_then_rollback_switch_serving_at_once(client, auth, pairs, loader):
    r = client.post("/promote", json={"model_version": 2, "reason": "retrained"}, headers=auth)
    assert r.status_code == 200, r.text
    change = r.json()
    assert (change["from_model"], change["to_model"], change["to_index"]) == (1, 2, pairs[2])
    assert change["serving"]["model_version"] == 2  # swapped before the response
    body = client.post("/search", json={"vectors": FEATS[:2].tolist()}).json()
    assert (body["model_version"], body["index_version"]) == (2, pairs[2]) and self_match_ok(body, IDS[:2])

    r = client.post("/rollback", json={"reason": "v2 looks wrong"}, headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["to_model"], r.json()["serving"]["model_version"]) == (1, 1)
    assert client.post("/search", json={"item_ids": [IDS[0]]}).json()["model_version"] == 1
    # v1 was still cached: the rollback did not load anything again
    assert loader.calls.count((1, pairs[1])) == 1

    r = client.post("/rollback", json={"to_version": 3}, headers=auth)
    assert r.status_code == 200 and r.json()["to_model"] == 3
    history = client.get("/versions").json()["collections"][COLLECTION]["history"]
    assert [h["actor"] for h in history[1:]] == ["api", "api", "api"]


def test_promote_refuses_a_pair_that_does_not_load(api_settings, api_workspace, pairs, auth):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app

    app = create_app(api_settings, workspace=api_workspace, loader=FakeLoader(broken={2}))
    with TestClient(app) as c:
        r = c.post("/promote", json={"model_version": 2}, headers=auth)
        assert r.status_code == 409 and "production is unchanged" in r.json()["detail"]
        assert api_workspace.registry.models.get_alias(COLLECTION).model_version == 1
        r = c.post("/rollback", json={"to_version": 2}, headers=auth)
        assert r.status_code == 409
        assert api_workspace.registry.models.get_alias(COLLECTION).model_version == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/promote", {"model_version": 9}, 404, "no model version 9"),
        ("/promote", {"model_version": 1}, 409, "already points"),
        ("/promote", {"model_version": 2, "index_version": 1}, 409, "does not belong"),
        ("/promote", {"model_version": 0}, 422, "model_version"),
        ("/promote", {"model_version": 2, "collection": "nope"}, 404, "'nope'"),
        ("/rollback", {}, 404, "no earlier production pair"),
        ("/rollback", {"to_version": 9}, 404, "no model version 9"),
    ],
)
def test_bad_mutations_get_a_clear_4xx(client, auth, path, body, status, needle):
    r = client.post(path, json=body, headers=auth)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_watcher_follows_changes_made_by_another_process(client, api_workspace, pairs):
    api_workspace.registry.models.switch_alias(COLLECTION, 3, pairs[3], actor="cli", reason="nightly")

    def served() -> int:
        return client.post("/search", json={"vectors": FEATS[:1].tolist()}).json()["model_version"]

    wait_for(lambda: served() == 3)
    api_workspace.registry.models.rollback(COLLECTION, actor="cli", reason="undo")
    wait_for(lambda: served() == 1)


# ---- dashboard, reports, schema -----------------------------------------------------------------


def test_dashboard_shows_production_history_metrics_and_drift(client, api_workspace, pairs):
    registry = api_workspace.registry
    sha = api_workspace.artifacts.put_bytes(b"<html><body>evidently drift report</body></html>")
    for seq, p in ((1, 0.4), (2, 0.0001)):
        registry.monitoring.record_drift_report(
            COLLECTION,
            batch_seq=seq,
            model_version=1,
            drifted=p < 0.05,
            alpha=0.05,
            summary={"detectors": {"mmd": {"name": "mmd", "p_value": p}, "ks": {"name": "ks", "p_value": p * 2}},
                     "decision": {"drifted": p < 0.05, "combined_p_value": p}},
            report_artifact=sha,
        )
    registry.models.switch_alias(COLLECTION, 2, pairs[2], actor="ci", reason="passed the gate")
    html = client.get("/").text
    assert 'id="production-digits" data-model-version="2"' in html
    assert "passed the gate" in html and "first model" in html
    assert "MAP@R, new classes" in html and "forgetting, worst class" in html and "recall@10" in html
    assert ">0.620<" in html and ">0.952<" in html  # v2's MAP@R on new classes, index 2's recall@10
    assert "<svg" in html and "drift-band" in html and "α 0.05" in html
    assert "new_vs_new" not in html and "map_at_r" not in html  # readable headings, never raw keys
    assert 'name="token"' in html
    report_id = registry.monitoring.list_drift_reports(COLLECTION)[0].id
    assert f"/reports/drift/{report_id}" in html
    r = client.get(f"/reports/drift/{report_id}")
    assert r.status_code == 200 and "evidently drift report" in r.text
    assert client.get("/reports/drift/999").status_code == 404
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/", params={"collection": "nope"}).status_code == 404


def test_dashboard_without_token_disables_the_rollback_button(tmp_path, api_workspace, pairs, loader):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app
    from tests.factories import make_settings

    with TestClient(
        create_app(make_settings(tmp_path / "home"), workspace=api_workspace, loader=loader)
    ) as c:
        html = c.get("/").text
    assert 'name="token"' not in html and "no API token configured" in html


def test_openapi_schema_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/health", "/versions", "/status", "/promote", "/rollback"} <= set(paths)


def test_create_app_refuses_a_bad_poll_interval(api_settings, api_workspace):
    from core.errors import ConfigError
    from steward.api.app import create_app

    with pytest.raises(ConfigError, match="poll_seconds"):
        create_app(api_settings, workspace=api_workspace, poll_seconds=0)


def test_vectors_reach_the_embedder_as_float32(client, monkeypatch):
    seen = {}
    pair = client.app.state.serving.current(COLLECTION)
    original = pair.embedder.embed_features

    def spy(x):
        seen["dtype"] = x.dtype
        return original(x)

    monkeypatch.setattr(pair.embedder, "embed_features", spy)
    assert client.post("/search", json={"vectors": FEATS[:1].tolist()}).status_code == 200
    assert seen["dtype"] == np.float32


def test_several_collections_need_a_name(client, api_workspace):
    registry = api_workspace.registry
    registry.catalog.ensure_collection("other", kind="features", dim=DIM_IN)
    model = registry.models.register_model("other", config={}, metrics={}, artifacts={})
    index = registry.models.register_index(
        "other",
        model.version,
        factory="Flat",
        params={},
        metrics={},
        artifact="e" * 64,
        as_of_batch=None,
        num_vectors=N_ITEMS,
    )
    registry.models.switch_alias("other", model.version, index.id, actor="t", reason="second collection")
    wait_for(lambda: client.get("/health").json()["serving"].get("other") is not None)
    r = client.post("/search", json={"vectors": FEATS[:1].tolist()})
    assert r.status_code == 422 and "several collections" in r.json()["detail"]
    r = client.post("/search", json={"collection": "other", "vectors": FEATS[:1].tolist()})
    assert r.status_code == 200 and r.json()["collection"] == "other"
    assert set(client.get("/status").json()["collections"]) == {COLLECTION, "other"}
    assert (
        client.post(
            "/promote", json={"model_version": 2}, headers={"Authorization": "Bearer s3cret-token"}
        ).status_code
        == 422
    )
