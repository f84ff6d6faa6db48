"""The deployments ``steward serve`` runs: scheduled maintenance, periodic drift checks, and a
retrain that the ``steward.drift.detected`` event triggers, so drift leads to retraining without a
person. ``deploy/prefect.yaml`` declares the same deployments for a work pool (a test keeps the two
in step): one run at a time per deployment (concurrency limit 1, later runs wait), the collection
as a parameter, tags ``steward`` and ``collection:<name>``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from core.settings import Settings
from flows.run_logs import TAG, collection_tags
from monitoring.alerts import DRIFT_EVENT, RESOURCE_PREFIX

log = logging.getLogger(__name__)

CONCURRENCY_LIMIT = 1  # per deployment; the per-collection lock also keeps two runs of one collection apart


def drift_trigger(settings: dict[str, Any]) -> Any:
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
        parameters={"collection": "{{ event.payload.collection }}", "reason": "drift event {{ event.id }}",
                    "settings": settings},
    )


def build_deployments(collections: list[str], settings: Settings) -> list[Any]:
    """One retrain-on-drift deployment, and per collection a nightly maintenance and a drift check;
    every run gets ``settings`` (secrets left out: the serving process's environment or the Prefect
    Secret blocks named in the settings provide them)."""
    from flows.maintenance_flows import check_drift_flow, maintenance_flow, retrain_flow

    params = settings.to_dict()
    deployments = [retrain_flow.to_deployment(
        name="retrain-on-drift", triggers=[drift_trigger(params)], concurrency_limit=CONCURRENCY_LIMIT,
        tags=[TAG], description="retrain, gate, index and promote when drift is detected")]
    for name in collections:
        deployments.append(maintenance_flow.to_deployment(
            name=f"maintenance-{name}", cron=settings.maintenance.cron, concurrency_limit=CONCURRENCY_LIMIT,
            parameters={"collection": name, "retrain_on": "new-data", "settings": params},
            tags=list(collection_tags(name)), description=f"nightly maintenance of {name}",
        ))
        deployments.append(check_drift_flow.to_deployment(
            name=f"check-drift-{name}", interval=settings.drift.check_interval_seconds,
            concurrency_limit=CONCURRENCY_LIMIT, parameters={"collection": name, "settings": params},
            tags=list(collection_tags(name)), description=f"periodic drift check of {name}",
        ))
    return deployments


def serve(collections: list[str], settings: Settings, *, limit: int | None = None, grace_seconds: float = 20.0,
          runner_factory: Callable[..., Any] | None = None) -> int:
    """Serve the deployments in this process until SIGTERM or SIGINT; returns the exit code.

    Prefect's runner runs in a thread while the main thread waits for a signal. On one it asks the
    runner to stop (pause the schedules, cancel runs) and gives it ``grace_seconds``; when the
    Prefect server is gone those calls only retry, so steward then exits anyway instead of hanging
    (exit code 1, and it says so). A second signal exits at once.
    """
    if runner_factory is None:
        from prefect.runner import Runner

        runner_factory = Runner
    runner = runner_factory(limit=limit, pause_on_shutdown=True)
    for deployment in build_deployments(collections, settings):
        runner.add_deployment(deployment)
    return run_until_signalled(runner, grace_seconds)


def run_until_signalled(runner: Any, grace_seconds: float) -> int:
    """Run ``runner.start()`` in a thread; stop it on SIGTERM/SIGINT within ``grace_seconds`` (see :func:`serve`)."""
    stop = threading.Event()
    errors: list[BaseException] = []
    signals = {signal.SIGTERM: signal.getsignal(signal.SIGTERM), signal.SIGINT: signal.getsignal(signal.SIGINT)}

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():  # the second one: no more waiting
            _hard_exit(f"received {signal.Signals(signum).name} again: exiting now", 130)
        stop.set()

    def work() -> None:
        try:
            asyncio.run(runner.start())
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    # The runner thread is not the main thread, so Prefect installs no SIGTERM handler of its own.
    thread = threading.Thread(target=work, name="prefect-runner", daemon=True)
    for signum in signals:
        signal.signal(signum, on_signal)
    try:
        thread.start()
        while thread.is_alive() and not stop.wait(0.5):
            pass
        late = f"Prefect did not stop within {grace_seconds:.0f} s (is its server gone?); exiting anyway"
        if stop.is_set():
            # From here the process ends within the grace period, however Prefect's exit hooks behave.
            watchdog = threading.Timer(grace_seconds, _hard_exit, args=(late, 1))
            watchdog.daemon = True
            watchdog.start()
        if thread.is_alive():
            log.warning("stopping: pausing the served deployments and cancelling their runs (up to %.0f s)",
                        grace_seconds)
            print(f"stopping (up to {grace_seconds:.0f} s) ...", file=sys.stderr, flush=True)
            _request_stop(runner)
            thread.join(grace_seconds)
            if thread.is_alive():
                # Decided here, not left to the watchdog: both wake after grace_seconds, and a return
                # that won the race would exit 0 for a runner that never stopped.
                _hard_exit(late, 1)
    finally:
        for signum, previous in signals.items():
            signal.signal(signum, previous)
    if errors and not stop.is_set():
        raise errors[0]
    return 0


def _request_stop(runner: Any) -> None:
    """Ask the runner to stop from its own event loop (its ``handle_sigterm`` does exactly that)."""
    try:
        runner.handle_sigterm()
    except SystemExit:  # the runner had not started: nothing to stop
        pass


def _hard_exit(message: str, code: int) -> None:
    """Leave now: Prefect's exit hooks would retry a server that is gone."""
    import os

    print(message, file=sys.stderr, flush=True)
    log.warning(message)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)
