"""The maintenance cycle end to end on real data (scikit-learn digits), under a Prefect server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import LockHeldError
from steward.demo import digits_stream, write_batch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def batches(batches_module: list[Path]) -> list[Path]:
    return batches_module


@pytest.fixture(scope="module")
def bootstrapped(prefect_harness, tmp_path_factory, batches_module):
    """A home where batch 1 went through maintenance (v1 + index promoted), built once per module."""
    home = tmp_path_factory.mktemp("bootstrapped") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEWARD_HOME", str(home))
        from flows.context import reset
        from flows.maintenance_flows import maintenance_flow

        reset()
        summary = maintenance_flow(collection="digits", files=[str(batches_module[0])])
        reset()
    return home, summary


@pytest.fixture(scope="module")
def batches_module(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("digits")
    x, y, stream = digits_stream(4, seed=0)
    return [write_batch(folder / f"{b.name}.parquet", x, y, b, seed=i) for i, b in enumerate(stream)]


@pytest.fixture
def after_bootstrap(bootstrapped, flow_home):
    """A private copy of the bootstrapped home, selected through STEWARD_HOME."""
    import shutil

    shutil.copytree(bootstrapped[0], flow_home)
    return bootstrapped[1]


def _ws():
    from flows.context import workspace

    return workspace()


def test_cycle_bootstraps_then_skips_then_retrains_on_new_classes(after_bootstrap, batches) -> None:
    from flows.maintenance_flows import maintenance_flow, rollback_flow

    first = after_bootstrap
    assert first["outcome"].startswith("promoted model v1")
    assert first["production"]["model_version"] == 1
    assert first["index"]["num_vectors"] > 0

    second = maintenance_flow(collection="digits", files=[str(batches[1])])
    assert second["drift"]["drifted"] is False, second["drift"]
    assert second["outcome"].startswith("no retrain")
    assert second["production"]["model_version"] == 1

    third = maintenance_flow(collection="digits", files=[str(batches[2])])  # digits 5-7 appear
    assert third["drift"]["drifted"] is True
    assert third["candidate"]["model_version"] == 2
    if third["candidate"]["accepted"]:
        assert third["production"]["model_version"] == 2
    else:  # a rejection must leave production untouched and say why
        assert third["production"]["model_version"] == 1 and third["candidate"]["reasons"]

    # running the same cycle again is a no-op: no new versions
    again = maintenance_flow(collection="digits", files=[str(batches[2])])
    assert len(_ws().registry.models.list_models("digits")) == 2
    assert again["ingested"][0]["skipped_duplicate"] is True

    if third["candidate"]["accepted"]:
        change = rollback_flow(collection="digits", reason="test")
        assert (change["to_model"], change["to_index"]) == (1, first["index"]["id"])


def test_failed_index_build_leaves_production_and_rerun_resumes(after_bootstrap, batches, monkeypatch) -> None:
    from embedding.index import service
    from flows.maintenance_flows import maintenance_flow

    real_build = service.build_index_for_model

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing the index")

    monkeypatch.setattr(service, "build_index_for_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        maintenance_flow(collection="digits", files=[str(batches[2])], retrain_on="always")
    reg = _ws().registry
    assert reg.models.get_alias("digits").model_version == 1
    assert [m.version for m in reg.models.list_models("digits")] == [1, 2]
    assert len(reg.models.list_indexes("digits")) == 1  # nothing half-built was registered

    monkeypatch.setattr(service, "build_index_for_model", real_build)
    summary = maintenance_flow(collection="digits", retrain_on="always")
    assert summary["candidate"].get("resumed") is True  # the v2 candidate was reused, not retrained
    assert [m.version for m in reg.models.list_models("digits")] == [1, 2]
    if summary["candidate"]["accepted"]:
        assert reg.models.get_alias("digits").model_version == 2


def test_rejected_candidate_is_recorded_and_production_kept(after_bootstrap, batches) -> None:
    from flows.maintenance_flows import maintenance_flow

    # An impossible floor, given as a setting to the flow, plants a regression the gate must catch.
    settings = _ws().settings.replace(**{"gate.min_overall_map": 1.0})
    summary = maintenance_flow(collection="digits", files=[str(batches[2])], retrain_on="always",
                               settings=settings.to_dict())
    assert summary["candidate"]["accepted"] is False
    assert "rejected" in summary["outcome"]
    reg = _ws().registry
    assert reg.models.get_model("digits", 2).status == "rejected"
    assert "below the floor" in reg.models.get_model("digits", 2).status_reason
    assert reg.models.get_alias("digits").model_version == 1


def test_second_run_for_a_collection_exits_clearly(after_bootstrap, batches) -> None:
    from flows.maintenance_flows import maintenance_flow

    reg = _ws().registry
    import socket

    holder = f"other@{socket.gethostname()}:{os.getppid()}"  # a live process on this host
    assert reg.runs.try_acquire_lock("maintenance:digits", owner=holder, ttl_seconds=600)
    with pytest.raises(LockHeldError, match="held by other@"):
        maintenance_flow(collection="digits", files=[str(batches[1])])
    reg.runs.release_lock("maintenance:digits", owner=holder)
    assert maintenance_flow(collection="digits", files=[str(batches[1])])["latest_batch"] == 2


def test_killed_run_mid_training_reruns_cleanly(after_bootstrap, batches) -> None:
    from flows.maintenance_flows import maintenance_flow

    reg = _ws().registry
    from prefect.settings import get_current_settings

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    api_url = get_current_settings().api.url
    if api_url:  # the harness's server, so the child does not start its own
        env["PREFECT_API_URL"] = str(api_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "steward.cli", "run", "--collection", "digits", "--force", str(batches[2])],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180
    while not any(r.status == "running" for r in reg.runs.list_training_runs("digits")[1:]):
        assert proc.poll() is None, "the run ended before training started"
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reg.models.get_alias("digits").model_version == 1
    assert [m.version for m in reg.models.list_models("digits")] == [1]

    # the dead run's lock does not block the rerun, which completes without duplicates
    summary = maintenance_flow(collection="digits", retrain_on="always")
    assert [m.version for m in reg.models.list_models("digits")] == [1, 2]
    assert summary["candidate"]["model_version"] == 2
    assert len(reg.catalog.list_batches("digits")) == 2


def test_runs_are_named_tagged_logged_and_leave_artifacts(after_bootstrap, batches) -> None:
    """What a Prefect user sees: run names, collection tags on flow and task runs, task and library logs
    in the run, a markdown artifact per flow (the drift-triggered retrain included)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter, LogFilter
    from prefect.logging.handlers import APILogHandler

    from flows.maintenance_flows import check_drift_flow, ingest_flow, retrain_flow

    ingest_flow(collection="digits", files=[str(batches[2])])
    drift_state = check_drift_flow(collection="digits", return_state=True)
    retrain_state = retrain_flow(collection="digits", reason="drift event test", return_state=True)
    assert retrain_state.is_completed() and drift_state.is_completed()
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(retrain_state.state_details.flow_run_id)
        assert run.name == "retrain/digits/batch-2"
        assert {"steward", "collection:digits"} <= set(run.tags)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [run.id]}))
        assert task_runs and all("collection:digits" in t.tags for t in task_runs)
        messages = [log.message for log in client.read_logs(LogFilter(flow_run_id={"any_": [run.id]}))]
        assert any(m.startswith("candidate v2 ") and "by the gate" in m for m in messages), messages  # a task's line
        assert any(m.startswith("digits v2 (incremental)") for m in messages), messages  # steward's own logger
        drift_run = client.read_flow_run(drift_state.state_details.flow_run_id)
        assert drift_run.name == "check-drift/digits/batch-2"
        keys = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key={"any_": ["retrain-digits", "drift-digits", "ingest-digits"]}))}
        assert keys == {"retrain-digits", "drift-digits", "ingest-digits"}
    # the training run names its flow run, so the dashboard can link to it
    trained = max(_ws().registry.runs.list_training_runs("digits"), key=lambda r: r.id)
    assert trained.details.get("prefect_flow_run_id") == str(run.id)


