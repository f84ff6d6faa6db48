"""Registry behaviour; every test runs on SQLite and on PostgreSQL (see conftest.registry_url)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import ArtifactIntegrityError, ConflictError, LockHeldError, NotFoundError
from storage.artifact_store import ArtifactStore
from storage.production import Production
from storage.retention import collect_garbage

REPO = Path(__file__).resolve().parents[2]


def _model(registry, artifacts: ArtifactStore | None = None, tag: str = "") -> int:
    arts = {}
    if artifacts is not None:
        arts = {"weights": artifacts.put_bytes(f"weights-{tag}".encode())}
    return registry.models.register_model("c", config={"tag": tag}, metrics={"map_at_r_all": 0.5}, artifacts=arts).version


def _index(registry, version: int, artifacts: ArtifactStore | None = None, tag: str = "") -> int:
    sha = artifacts.put_bytes(f"index-{tag}".encode()) if artifacts else "0" * 64
    return registry.models.register_index("c", version, factory="Flat", params={}, metrics={}, artifact=sha,
                                   as_of_batch=None, num_vectors=10).id


@pytest.fixture
def reg(registry):
    registry.catalog.ensure_collection("c", kind="features", dim=4)
    return registry


@pytest.fixture
def artifacts(tmp_path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


def promote(reg, artifacts, collection, model, index, *, reason):
    return Production(reg.models, artifacts).promote(collection, model, index, reason=reason)


def rollback(reg, artifacts, collection, to_version=None, *, reason):
    return Production(reg.models, artifacts).rollback(collection, to_version, reason=reason)


def test_versions_are_monotonic_per_collection(reg) -> None:
    reg.catalog.ensure_collection("other", kind="text", dim=None)
    assert [_model(reg) for _ in range(3)] == [1, 2, 3]
    assert reg.models.register_model("other", config={}, metrics={}, artifacts={}).version == 1
    assert [m.version for m in reg.models.list_models("c")] == [1, 2, 3]
    with pytest.raises(NotFoundError, match="no model version 9"):
        reg.models.get_model("c", 9)


def test_promote_switches_alias_statuses_and_history_together(reg) -> None:
    v1, v2 = _model(reg), _model(reg)
    i1, i2 = _index(reg, v1), _index(reg, v2)
    reg.models.switch_alias("c", v1, i1, reason="first", actor="alice")
    change = reg.models.switch_alias("c", v2, i2, reason="better", actor="bob")
    assert (change.from_model, change.from_index, change.to_model, change.to_index) == (v1, i1, v2, i2)
    alias = reg.models.get_alias("c")
    assert (alias.model_version, alias.index_version) == (v2, i2)
    assert [m.status for m in reg.models.list_models("c")] == ["archived", "production"]
    history = reg.models.alias_history("c")
    assert [(h.actor, h.reason) for h in history] == [("alice", "first"), ("bob", "better")]


def test_promote_refuses_mismatched_index_rejected_model_and_noop(reg) -> None:
    v1, v2 = _model(reg), _model(reg)
    i1 = _index(reg, v1)
    with pytest.raises(ConflictError, match="does not belong"):
        reg.models.switch_alias("c", v2, i1, reason="x")
    reg.models.set_model_status("c", v2, "rejected", "MAP@R on old classes fell 0.031, limit 0.01")
    with pytest.raises(ConflictError, match="rejected"):
        reg.models.switch_alias("c", v2, None, reason="x")
    reg.models.switch_alias("c", v1, i1, reason="x")
    with pytest.raises(ConflictError, match="already points"):
        reg.models.switch_alias("c", v1, i1, reason="again")
    with pytest.raises(ConflictError, match="behind alias"):
        reg.models.set_model_status("c", v1, "archived", "no")
    assert len(reg.models.alias_history("c")) == 1


def test_rollback_restores_the_exact_earlier_pair(reg, artifacts) -> None:
    v1, v2, v3 = (_model(reg, artifacts, str(i)) for i in range(3))
    i1a = _index(reg, v1, artifacts, "1a")
    i1b = _index(reg, v1, artifacts, "1b")  # v1 got a second index later; rollback must not pick it
    i2, i3 = _index(reg, v2, artifacts, "2"), _index(reg, v3, artifacts, "3")
    promote(reg, artifacts, "c", v1, i1a, reason="one")
    promote(reg, artifacts, "c", v2, i2, reason="two")
    promote(reg, artifacts, "c", v3, i3, reason="three")
    change = rollback(reg, artifacts, "c", reason="bad deploy")
    assert (change.to_model, change.to_index) == (v2, i2)
    change = rollback(reg, artifacts, "c", to_version=v1, reason="further back")
    assert (change.to_model, change.to_index) == (v1, i1a) != (v1, i1b)
    alias = reg.models.get_alias("c")
    assert (alias.model_version, alias.index_version) == (v1, i1a)
    assert reg.models.get_model("c", v1).status == "production"
    assert reg.models.get_model("c", v3).status == "archived"


def test_rollback_refuses_broken_artifacts_and_keeps_production(reg, artifacts) -> None:
    v1, v2 = _model(reg, artifacts, "a"), _model(reg, artifacts, "b")
    i1, i2 = _index(reg, v1, artifacts, "a"), _index(reg, v2, artifacts, "b")
    promote(reg, artifacts, "c", v1, i1, reason="one")
    promote(reg, artifacts, "c", v2, i2, reason="two")
    sha = reg.models.get_index(i1).artifact
    Path(artifacts.location.path(sha[:2], sha)).write_bytes(b"truncated")
    with pytest.raises(ArtifactIntegrityError, match="checksum"):
        rollback(reg, artifacts, "c", reason="try")
    alias = reg.models.get_alias("c")
    assert (alias.model_version, alias.index_version) == (v2, i2)
    assert len(reg.models.alias_history("c")) == 2


def test_rollback_without_history_says_so(reg) -> None:
    _model(reg)
    with pytest.raises(NotFoundError, match="no earlier production pair"):
        reg.models.rollback("c", reason="x")


def test_alert_dedup_window_and_delivery_attempts(reg) -> None:
    a = reg.monitoring.add_alert("c", kind="drift", message="m", payload={"p": 1}, dedup_key="drift:c", dedup_window_seconds=3600)
    assert a is not None
    assert reg.monitoring.add_alert("c", kind="drift", message="m2", payload={}, dedup_key="drift:c", dedup_window_seconds=3600) is None
    assert reg.monitoring.add_alert("c", kind="drift", message="m3", payload={}, dedup_key="drift:c", dedup_window_seconds=0) is not None
    failed = reg.monitoring.record_alert_attempt(a.id, delivered=False, error="503")
    assert (failed.attempts, failed.delivered_at, failed.last_error) == (1, None, "503")
    assert {x.id for x in reg.monitoring.list_alerts("c", undelivered_only=True)} >= {a.id}
    done = reg.monitoring.record_alert_attempt(a.id, delivered=True)
    assert done.delivered_at is not None and done.attempts == 2
    assert a.id not in {x.id for x in reg.monitoring.list_alerts("c", undelivered_only=True)}


def test_drift_reports_and_training_runs(reg) -> None:
    r = reg.monitoring.record_drift_report("c", batch_seq=2, model_version=None, drifted=True, alpha=0.05,
                                summary={"mmd": {"p_value": 0.001}})
    assert reg.monitoring.list_drift_reports("c")[0] == r
    run = reg.runs.start_training_run("c", kind="incremental", batches=[1, 2])
    v = _model(reg)
    done = reg.runs.finish_training_run(run.id, status="finished", model_version=v, buffer_artifact="a" * 64, details={"epochs": 3})
    assert (done.status, done.model_version, done.batches, done.details["epochs"]) == ("finished", v, [1, 2], 3)
    assert "prefect_flow_run_id" not in done.details


def test_a_training_run_names_the_orchestrator_run_it_belongs_to(reg) -> None:
    from core.run_context import current_run_ids, run_ids

    with run_ids(prefect_flow_run_id="f-1"):
        run = reg.runs.start_training_run("c", kind="full", batches=[1], details={"as_of": 1})
    assert run.details == {"prefect_flow_run_id": "f-1", "as_of": 1}
    assert current_run_ids() == {}  # only inside the block


def test_lock_excludes_other_owners_until_released_or_expired(reg) -> None:
    with (
        reg.runs.lock("maintenance:c", owner="run-1"),
        pytest.raises(LockHeldError, match="run-1"),
        reg.runs.lock("maintenance:c", owner="run-2"),
    ):
        pass
    with reg.runs.lock("maintenance:c", owner="run-2"):
        pass
    assert reg.runs.try_acquire_lock("x", owner="a", ttl_seconds=-1)  # already expired
    assert reg.runs.try_acquire_lock("x", owner="b", ttl_seconds=60)
    assert not reg.runs.try_acquire_lock("x", owner="a", ttl_seconds=60)


def test_gc_keeps_aliases_and_last_pairs(reg, artifacts) -> None:
    versions = [_model(reg, artifacts, str(i)) for i in range(5)]
    indexes = [_index(reg, v, artifacts, str(v)) for v in versions]
    for v, i in zip(versions[:4], indexes[:4], strict=True):
        promote(reg, artifacts, "c", v, i, reason=f"v{v}")
    result = collect_garbage(reg, artifacts, "c", keep=2)
    # production (v4), the pair before it (v3) and the fresh candidate v5 survive
    assert result.model_versions == (1, 2)
    assert set(result.index_versions) == {indexes[0], indexes[1]}
    for v in (1, 2):
        sha = reg.models.get_model("c", v).artifacts["weights"]
        assert not artifacts.exists(sha)
    for v in (3, 4, 5):
        artifacts.verify(reg.models.get_model("c", v).artifacts["weights"])
    with pytest.raises(ConflictError, match="garbage-collected"):
        reg.models.rollback("c", to_version=1, reason="too late")
    rollback(reg, artifacts, "c", reason="ok")  # v3 is still there
    assert reg.models.get_alias("c").model_version == 4 - 1


_RACE = textwrap.dedent(
    """
    import sys, time
    from storage.registry import open_registry
    url, start, n, worker = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    reg = open_registry(url)
    while time.time() < start:
        time.sleep(0.001)
    for i in range(n):
        v = reg.models.register_model("c", config={"worker": worker}, metrics={}, artifacts={}).version
        reg.models.switch_alias("c", v, None, actor=worker, reason=f"{worker}-{i}")
    """
)


def test_concurrent_processes_never_duplicate_versions_or_lose_history(reg, registry_url) -> None:
    workers, per_worker = 4, 6
    start = time.time() + 4  # all processes start registering at the same moment
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE, registry_url, str(start), str(per_worker), f"w{w}"],
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
        for w in range(workers)
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    models = reg.models.list_models("c")
    assert [m.version for m in models] == list(range(1, workers * per_worker + 1))
    assert sum(m.status == "production" for m in models) == 1
    history = reg.models.alias_history("c")
    assert len(history) == workers * per_worker
    for before, after in itertools.pairwise(history):
        assert after.from_model == before.to_model  # no lost update: every switch saw the previous one
    assert reg.models.get_alias("c").model_version == history[-1].to_model
    prod = next(m for m in models if m.status == "production")
    assert prod.version == history[-1].to_model
    assert timedelta(0) <= history[-1].at - history[0].at


def test_json_columns_accept_numpy_and_store_nan_as_null(reg) -> None:
    import numpy as np

    m = reg.models.register_model("c", config={"dims": (4, 2)}, metrics={"map": np.float32(0.5), "nmi": float("nan"),
                                                                    "n": np.int64(3)}, artifacts={})
    back = reg.models.get_model("c", m.version)
    assert back.metrics == {"map": 0.5, "nmi": None, "n": 3}
    assert back.config == {"dims": [4, 2]}


def test_a_rollback_pins_production_against_automation_until_unpinned(reg, artifacts) -> None:
    from core.errors import PinnedError

    v1, v2, v3 = (_model(reg, artifacts, str(i)) for i in range(3))
    i1, i2, i3 = (_index(reg, v, artifacts, str(v)) for v in (v1, v2, v3))
    production = Production(reg.models, artifacts)
    production.promote("c", v1, i1, reason="one", automated=True)
    production.promote("c", v2, i2, reason="two", automated=True)
    change = production.rollback("c", reason="v2 is bad", actor="ops")
    assert change.kind == "rollback" and (change.to_model, change.to_index) == (v1, i1)
    target = production.target("c")
    assert target.pinned and target.pinned_by == "ops" and "v2 is bad" in target.pinned_reason
    assert production.may_promote_automatically("c", v3).startswith("production is pinned by ops")
    with pytest.raises(PinnedError, match="pinned by ops"):
        production.promote("c", v3, i3, reason="nightly", automated=True)
    assert production.target("c").model_version == v1  # the refused switch changed nothing

    production.unpin("c", actor="ops")
    assert not production.target("c").pinned
    assert production.rolled_away("c") == {v2}
    with pytest.raises(ConflictError, match="rolled away from"):
        production.promote("c", v2, i2, reason="nightly", automated=True)  # never re-promoted by automation
    production.promote("c", v3, i3, reason="nightly", automated=True)  # another version is fine
    production.promote("c", v2, i2, reason="checked by hand", actor="ops")  # people may
    assert production.rolled_away("c") == set()
    assert [h.kind for h in production.history("c")] == ["auto-promote", "auto-promote", "rollback",
                                                         "auto-promote", "promote"]


def test_a_bit_identical_retrain_of_a_rolled_away_version_is_not_promoted_by_automation(reg, artifacts) -> None:
    production = Production(reg.models, artifacts)
    v1, v2 = _model(reg, artifacts, "a"), _model(reg, artifacts, "b")
    production.promote("c", v1, None, reason="one")
    production.promote("c", v2, None, reason="two")
    production.rollback("c", reason="bad", pin=False)
    twin = _model(reg, artifacts, "b")  # same weights bytes as v2: a retrain on the same data
    assert production.may_promote_automatically("c", twin) == f"v{twin} is identical to v{v2}, which an operator " \
                                                              f"rolled production away from"


def test_rollback_without_pin_and_explicit_pin(reg, artifacts) -> None:
    production = Production(reg.models, artifacts)
    v1, v2 = _model(reg, artifacts, "a"), _model(reg, artifacts, "b")
    production.promote("c", v1, None, reason="one")
    production.promote("c", v2, None, reason="two")
    production.rollback("c", reason="try", pin=False)
    assert not production.target("c").pinned
    assert production.pin("c", reason="freeze for the audit", actor="me").pinned_reason == "freeze for the audit"


def test_batches_can_be_excluded_and_carry_their_quality_report(reg) -> None:
    reg.catalog.add_batch("c", content_hash="h1", source="s", rows=5, new_items=5, updated_items=0, quarantined=0,
                          data_path="p", quarantine_path=None)
    b = reg.catalog.exclude_batch("c", 1, reason="sensor fault", actor="ops")
    assert b.excluded and (b.excluded_by, b.excluded_reason) == ("ops", "sensor fault")
    assert reg.catalog.get_batch("c", 1).excluded
    assert not reg.catalog.include_batch("c", 1).excluded
    assert reg.catalog.record_quality("c", 1, {"passed": False, "checks": {}}).quality == {"passed": False, "checks": {}}
    with pytest.raises(NotFoundError, match="no batch 9"):
        reg.catalog.exclude_batch("c", 9, reason="x")


def test_the_evaluation_set_only_grows_in_revisions(reg) -> None:
    cat = reg.catalog
    assert cat.evaluation_set("c").revision == 0 and len(cat.evaluation_set("c")) == 0
    first = cat.extend_evaluation_set("c", [("a1", "a"), ("a2", "a"), ("b1", "b")], batch_seq=1)
    assert first.revision == 1 and first.item_ids == ("a1", "a2", "b1")
    same = cat.extend_evaluation_set("c", [("a1", "a")], batch_seq=2)  # nothing new: same revision
    assert same.revision == 1 and len(same) == 3
    grown = cat.extend_evaluation_set("c", [("c1", "c"), ("a1", "a")], batch_seq=3)
    assert grown.revision == 2 and grown.item_ids == ("a1", "a2", "b1", "c1") and grown.labels[-1] == "c"


def test_a_run_whose_process_died_is_marked_failed_by_the_next(reg) -> None:
    import socket

    dead = reg.runs.start_training_run("c", kind="incremental", batches=[2])
    live = reg.runs.start_training_run("c", kind="incremental", batches=[3])
    with reg.db.session() as s:  # the first run's process is gone (a pid that cannot exist), the second's is us
        from storage.registry.orm import TrainingRunRow

        s.get(TrainingRunRow, dead.id).owner = f"x@{socket.gethostname()}:99999999"
    failed = reg.runs.fail_stale_runs("c", older_than_seconds=3600)
    assert [r.id for r in failed] == [dead.id]
    runs = {r.id: r for r in reg.runs.list_training_runs("c")}
    assert runs[dead.id].status == "failed" and "crashed" in runs[dead.id].details["error"]
    assert runs[live.id].status == "running"
    assert [r.id for r in reg.runs.fail_stale_runs("c", older_than_seconds=-1)] == [live.id]  # outlived the TTL
