"""The maintenance cycle and its parts as Prefect flows: thin wrappers over :mod:`maintenance`.

Every flow takes ``settings`` (``Settings.to_dict()``, as the CLI resolved them from its
``--config``, environment and flags) and hands it to its tasks; a deployment run by a worker
without it uses the worker's own settings.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from flows import tasks
from flows.context import resolve_settings, workspace
from maintenance.cycle import lock_name, run_maintenance, train_gate_index_promote

log = logging.getLogger(__name__)


@flow(name="ingest")
def ingest_flow(collection: str, files: list[str], settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    s = resolve_settings(settings)
    return [tasks.ingest_file(s, path, collection) for path in files]


@flow(name="check_drift")
def check_drift_flow(collection: str, batch_seq: int | None = None, html: bool = False,
                     settings: dict[str, Any] | None = None) -> dict[str, Any]:
    s = resolve_settings(settings)
    seq = batch_seq or workspace(s).registry.catalog.latest_batch(collection).seq
    result = tasks.run_drift_check(s, collection, seq, html)
    tasks.deliver_alerts(s)
    return result


@flow(name="rebuild_index")
def rebuild_index_flow(collection: str, model_version: int, as_of: int | None = None,
                       settings: dict[str, Any] | None = None) -> dict[str, Any]:
    s = resolve_settings(settings)
    as_of = as_of or workspace(s).registry.catalog.latest_batch(collection).seq
    return tasks.build_index(s, collection, model_version, as_of)


@flow(name="promote")
def promote_flow(collection: str, model_version: int, index_version: int | None = None,
                 reason: str = "promoted by flow", settings: dict[str, Any] | None = None) -> None:
    tasks.promote_pair(resolve_settings(settings), collection, model_version, index_version, reason)


@flow(name="rollback")
def rollback_flow(collection: str, to_version: int | None = None, reason: str = "rollback",
                  settings: dict[str, Any] | None = None) -> dict[str, Any]:
    return tasks.rollback_pair(resolve_settings(settings), collection, to_version, reason)


@flow(name="retrain")
def retrain_flow(collection: str, full: bool = False, reason: str = "retrain flow",
                 settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Retrain, gate, index and promote (used by the drift-triggered deployment)."""
    s = resolve_settings(settings)
    ws = workspace(s)
    with ws.registry.runs.lock(lock_name(collection), ttl_seconds=ws.settings.maintenance.lock_ttl_seconds):
        return train_gate_index_promote(ws, tasks.TaskSteps(s), collection, full=full, reason=reason).to_dict()


@flow(name="maintenance")
def maintenance_flow(collection: str, files: list[str] | None = None, retrain_on: str | None = None,
                     html_report: bool = False, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One maintenance cycle for ``collection`` (see :mod:`maintenance.cycle`)."""
    s = resolve_settings(settings)
    summary = run_maintenance(workspace(s), tasks.TaskSteps(s), collection, files or [], retrain_on=retrain_on,
                              html_report=html_report).to_dict()
    tasks.publish_summary(collection, summary)
    return summary
