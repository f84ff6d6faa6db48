"""The deployments ``steward serve`` runs: scheduled maintenance, periodic drift checks, and a
retrain that the ``steward.drift.detected`` event triggers, so drift leads to retraining without a
person. ``deploy/prefect.yaml`` declares the same deployments for a work pool."""

from __future__ import annotations

from typing import Any

DRIFT_EVENT = "steward.drift.detected"
RESOURCE_PREFIX = "steward.collection."


def drift_trigger() -> Any:
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
        parameters={"collection": "{{ event.payload.collection }}", "reason": "drift event {{ event.id }}"},
    )


def build_deployments(collections: list[str], *, cron: str, drift_interval_seconds: int) -> list[Any]:
    from flows.maintenance import check_drift_flow, maintenance_flow, retrain_flow

    deployments = [retrain_flow.to_deployment(name="retrain-on-drift", triggers=[drift_trigger()],
                                              description="retrain, gate, index and promote when drift is detected")]
    for name in collections:
        deployments.append(maintenance_flow.to_deployment(
            name=f"maintenance-{name}", cron=cron, parameters={"collection": name, "retrain_on": "new-data"},
            description=f"nightly maintenance of {name}",
        ))
        deployments.append(check_drift_flow.to_deployment(
            name=f"check-drift-{name}", interval=drift_interval_seconds, parameters={"collection": name},
            description=f"periodic drift check of {name}",
        ))
    return deployments


def serve(collections: list[str], *, cron: str, drift_interval_seconds: int, limit: int | None = None) -> None:
    """Serve the deployments in this process (blocks until interrupted)."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(collections, cron=cron, drift_interval_seconds=drift_interval_seconds), limit=limit)
