"""The maintenance cycle: ingest -> drift under production -> retrain when the policy says so ->
gate -> build the index -> promote, or keep production and record the rejection.

Failure never harms production: the alias moves only in the last step, after the candidate passed
the gate and its index was built, saved and registered. A rerun after a crash resumes: ingest is
idempotent by content hash, a drift check already stored for the batch and model is reused, and a
candidate (or index) already registered for the same data is picked up instead of trained again.

The sequence is written once, here; each step is a :class:`maintenance.steps.Steps` call, run in
process (:class:`~maintenance.steps.LibrarySteps`) or as Prefect tasks (``flows``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from maintenance.policy import should_retrain
from maintenance.steps import Steps, candidate_outcome, index_outcome
from maintenance.summary import CandidateOutcome, IndexOutcome, MaintenanceSummary
from monitoring.summary import DriftSummary

if TYPE_CHECKING:  # pragma: no cover
    from storage.workspace import Workspace

log = logging.getLogger(__name__)


def lock_name(collection: str) -> str:
    return f"maintenance:{collection}"


def existing_drift_check(ws: Workspace, collection: str, batch_seq: int, model_version: int | None
                         ) -> DriftSummary | None:
    """A drift check already stored for this batch under this model (reused by a rerun)."""
    for report in ws.registry.monitoring.list_drift_reports(collection, limit=20):
        if report.batch_seq == batch_seq and report.model_version == model_version:
            return DriftSummary.from_report(report, reused=True)
    return None


def resumable_candidate(ws: Workspace, collection: str, latest_batch: int, parent: int | None
                        ) -> CandidateOutcome | None:
    """A candidate already trained on exactly this data by an earlier, interrupted run."""
    for model in reversed(ws.registry.models.list_models(collection)):
        if (model.trained_on_batch == latest_batch and model.parent_version == parent
                and model.status in ("candidate", "rejected")):
            return candidate_outcome(model, resumed=True)
    return None


def resumable_index(ws: Workspace, collection: str, model_version: int, latest_batch: int) -> IndexOutcome | None:
    for index in reversed(ws.registry.models.list_indexes(collection, model_version)):
        if index.as_of_batch == latest_batch:
            return index_outcome(index, resumed=True)
    return None


def train_gate_index_promote(ws: Workspace, steps: Steps, collection: str, *, full: bool,
                             reason: str) -> MaintenanceSummary:
    """Retrain (or pick up an interrupted candidate), and promote it with a fresh index if the gate passed."""
    latest = ws.registry.catalog.latest_batch(collection).seq
    target = ws.production.target(collection)
    parent = target.model_version if target else None
    candidate = resumable_candidate(ws, collection, latest, parent) or steps.retrain(collection, full)
    if not candidate.accepted:
        return MaintenanceSummary(collection, f"candidate v{candidate.model_version} rejected; production unchanged",
                                  candidate=candidate)
    index = resumable_index(ws, collection, candidate.model_version, latest) or steps.build_index(
        collection, candidate.model_version, latest)
    steps.promote(collection, candidate.model_version, index.id, reason)
    promoted = dataclasses.replace(candidate, status="production")
    return MaintenanceSummary(collection, f"promoted model v{candidate.model_version} + index {index.id}",
                              candidate=promoted, index=index)


def run_maintenance(ws: Workspace, steps: Steps, collection: str, files: Sequence[str] = (), *,
                    retrain_on: str | None = None, html_report: bool = False) -> MaintenanceSummary:
    """One maintenance cycle for ``collection``, holding its lock; see the module doc.

    ``retrain_on``: the retrain policy (default: the ``maintenance.retrain_policy`` setting).
    """
    policy = retrain_on or ws.settings.maintenance.retrain_policy
    with ws.registry.runs.lock(lock_name(collection), ttl_seconds=ws.settings.maintenance.lock_ttl_seconds):
        ingested = tuple(steps.ingest(path, collection) for path in files)
        latest_batch = ws.registry.catalog.latest_batch(collection)
        if latest_batch is None:
            return MaintenanceSummary(collection, "no data yet", ingested=ingested)
        latest = latest_batch.seq
        target = ws.production.target(collection)
        drift = None
        if target is None:
            reason = "no production model yet: bootstrap with a full training run"
            result = train_gate_index_promote(ws, steps, collection, full=True, reason="bootstrap")
        else:
            prod_model = ws.registry.models.get_model(collection, target.model_version)
            drift = existing_drift_check(ws, collection, latest, target.model_version)
            if drift is None and latest != prod_model.trained_on_batch:
                drift = steps.check_drift(collection, latest, html_report)
            decision = should_retrain(policy=policy, drifted=bool(drift and drift.drifted),
                                      production_trained_on=prod_model.trained_on_batch, latest_batch=latest)
            reason = decision.reason
            result = (train_gate_index_promote(ws, steps, collection, full=False, reason=decision.reason)
                      if decision.retrain else MaintenanceSummary(collection, f"no retrain: {decision.reason}"))
        delivered = steps.deliver_alerts()
        now = ws.production.target(collection)
        return dataclasses.replace(
            result, ingested=ingested, latest_batch=latest, drift=drift, retrain_reason=reason,
            alerts_delivered=delivered,
            production=None if now is None else {"model_version": now.model_version, "index_version": now.index_version},
        )

