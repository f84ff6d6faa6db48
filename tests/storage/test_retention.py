"""gc says why it keeps what it keeps; a dry run counts what would go."""

from __future__ import annotations

import pytest

from storage.production import Production
from storage.retention import collect_garbage, explain_retention


def test_explain_retention_names_every_reason() -> None:
    # v1..v6: production went v1 -> v2 -> v4 (newest first below), v5 and v6 are newer candidates.
    out = {r.model_version: r for r in explain_retention(
        [1, 2, 3, 4, 5, 6], production=4, pairs_newest_first=[(4, 4), (2, 2), (1, 1)], keep=2, retired={1})}
    assert out[4].kept and out[4].reasons[0] == "production points to it" and "pair 1 of the last 2" in out[4].reasons[1]
    assert out[2].kept and out[2].reasons == ("model of production pair 2 of the last 2 (--keep 2)",)
    assert out[5].kept and "a candidate, not garbage" in out[5].reasons[0]
    assert not out[1].kept and "none of the last 2 production pairs" in out[1].reasons[0]
    assert not out[3].kept and out[3].reasons == ("artifacts deleted by an earlier gc",)
    only = explain_retention([1, 2], production=None, pairs_newest_first=[], keep=1, retired=set())
    assert all(r.kept and "no production yet" in r.reasons[0] for r in only)


def test_gc_explains_a_run_that_deletes_nothing_and_a_dry_run_counts_artifacts(workspace) -> None:
    reg, artifacts = workspace.registry, workspace.artifacts
    production, versions = _register_four(workspace)
    production.promote("c", *versions[1], reason="v2")  # v3 and v4 stay candidates

    nothing = collect_garbage(reg, artifacts, "c", keep=1)  # v1 goes, the rest stays, and it says why
    assert nothing.model_versions == (1,)
    text = nothing.describe()
    assert "v2    kept     production points to it" in text and "a candidate, not garbage" in text
    again = collect_garbage(reg, artifacts, "c", keep=1)
    assert again.model_versions == () and "v1    gone     artifacts deleted by an earlier gc" in again.describe()

    production.promote("c", *versions[3], reason="v4")
    dry = collect_garbage(reg, artifacts, "c", keep=1, dry_run=True)
    assert dry.model_versions == (2, 3) and len(dry.artifacts_deleted) == 4  # two weights, two indexes
    assert "would go" in dry.describe()
    assert all(artifacts.exists(sha) for sha in dry.artifacts_deleted)  # nothing was deleted
    done = collect_garbage(reg, artifacts, "c", keep=1)
    assert set(done.artifacts_deleted) == set(dry.artifacts_deleted)


def test_shared_artifacts_are_counted(workspace) -> None:
    reg, artifacts = workspace.registry, workspace.artifacts
    reg.catalog.ensure_collection("c", kind="features", dim=4)
    same = artifacts.put_bytes(b"identical weights")
    for _ in range(3):
        reg.models.register_model("c", config={}, metrics={}, artifacts={"weights": same})
    Production(reg.models, artifacts).promote("c", 3, reason="v3")
    result = collect_garbage(reg, artifacts, "c", keep=1)
    assert result.model_versions == (1, 2) and result.artifacts_deleted == () and result.shared_artifacts_kept == 1


@pytest.fixture
def any_workspace(registry_url, tmp_path):
    """A workspace on SQLite and on PostgreSQL (the locks differ: BEGIN IMMEDIATE vs row and advisory locks)."""
    from storage.workspace import open_workspace
    from tests.factories import make_settings

    ws = open_workspace(make_settings(tmp_path / "home", STEWARD_DATABASE_URL=registry_url))
    yield ws
    ws.close()


def _register_four(workspace):
    """Four (model, index) pairs in collection "c", each with its own artifacts, none promoted."""
    reg, artifacts = workspace.registry, workspace.artifacts
    reg.catalog.ensure_collection("c", kind="features", dim=4)
    pairs = []
    for tag in "abcd":
        v = reg.models.register_model("c", config={}, metrics={}, artifacts={
            "weights": artifacts.put_bytes(f"w-{tag}".encode())}).version
        i = reg.models.register_index("c", v, factory="Flat", params={}, metrics={},
                                      artifact=artifacts.put_bytes(f"i-{tag}".encode()), as_of_batch=None,
                                      num_vectors=1).id
        pairs.append((v, i))
    return Production(reg.models, artifacts), pairs