def test_secrets_come_from_prefect_secret_blocks(prefect_harness, flow_home, monkeypatch) -> None:
    from prefect.blocks.system import Secret

    from core.errors import ConfigError
    from flows.context import reset, workspace
    from flows.secrets import resolve_secrets
    from tests.factories import make_settings

    Secret(value="http://127.0.0.1:9/from-block").save("steward-test-webhook", overwrite=True)
    monkeypatch.setenv("STEWARD_SECRETS_WEBHOOK_URL_BLOCK", "steward-test-webhook")
    reset()
    assert workspace().settings.webhook_url == "http://127.0.0.1:9/from-block"  # what every flow run opens
    explicit = make_settings(flow_home, STEWARD_WEBHOOK_URL="http://127.0.0.1:9/env",
                             STEWARD_SECRETS_WEBHOOK_URL_BLOCK="steward-test-webhook")
    assert resolve_secrets(explicit).webhook_url == "http://127.0.0.1:9/env"  # a value set directly wins
    missing = make_settings(flow_home, STEWARD_SECRETS_API_TOKEN_BLOCK="no-such-block")
    with pytest.raises(ConfigError, match="no-such-block"):
        resolve_secrets(missing)
    assert "webhook_url" not in workspace().settings.to_dict()  # never a flow parameter
