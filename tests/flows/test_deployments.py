"""Deployments: `steward serve` and deploy/prefect.yaml declare the same ones (concurrency 1, the
collection as a parameter, tags), and `steward serve` stops on SIGTERM/SIGINT even when Prefect cannot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.factories import make_settings

REPO = Path(__file__).resolve().parents[2]


def _yaml_deployments(collection: str) -> dict[str, dict]:
    from prefect.cli.deploy._config import PrefectYamlModel

    text = (REPO / "deploy" / "prefect.yaml").read_text()
    assert "digits" not in text  # not hard-wired to one collection
    raw = yaml.safe_load(text.replace("{{ prefect.variables.steward_collection }}", collection))
    model = PrefectYamlModel.model_validate(raw)  # Prefect's own schema of the file
    return {d.name: d.model_dump(exclude_unset=True, mode="json") for d in model.deployments}


def test_serve_and_prefect_yaml_declare_the_same_deployments(tmp_path: Path) -> None:
    from flows.deployments import build_deployments

    settings = make_settings(tmp_path / "home")
    served = {d.name: d for d in build_deployments(["shop"], settings)}
    declared = _yaml_deployments("shop")
    assert set(served) == set(declared) == {"maintenance-shop", "check-drift-shop", "retrain-on-drift"}
    for name, d in served.items():
        y = declared[name]
        assert d.entrypoint == y["entrypoint"], name
        assert d.concurrency_limit == y["concurrency_limit"] == 1, name
        assert sorted(d.tags) == sorted(y["tags"]), name
        assert {k: v for k, v in d.parameters.items() if k != "settings"} == y.get("parameters", {}), name
    assert served["maintenance-shop"].schedules[0].schedule.cron == declared["maintenance-shop"]["schedules"][0]["cron"]
    assert served["check-drift-shop"].schedules[0].schedule.interval == timedelta(seconds=3600)
    assert declared["check-drift-shop"]["schedules"][0]["interval"] in (3600, "PT1H")
    [trigger] = served["retrain-on-drift"].triggers
    [declared_trigger] = declared["retrain-on-drift"]["triggers"]
    assert set(trigger.expect) == set(declared_trigger["expect"])
    assert trigger.match.model_dump() == declared_trigger["match"]
    assert {k: v for k, v in trigger.parameters.items() if k != "settings"} == declared_trigger["parameters"]
    assert served["maintenance-shop"].parameters["collection"] == "shop"
    assert "collection:shop" in served["maintenance-shop"].tags


_FAKE_SERVE = """
import asyncio, sys
from flows.deployments import run_until_signalled

class Runner:
    def __init__(self, stops):
        self.stops, self.stopping = stops, False
        self.loop = None
    async def start(self):
        self.loop = asyncio.get_running_loop()
        print("started", flush=True)
        while not self.stopping:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # pausing schedules, cancelling runs
    def handle_sigterm(self):
        if self.stops:  # a reachable server: the runner winds down
            self.loop.call_soon_threadsafe(setattr, self, "stopping", True)
        # else: a server that is gone: every call would retry for minutes

sys.exit(run_until_signalled(Runner(stops=sys.argv[1] == "stops"), grace_seconds=float(sys.argv[2])))
"""


def _serve_fake(behaviour: str, grace: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _FAKE_SERVE, behaviour, str(grace)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(signum: int) -> None:
    proc = _serve_fake("stops", grace=30)
    proc.send_signal(signum)
    assert proc.wait(timeout=20) == 0
    assert "stopping" in proc.stderr.read()


def test_serve_exits_within_the_grace_period_when_prefect_cannot_stop() -> None:
    proc = _serve_fake("hangs", grace=2)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 1
    assert time.monotonic() - started < 10
    assert "did not stop within 2 s" in proc.stderr.read()


def test_a_second_signal_exits_at_once() -> None:
    proc = _serve_fake("hangs", grace=60)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