def _four_versions(workspace):
    production, pairs = _register_four(workspace)
    production.promote("c", *pairs[0], reason="v1")
    production.promote("c", *pairs[1], reason="v2")
    return production, pairs


def test_a_promotion_racing_gc_never_leaves_production_on_deleted_artifacts(any_workspace, monkeypatch) -> None:
    """Forced interleaving: a promotion of a version gc is retiring starts while gc plans; it either
    waits for gc's transaction and is refused, or (before gc) protects the version."""
    import threading
    import time

    from core.errors import StewardError
    from storage.registry.models import ModelRegistry

    workspace = any_workspace
    production, pairs = _four_versions(workspace)
    outcome: dict[str, object] = {}
    real_plan = ModelRegistry._retention_plan

    def plan_then_let_a_promotion_in(self, s, c, keep):
        plan = real_plan(self, s, c, keep)

        def promote_v1():
            try:
                outcome["change"] = production.promote("c", *pairs[0], reason="operator wants v1 back")
            except StewardError as e:  # refused: v1 is marked deleted, or its artifacts are gone
                outcome["refused"] = str(e)

        worker = threading.Thread(target=promote_v1)
        worker.start()
        outcome["worker"] = worker
        time.sleep(0.5)  # the promotion now waits on gc's lock (SQLite: the write lock)
        return plan

    monkeypatch.setattr(ModelRegistry, "_retention_plan", plan_then_let_a_promotion_in)
    result = collect_garbage(workspace.registry, workspace.artifacts, "c", keep=1)
    outcome["worker"].join(30)
    assert 1 in result.model_versions
    assert "change" not in outcome
    assert "garbage-collected" in outcome["refused"] or "missing" in outcome["refused"]
    target = production.target("c")
    assert (target.model_version, target.index_version) == pairs[1]
    pair = production.pair("c")
    production.verify(pair.model, pair.index)  # production's artifacts are all there and intact


def test_a_version_registered_during_gc_keeps_an_artifact_it_shares(any_workspace, monkeypatch) -> None:
    """Forced interleaving: between gc's reading of what is live and its deletes, a retrain
    registers a version whose weights are byte-identical to a retired one's (content addressing)."""
    workspace = any_workspace
    reg, artifacts = workspace.registry, workspace.artifacts
    production, _ = _four_versions(workspace)
    shared = reg.models.get_model("c", 1).artifacts["weights"]
    real = reg.monitoring.referenced_artifacts
    registered = []

    def read_live_then_register():
        live = real()
        sha = artifacts.put_bytes(b"w-a")  # the same bytes as v1's weights: nothing is written
        registered.append(reg.models.register_model("c", config={}, metrics={}, artifacts={"weights": sha},
                                                    require_present=artifacts.require_present).version)
        return live

    monkeypatch.setattr(reg.monitoring, "referenced_artifacts", read_live_then_register)
    result = collect_garbage(reg, artifacts, "c", keep=1)
    assert 1 in result.model_versions and shared not in result.artifacts_deleted
    assert artifacts.exists(shared)
    index = reg.models.register_index("c", registered[0], factory="Flat", params={}, metrics={},
                                      artifact=artifacts.put_bytes(b"i-new"), as_of_batch=None, num_vectors=1)
    production.promote("c", registered[0], index.id, reason="the new one")  # verifies every artifact


def test_a_registration_after_gc_deleted_its_artifact_is_refused(any_workspace) -> None:
    from core.errors import ArtifactIntegrityError

    reg, artifacts = any_workspace.registry, any_workspace.artifacts
    _four_versions(any_workspace)
    sha = artifacts.put_bytes(b"w-a")  # exists (v1's weights), so put_bytes writes nothing...
    collect_garbage(reg, artifacts, "c", keep=1)  # ...and gc deletes it before the registration
    assert not artifacts.exists(sha)
    with pytest.raises(ArtifactIntegrityError, match="concurrent `steward gc`"):
        reg.models.register_model("c", config={}, metrics={}, artifacts={"weights": sha},
                                  require_present=artifacts.require_present)
