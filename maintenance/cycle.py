"""The maintenance cycle: ingest -> data quality -> drift under production -> retrain when the
policy says so -> gate -> build the index -> promote, or keep production and say why.

Failure never harms production: the alias moves only in the last step, after the candidate passed
the gate and its index was built, saved and registered, and never while an operator has pinned it.
A batch that fails its data-quality checks is excluded from training (and from drift references)
and does not trigger a retrain. A rerun after a crash resumes: ingest is idempotent by content
hash, a drift check already stored for the batch and model is reused, a candidate (or index)
already registered for the same data is picked up instead of trained again, and the crashed
training run is marked failed.

The sequence is written once, here; each step is a :class:`maintenance.steps.Steps` call, run in
process (:class:`~maintenance.steps.LibrarySteps`) or as Prefect tasks (``flows``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from maintenance.policy import promotion, should_retrain
from maintenance.steps import Steps, candidate_outcome, index_outcome
from maintenance.summary import BatchQuality, CandidateOutcome, IndexOutcome, MaintenanceSummary
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
                and model.status in ("candidate", "approved", "rejected")):
            return candidate_outcome(model, resumed=True)
    return None


def resumable_index(ws: Workspace, collection: str, model_version: int, latest_batch: int) -> IndexOutcome | None:
    for index in reversed(ws.registry.models.list_indexes(collection, model_version)):
        if index.as_of_batch == latest_batch:
            return index_outcome(index, resumed=True)
    return None


def train_gate_index_promote(ws: Workspace, steps: Steps, collection: str, *, full: bool,
                             reason: str) -> MaintenanceSummary:
    """Retrain (or pick up an interrupted candidate); if the gate passed, build its index and
    promote it, or leave it approved (manual mode) or waiting (production pinned)."""
    latest = ws.registry.catalog.latest_batch(collection).seq
    target = ws.production.target(collection)
    parent = None if full or target is None else target.model_version
    candidate = resumable_candidate(ws, collection, latest, parent) or steps.retrain(collection, full)
    if not candidate.accepted:
        return MaintenanceSummary(collection, f"candidate v{candidate.model_version} rejected; production unchanged",
                                  candidate=candidate)
    blocked = ws.production.may_promote_automatically(collection, candidate.model_version)
    needed = ws.settings.gate.min_shadow_queries
    shadowed = 0
    if needed > 0 and target is not None:  # the first model has no production to be a shadow of
        shadowed = ws.registry.shadow.query_count(collection, candidate.model_version, target.model_version)
    decision = promotion(mode=ws.settings.maintenance.promotion, blocked_because=blocked,
                         min_shadow_queries=needed if target is not None else 0, shadow_queries=shadowed,
                         model_version=candidate.model_version)
    if blocked is not None:  # no index either: it would be built for a version that cannot serve now
        return MaintenanceSummary(collection, f"candidate v{candidate.model_version} passed the gate, "
                                  f"{decision.reason}", candidate=candidate)
    index = resumable_index(ws, collection, candidate.model_version, latest) or steps.build_index(
        collection, candidate.model_version, latest)
    if not decision.promote:
        ws.registry.models.set_model_status(collection, candidate.model_version, decision.status, decision.reason)
        return MaintenanceSummary(collection, f"candidate v{candidate.model_version} + index {index.id} "
                                  f"{decision.reason}", candidate=dataclasses.replace(candidate, status=decision.status),
                                  index=index)
    steps.promote(collection, candidate.model_version, index.id, reason)
    return MaintenanceSummary(collection, f"promoted model v{candidate.model_version} + index {index.id}",
                              candidate=dataclasses.replace(candidate, status="production"), index=index)


def _check_new_batches(ws: Workspace, steps: Steps, collection: str) -> tuple[BatchQuality, ...]:
    """Data-quality checks of every batch not checked yet (a failing one is excluded from training)."""
    if not ws.settings.quality.enabled:
        return ()
    pending = [b.seq for b in ws.registry.catalog.list_batches(collection) if b.quality is None and not b.excluded]
    return tuple(steps.check_quality(collection, seq) for seq in pending)


def _decide(ws: Workspace, steps: Steps, collection: str, policy: str, html_report: bool
            ) -> tuple[DriftSummary | None, MaintenanceSummary, str]:
    """Drift on the newest batch (unless it is excluded), the retrain decision, and what came of it."""
    batches = ws.registry.catalog.list_batches(collection)
    latest = batches[-1]
    excluded = {b.seq: f"is excluded from training: {b.excluded_reason}" for b in batches if b.excluded}
    trainable = max((b.seq for b in batches if not b.excluded), default=None)
    target = ws.production.target(collection)
    if target is None:
        if trainable is None:
            return None, MaintenanceSummary(collection, f"no retrain: batch {latest.seq} {excluded[latest.seq]}"), \
                "nothing to bootstrap from"
        reason = "no production model yet: bootstrap with a full training run"
        return None, train_gate_index_promote(ws, steps, collection, full=True, reason="bootstrap"), reason
    prod_model = ws.registry.models.get_model(collection, target.model_version)
    drift = None
    # Drift is checked on the newest batch production may learn from: an excluded one says nothing
    # about the world, only about the pipe.
    if trainable is not None:
        drift = existing_drift_check(ws, collection, trainable, target.model_version)
        if drift is None and trainable != prod_model.trained_on_batch:
            drift = steps.check_drift(collection, trainable, html_report)
    decision = should_retrain(policy=policy, drifted=bool(drift and drift.drifted),
                              production_trained_on=prod_model.trained_on_batch, latest_batch=latest.seq,
                              latest_trainable=trainable, excluded=excluded)
    if not decision.retrain:
        return drift, MaintenanceSummary(collection, f"no retrain: {decision.reason}"), decision.reason
    return drift, train_gate_index_promote(ws, steps, collection, full=decision.full, reason=decision.reason), \
        decision.reason


def run_maintenance(ws: Workspace, steps: Steps, collection: str, files: Sequence[str] = (), *,
                    retrain_on: str | None = None, html_report: bool = False) -> MaintenanceSummary:
    """One maintenance cycle for ``collection``, holding its lock; see the module doc.

    ``retrain_on``: the retrain policy (default: the ``maintenance.retrain_policy`` setting).
    """
    policy = retrain_on or ws.settings.maintenance.retrain_policy
    ttl = ws.settings.maintenance.lock_ttl_seconds
    with ws.registry.runs.lock(lock_name(collection), ttl_seconds=ttl):
        ingested = tuple(steps.ingest(path, collection) for path in files)
        latest_batch = ws.registry.catalog.latest_batch(collection)
        if latest_batch is None:
            return MaintenanceSummary(collection, "no data yet", ingested=ingested)
        failed = tuple(r.id for r in ws.registry.runs.fail_stale_runs(collection, older_than_seconds=ttl))
        quality = _check_new_batches(ws, steps, collection)
        drift, result, reason = _decide(ws, steps, collection, policy, html_report)
        delivered = steps.deliver_alerts()
        now = ws.production.target(collection)
        return dataclasses.replace(
            result, ingested=ingested, quality=quality, latest_batch=latest_batch.seq, drift=drift,
            retrain_reason=reason, alerts_delivered=delivered, failed_runs=failed,
            production=None if now is None else {"model_version": now.model_version,
                                                 "index_version": now.index_version, "pinned": now.pinned},
        )
