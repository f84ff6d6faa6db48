"""The deployments ``steward serve`` runs: scheduled maintenance, periodic drift checks, and a
retrain that the ``steward.drift.detected`` event triggers, so drift leads to retraining without a
person. ``deploy/prefect.yaml`` declares the same deployments for a work pool."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from monitoring.alerts import DRIFT_EVENT, RESOURCE_PREFIX


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
    every run gets ``settings`` (secrets left out: the serving process's environment provides them)."""
    from flows.maintenance_flows import check_drift_flow, maintenance_flow, retrain_flow

    params = settings.to_dict()
    deployments = [retrain_flow.to_deployment(name="retrain-on-drift", triggers=[drift_trigger(params)],
                                              description="retrain, gate, index and promote when drift is detected")]
    for name in collections:
        deployments.append(maintenance_flow.to_deployment(
            name=f"maintenance-{name}", cron=settings.maintenance.cron,
            parameters={"collection": name, "retrain_on": "new-data", "settings": params},
            description=f"nightly maintenance of {name}",
        ))
        deployments.append(check_drift_flow.to_deployment(
            name=f"check-drift-{name}", interval=settings.drift.check_interval_seconds,
            parameters={"collection": name, "settings": params}, description=f"periodic drift check of {name}",
        ))
    return deployments


def serve(collections: list[str], settings: Settings, *, limit: int | None = None) -> None:
    """Serve the deployments in this process (blocks until interrupted)."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(collections, settings), limit=limit)
