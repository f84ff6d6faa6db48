"""The serving state on its own: swaps, the cache, failures and retries."""

from __future__ import annotations

import pytest

from core.errors import NotFoundError
from steward.api.serving import ServingState
from tests.api.fakes import COLLECTION, FakeLoader


def test_refresh_loads_production_once_and_then_is_a_no_op(api_workspace, pairs):
    loader = FakeLoader()
    state = ServingState(api_workspace, loader)
    assert state.current(COLLECTION) is None
    assert state.refresh() == {COLLECTION: "swapped"}
    assert state.refresh() == {COLLECTION: "unchanged"}
    assert loader.calls == [(1, pairs[1])]
    assert state.current(COLLECTION).key == (1, pairs[1])


def test_a_snapshot_never_changes_after_a_swap(api_workspace, pairs):
    state = ServingState(api_workspace, FakeLoader())
    state.refresh()
    before = state.snapshot()
    api_workspace.registry.models.switch_alias(COLLECTION, 2, pairs[2], actor="t", reason="r")
    state.refresh()
    assert before[COLLECTION].model_version == 1
    assert state.snapshot()[COLLECTION].model_version == 2
    assert state.swaps[-1]["from"] == [1, pairs[1]] and state.swaps[-1]["to"] == [2, pairs[2]]


def test_failed_load_keeps_the_old_pair_and_waits_before_retrying(api_workspace, pairs):
    loader = FakeLoader(broken={2})
    state = ServingState(api_workspace, loader, retry_seconds=3600)
    state.refresh()
    api_workspace.registry.models.switch_alias(COLLECTION, 2, pairs[2], actor="t", reason="r")
    assert state.refresh()[COLLECTION].startswith("load failed")
    assert state.current(COLLECTION).model_version == 1
    assert state.failures[COLLECTION].model_version == 2
    assert "waiting to retry" in state.refresh()[COLLECTION]
    assert loader.calls.count((2, pairs[2])) == 1
    loader.broken.clear()  # the artifact was repaired
    assert state.refresh(force=True)[COLLECTION] == "swapped"
    assert COLLECTION not in state.failures


def test_cache_makes_rolling_back_to_the_last_pair_free(api_workspace, pairs):
    loader = FakeLoader()
    state = ServingState(api_workspace, loader, cache_size=2)
    state.refresh()
    api_workspace.registry.models.switch_alias(COLLECTION, 2, pairs[2], actor="t", reason="r")
    state.refresh()
    api_workspace.registry.models.rollback(COLLECTION, actor="t", reason="back")
    state.refresh()
    assert state.current(COLLECTION).model_version == 1
    assert loader.calls == [(1, pairs[1]), (2, pairs[2])]


def test_alias_without_index_serves_the_newest_index_of_its_model(api_workspace, pairs):
    registry = api_workspace.registry
    newer = registry.models.register_index(
        COLLECTION,
        2,
        factory="HNSW32",
        params={},
        metrics={},
        artifact="f" * 64,
        as_of_batch=3,
        num_vectors=40,
    )
    registry.models.switch_alias(COLLECTION, 2, None, actor="t", reason="model only")
    state = ServingState(api_workspace, FakeLoader())
    state.refresh()
    assert state.current(COLLECTION).key == (2, newer.id)


def test_model_without_any_index_is_a_reported_failure(api_workspace, pairs):
    registry = api_workspace.registry
    registry.models.register_model(COLLECTION, config={}, metrics={}, artifacts={})  # v4, no index
    registry.models.switch_alias(COLLECTION, 4, None, actor="t", reason="oops")
    state = ServingState(api_workspace, FakeLoader())
    assert "has no index" in state.refresh()[COLLECTION]
    with pytest.raises(NotFoundError, match="has no index"):
        state.load(COLLECTION, 4, None)


def test_watcher_survives_a_registry_error(api_workspace, pairs, monkeypatch):
    state = ServingState(api_workspace, FakeLoader())

    def broken():
        raise RuntimeError("database went away")

    monkeypatch.setattr(api_workspace.registry.catalog, "list_collections", broken)
    state.poll_once()
    assert "database went away" in state.last_poll_error
    monkeypatch.undo()
    state.poll_once()
    assert state.last_poll_error is None and state.current(COLLECTION) is not None
