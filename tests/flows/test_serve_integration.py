"""A real Prefect server on loopback, `steward serve`, and a drift event that triggers retraining."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from steward.demo import digits_stream, write_batch

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, procs=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args[:4]} exited early while waiting for {what}"
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.slow
def test_drift_event_triggers_the_retrain_deployment(tmp_path: Path) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "steward"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "STEWARD_"))},
        "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "STEWARD_HOME": str(home), "HF_HUB_OFFLINE": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    steward = [sys.executable, "-m", "steward.cli"]
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=(logs / "server.log").open("w"), stderr=subprocess.STDOUT)
    serve = None
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, 120, "the Prefect server", [server])
        x, y, stream = digits_stream(4, seed=0)
        files = [write_batch(tmp_path / f"{b.name}.parquet", x, y, b, seed=i) for i, b in enumerate(stream)]
        subprocess.run([*steward, "run", "--collection", "digits", str(files[0])], env=env, check=True,
                       capture_output=True, timeout=300)
        subprocess.run([*steward, "ingest", "--collection", "digits", str(files[2])], env=env, check=True,
                       capture_output=True, timeout=120)

        serve = subprocess.Popen([*steward, "serve", "--collection", "digits"], env=env,
                                 stdout=(logs / "serve.log").open("w"), stderr=subprocess.STDOUT)

        def deployment_ready() -> bool:
            r = httpx.post(f"{api}/deployments/filter", json={}, timeout=5)
            return any(d["name"] == "retrain-on-drift" for d in r.json())

        _wait(deployment_ready, 120, "the retrain-on-drift deployment", [server, serve])
        time.sleep(3)  # let the automation for the trigger register
        drift = subprocess.run([*steward, "drift", "--collection", "digits", "--json"], env=env,
                               capture_output=True, text=True, timeout=300, check=False)
        assert drift.returncode == 10, drift.stdout + drift.stderr  # 10 = drift detected

        def retrain_run_state() -> str | None:
            r = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {}}, timeout=5)
            runs = [f for f in r.json() if f.get("deployment_id")]
            states = [f["state"]["type"] for f in runs if f.get("state")]
            if "FAILED" in states or "CRASHED" in states:
                raise AssertionError(f"triggered run failed: {states}; see {logs}")
            return "COMPLETED" if "COMPLETED" in states else None

        _wait(retrain_run_state, 300, "the triggered retrain run to complete", [server, serve])
        from storage.registry import open_registry

        reg = open_registry(f"sqlite:///{home / 'registry.db'}")
        assert [m.version for m in reg.models.list_models("digits")] == [1, 2]
        assert reg.runs.list_training_runs("digits")[-1].status == "finished"
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {}}, timeout=5).json()
        triggered = next(f for f in runs if f.get("deployment_id") and f["state"]["type"] == "COMPLETED")
        assert triggered["name"].startswith("retrain/digits/") and "collection:digits" in triggered["tags"]

        # The server goes away; `steward serve` still stops promptly on SIGTERM (not after minutes of retries).
        server.terminate()
        server.wait(timeout=30)
        time.sleep(2)
        started = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=60)
        assert time.monotonic() - started < 40 and code in (0, 1), (code, (logs / "serve.log").read_text()[-2000:])
    finally:
        for p in (serve, server):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
