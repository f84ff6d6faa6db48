"""Shadow A/B in the search service: production answers unchanged, records written, drops counted."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from core.settings import ShadowSettings
from steward.api.schemas import SearchRequest
from steward.api.shadow import ShadowMirror, is_hit, overlap_at_k
from tests.api.fakes import COLLECTION, FakeLoader, gallery

IDS, FEATS = gallery()


def _app(api_settings, api_workspace, loader, **shadow):
    from steward.api.app import create_app

    settings = api_settings.replace(**{f"shadow.{k}": v for k, v in shadow.items()})
    return create_app(settings, workspace=api_workspace, loader=loader, poll_seconds=0.05)


def _queries(n: int) -> list[dict]:
    return [{"vectors": FEATS[i:i + 2].tolist(), "k": 5, "expected_item_ids": [IDS[i], None]} for i in range(n)]


def test_production_answers_are_identical_with_and_without_the_shadow_and_records_are_written(
        api_settings, api_workspace, pairs) -> None:
    from fastapi.testclient import TestClient

    bodies = {}
    for name, shadow in (("off", {}), ("on", {"fraction": 1.0, "version": 2, "flush_records": 3})):
        with TestClient(_app(api_settings, api_workspace, FakeLoader(), **shadow)) as c:
            bodies[name] = [c.post("/search", json=q).json() for q in _queries(8)]
            if name == "on":
                c.app.state.shadow.drain()
                live = c.get("/shadow").json()["live"]
    assert bodies["on"] == bodies["off"]
    assert all(b["model_version"] == 1 for b in bodies["on"])  # never the shadow's answer
    assert (live["mirrored"], live["answered"], live["dropped"], live["errors"]) == (8, 8, 0, 0)
    records = api_workspace.registry.shadow.list_records(COLLECTION)
    assert len(records) == 8 and {(r.production_model, r.shadow_model) for r in records} == {(1, 2)}
    assert all(r.queries == 2 and r.labelled == 1 and r.k == 5 for r in records)
    assert all(r.production_hits == 1 for r in records)  # production finds the query item itself
    assert all(0 <= r.overlap_sum <= 2 for r in records)


def test_shadow_report_endpoint_partial_and_dashboard(api_settings, api_workspace, pairs) -> None:
    from fastapi.testclient import TestClient

    with TestClient(_app(api_settings, api_workspace, FakeLoader(), fraction=0.5)) as c:
        for q in _queries(10):
            assert c.post("/search", json=q).status_code == 200
        c.app.state.shadow.drain()
        body = c.get("/shadow", params={"collection": COLLECTION}).json()
        # version unset: the newest version that is not production (v3 of 1..3)
        assert (body["production_model"], body["shadow_model"], body["requests"], body["queries"]) == (1, 3, 5, 10)
        assert body["labelled"] == 5 and body["production_hit_rate"]["value"] == 1.0
        assert body["live"]["offered"] == 10 and body["live"]["targets"][COLLECTION]["model_version"] == 3
        from tests.json_docs import documented_fields as _documented

        assert set(body) == _documented()["shadow_report"]
        html = c.get("/partials/shadow").text
        assert "Shadow A/B" in html and "shadow v3" in html and "overlap@5" in html
        assert "Shadow A/B" in c.get("/").text


def test_a_shadow_failure_never_reaches_production(api_settings, api_workspace, pairs) -> None:
    from fastapi.testclient import TestClient

    with TestClient(_app(api_settings, api_workspace, FakeLoader(broken={2}), fraction=1.0, version=2)) as c:
        assert c.post("/search", json=_queries(1)[0]).status_code == 200
        c.app.state.shadow.drain()
        live = c.get("/shadow").json()["live"]
    assert live["errors"] == 1 and "checksum" in live["last_error"]


def test_label_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one per query"):
        SearchRequest(vectors=[[0.0]], labels=["a", "b"])


# ---- the mirror alone -----------------------------------------------------------------------------


def _response(ids):
    return SimpleNamespace(results=[SimpleNamespace(item_ids=list(x)) for x in ids])


def _pair(model: int = 1):
    return SimpleNamespace(collection="c", model_version=model, index_version=10 + model)


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    mirror = ShadowMirror(ShadowSettings(fraction=1.0, queue_size=2), workspace=None, loader=None, write=lambda r: 0)
    req = SearchRequest(item_ids=["a"], k=3)
    queued = [mirror.offer(_pair(), req, _response([["a", "b", "c"]]), 0.001) for _ in range(7)]
    assert queued == [True, True] + [False] * 5
    assert (mirror.offered, mirror.mirrored, mirror.dropped) == (7, 2, 5)


def test_sampling_is_deterministic_and_exact() -> None:
    mirror = ShadowMirror(ShadowSettings(fraction=0.25, queue_size=1000), workspace=None, loader=None,
                          write=lambda r: 0)
    req = SearchRequest(item_ids=["a"], k=1)
    taken = [mirror.offer(_pair(), req, _response([["a"]]), 0.0) for _ in range(100)]
    assert sum(taken) == 25 and taken[:8] == [False, False, False, True] * 2
    other = ShadowMirror(ShadowSettings(fraction=1.0, collection="elsewhere"), workspace=None, loader=None,
                         write=lambda r: 0)
    assert not other.offer(_pair(), req, _response([["a"]]), 0.0) and other.offered == 0


def test_records_stay_buffered_while_the_registry_refuses_them() -> None:
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return len(batch)

    mirror = ShadowMirror(ShadowSettings(fraction=1.0), workspace=None, loader=None, write=flaky)
    mirror._buffer = ["r1", "r2"]
    assert mirror.flush() == 0 and "database is locked" in mirror.last_error and mirror.stats()["pending"] == 2
    assert mirror.flush() == 2 and mirror.written == 2 and calls == [2, 2]


def test_hits_and_overlap() -> None:
    assert overlap_at_k(["a", "b", "c"], ["c", "x", "a"], 3) == pytest.approx(2 / 3)
    assert is_hit(["a", "b"], expected="b", label=None, labels=None) is True
    assert is_hit(["a", "b"], expected=None, label="L", labels={"a": "L"}) is True
    assert is_hit(["b", "a"], expected=None, label="L", labels={"a": "L", "b": "M"}) is False
    assert is_hit(["a"], expected=None, label=None, labels=None) is None


def test_labelled_queries_use_the_item_labels(api_workspace, pairs) -> None:
    written, seen = [], threading.Event()
    mirror = ShadowMirror(ShadowSettings(fraction=1.0, version=2), api_workspace, FakeLoader(),
                          write=lambda b: written.extend(b) or len(b), labels=lambda c: seen.set() or dict.fromkeys(IDS, "L"))
    from steward.api.routes.search import answer

    req = SearchRequest(vectors=FEATS[:3].tolist(), k=4, labels=["L", "M", None])
    prod = FakeLoader()(api_workspace, COLLECTION, 1, pairs[1])
    mirror.offer(prod, req, answer(prod, req), 0.002)
    mirror.process(mirror._queue.get_nowait())
    mirror.flush()
    (r,) = written
    assert seen.is_set() and (r.queries, r.labelled, r.production_hits, r.shadow_hits) == (3, 2, 1, 1)
    assert (r.production_model, r.shadow_model, r.production_ms) == (1, 2, pytest.approx(2.0))


def test_shadowing_the_production_version_itself_records_nothing(api_settings, api_workspace, pairs) -> None:
    from fastapi.testclient import TestClient

    with TestClient(_app(api_settings, api_workspace, FakeLoader(), fraction=1.0, version=1)) as c:
        assert c.post("/search", json=_queries(1)[0]).status_code == 200
        c.app.state.shadow.drain()
        live = c.get("/shadow").json()["live"]
    assert (live["answered"], live["skipped"]) == (0, 1)
    assert "is production now" in live["targets"][COLLECTION]["why_none"]
    assert api_workspace.registry.shadow.list_records(COLLECTION) == []
