"""gc says why it keeps what it keeps; a dry run counts what would go."""

from __future__ import annotations

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
    reg.catalog.ensure_collection("c", kind="features", dim=4)
    production = Production(reg.models, artifacts)
    versions = []
    for tag in "abcd":
        v = reg.models.register_model("c", config={}, metrics={}, artifacts={
            "weights": artifacts.put_bytes(f"w-{tag}".encode())}).version
        i = reg.models.register_index("c", v, factory="Flat", params={}, metrics={},
                                      artifact=artifacts.put_bytes(f"i-{tag}".encode()), as_of_batch=None,
                                      num_vectors=1).id
        versions.append((v, i))
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
