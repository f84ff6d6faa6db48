"""The maintenance cycle and its parts as Prefect flows.

ingest -> embed with production and check drift (alerts) -> retrain when the policy says so ->
gate -> build the index -> promote, or keep production and record the rejection.

Failure never harms production: the alias moves only in the last step, after the candidate passed
the gate and its index was built, saved and registered. A rerun after a crash resumes: ingest is
idempotent by content hash, a drift check already stored for the batch and model is reused, and a
candidate (or index) already registered for the same data is picked up instead of trained again.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from flows import tasks
from flows.context import workspace
from flows.report import drift_outcome
from steward.policy import should_retrain

log = logging.getLogger(__name__)
LOCK_TTL_SECONDS = 6 * 3600


@flow(name="ingest")
def ingest_flow(collection: str, files: list[str]) -> list[dict[str, Any]]:
    return [tasks.ingest_file(path, collection) for path in files]


@flow(name="check_drift")
def check_drift_flow(collection: str, batch_seq: int | None = None, html: bool = False) -> dict[str, Any]:
    ws = workspace()
    seq = batch_seq or ws.registry.latest_batch(collection).seq
    result = tasks.run_drift_check(collection, seq, html)
    tasks.deliver_alerts()
    return result


def _existing_drift_check(collection: str, batch_seq: int, model_version: int | None) -> dict[str, Any] | None:
    for report in workspace().registry.list_drift_reports(collection, limit=20):
        if report.batch_seq == batch_seq and report.model_version == model_version:
            return drift_outcome(report, reused=True)
    return None


def _resumable_candidate(collection: str, latest_batch: int, parent: int | None) -> dict[str, Any] | None:
    """A candidate already trained on exactly this data by an earlier, interrupted run."""
    for model in reversed(workspace().registry.list_models(collection)):
        if model.trained_on_batch == latest_batch and model.parent_version == parent and model.status in ("candidate", "rejected"):
            gate = model.metrics.get("gate") or {}
            return {"model_version": model.version, "status": model.status, "accepted": model.status == "candidate",
                    "reasons": gate.get("reasons") or ([model.status_reason] if model.status_reason else []),
                    "metrics": model.metrics, "resumed": True}
    return None


def _resumable_index(collection: str, model_version: int, latest_batch: int) -> dict[str, Any] | None:
    import dataclasses

    for index in reversed(workspace().registry.list_indexes(collection, model_version)):
        if index.as_of_batch == latest_batch:
            return {**dataclasses.asdict(index), "resumed": True}
    return None


@flow(name="rebuild_index")
def rebuild_index_flow(collection: str, model_version: int, as_of: int | None = None) -> dict[str, Any]:
    return tasks.build_index(collection, model_version, as_of)


@flow(name="promote")
def promote_flow(collection: str, model_version: int, index_version: int | None = None,
                 reason: str = "promoted by flow") -> dict[str, Any]:
    return tasks.promote_pair(collection, model_version, index_version, reason)


@flow(name="rollback")
def rollback_flow(collection: str, to_version: int | None = None, reason: str = "rollback") -> dict[str, Any]:
    return tasks.rollback_pair(collection, to_version, reason)


def _train_gate_index_promote(collection: str, *, full: bool, reason: str, loss: str | None = None) -> dict[str, Any]:
    ws = workspace()
    latest = ws.registry.latest_batch(collection).seq
    production = ws.registry.get_alias(collection)
    parent = production.model_version if production else None
    candidate = _resumable_candidate(collection, latest, parent) or tasks.retrain_candidate(collection, full, loss)
    out: dict[str, Any] = {"candidate": candidate}
    if not candidate["accepted"]:
        out["outcome"] = f"candidate v{candidate['model_version']} rejected; production unchanged"
        return out
    index = _resumable_index(collection, candidate["model_version"], latest) or tasks.build_index(
        collection, candidate["model_version"], latest
    )
    out["index"] = index
    tasks.promote_pair(collection, candidate["model_version"], index["id"], reason)
    out["outcome"] = f"promoted model v{candidate['model_version']} + index {index['id']}"
    return out


@flow(name="retrain")
def retrain_flow(collection: str, full: bool = False, loss: str | None = None,
                 reason: str = "retrain flow") -> dict[str, Any]:
    """Retrain, gate, index and promote (used by the drift-triggered deployment)."""
    with workspace().registry.lock(f"maintenance:{collection}", ttl_seconds=LOCK_TTL_SECONDS):
        return _train_gate_index_promote(collection, full=full, reason=reason, loss=loss)


@flow(name="maintenance")
def maintenance_flow(collection: str, files: list[str] | None = None, retrain_on: str = "drift",
                     html_report: bool = False) -> dict[str, Any]:
    """One maintenance cycle for ``collection``; see the module docstring."""
    ws = workspace()
    with ws.registry.lock(f"maintenance:{collection}", ttl_seconds=LOCK_TTL_SECONDS):
        summary: dict[str, Any] = {"collection": collection}
        summary["ingested"] = [tasks.ingest_file(path, collection) for path in files or []]
        latest_batch = ws.registry.latest_batch(collection)
        if latest_batch is None:
            summary["outcome"] = "no data yet"
            return summary
        latest = summary["latest_batch"] = latest_batch.seq
        production = ws.registry.get_alias(collection)
        if production is None:
            summary["retrain_reason"] = "no production model yet: bootstrap with a full training run"
            summary.update(_train_gate_index_promote(collection, full=True, reason="bootstrap"))
        else:
            prod_model = ws.registry.get_model(collection, production.model_version)
            drift = _existing_drift_check(collection, latest, production.model_version)
            if drift is None and latest != prod_model.trained_on_batch:
                drift = tasks.run_drift_check(collection, latest, html_report)
            summary["drift"] = drift
            decision = should_retrain(
                policy=retrain_on, drifted=bool(drift and drift["drifted"]),
                production_trained_on=prod_model.trained_on_batch, latest_batch=latest,
            )
            summary["retrain_reason"] = decision.reason
            if decision.retrain:
                summary.update(_train_gate_index_promote(collection, full=False, reason=decision.reason))
            else:
                summary["outcome"] = f"no retrain: {decision.reason}"
        summary["alerts_delivered"] = tasks.deliver_alerts()
        now = ws.registry.get_alias(collection)
        summary["production"] = {"model_version": now.model_version, "index_version": now.index_version} if now else None
        tasks.publish_summary(collection, summary)
        return summary
