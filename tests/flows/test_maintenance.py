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
