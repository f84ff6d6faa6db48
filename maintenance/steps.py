"""The steps of a maintenance run, each one library call on a workspace returning plain data.

:class:`Steps` is what :func:`maintenance.cycle.run_maintenance` sequences. :class:`LibrarySteps`
calls the library in this process; ``flows`` wraps the very same functions in Prefect tasks (with
retries, logs and run names), so both paths run the same code.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

from maintenance.summary import BatchQuality, CandidateOutcome, IndexOutcome, IngestedBatch
from monitoring.summary import DriftSummary

if TYPE_CHECKING:  # pragma: no cover
    from storage.workspace import Workspace


class Steps(Protocol):
    def ingest(self, path: str, collection: str) -> IngestedBatch: ...
    def check_quality(self, collection: str, batch_seq: int) -> BatchQuality: ...
    def check_drift(self, collection: str, batch_seq: int, html: bool) -> DriftSummary: ...
    def retrain(self, collection: str, full: bool) -> CandidateOutcome: ...
    def build_index(self, collection: str, model_version: int, as_of: int) -> IndexOutcome: ...
    def promote(self, collection: str, model_version: int, index_version: int | None, reason: str) -> None: ...
    def deliver_alerts(self) -> int: ...


def ingest(ws: Workspace, path: str, collection: str) -> IngestedBatch:
    r = ws.store.ingest(path, collection)
    return IngestedBatch(r.source, r.batch_seq, r.rows, r.quarantined, r.skipped_duplicate)


def check_quality(ws: Workspace, collection: str, batch_seq: int) -> BatchQuality:
    from monitoring.quality_check import check_batch_quality

    out = check_batch_quality(ws, collection, batch_seq)
    return BatchQuality(batch_seq, out.report.passed, out.report.summary(), out.excluded,
                        out.notice.describe() if out.notice else None)


def check_drift(ws: Workspace, collection: str, batch_seq: int, html: bool) -> DriftSummary:
    from monitoring.check import check_drift as run_check

    html_path = str(ws.settings.reports_dir / collection / f"drift-batch-{batch_seq}.html") if html else None
    return run_check(ws, collection, batch_seq, html_path=html_path, notify=True)


def candidate_outcome(model: Any, *, resumed: bool = False) -> CandidateOutcome:
    """What a run reports of a registered candidate (fresh or picked up from an interrupted run)."""
    from embedding.report import ModelReport

    report = ModelReport.from_dict(model.metrics or {})
    reasons = report.gate.reasons or ((model.status_reason,) if model.status_reason else ())
    ev = report.evaluation
    return CandidateOutcome(model.version, model.status, model.status != "rejected", tuple(reasons),
                            report.headline(), resumed, suspects_flagged=report.training.suspects_flagged,
                            suspects_downweighted=report.training.suspects_downweighted,
                            group_gap=None if ev is None else ev.group_gap)


def retrain(ws: Workspace, collection: str, full: bool) -> CandidateOutcome:
    from embedding.retrain import retrain as run_retrain

    # Inside a run, progress goes to the logs; a terminal bar would interleave with them.
    return candidate_outcome(run_retrain(ws, collection, full=full, progress=False).model)


def index_outcome(index: Any, *, resumed: bool = False) -> IndexOutcome:
    m = index.metrics or {}
    return IndexOutcome(index.id, index.factory, index.num_vectors, m.get("recall_at_10"), m.get("latency_p50_ms"),
                        resumed)


def build_index(ws: Workspace, collection: str, model_version: int, as_of: int) -> IndexOutcome:
    from embedding.index.service import build_index_for_model

    s = ws.settings.index
    budget = int(s.memory_budget_mb * 2**20) if s.memory_budget_mb else None
    index = build_index_for_model(ws, collection, model_version, as_of=as_of, target_recall=s.target_recall,
                                  memory_budget_bytes=budget, latency_target_ms=s.latency_target_ms, progress=False)
    return index_outcome(index)


def promote(ws: Workspace, collection: str, model_version: int, index_version: int | None, reason: str) -> None:
    """An automated promotion: refused while production is pinned (the cycle checks first)."""
    ws.production.promote(collection, model_version, index_version, reason=reason, automated=True)


def deliver_alerts(ws: Workspace) -> int:
    from monitoring.alerts import deliver_pending_alerts

    return deliver_pending_alerts(ws)


@dataclasses.dataclass(frozen=True)
class LibrarySteps:
    """The steps run in this process, without Prefect."""

    ws: Workspace

    def ingest(self, path: str, collection: str) -> IngestedBatch:
        return ingest(self.ws, path, collection)

    def check_quality(self, collection: str, batch_seq: int) -> BatchQuality:
        return check_quality(self.ws, collection, batch_seq)

    def check_drift(self, collection: str, batch_seq: int, html: bool) -> DriftSummary:
        return check_drift(self.ws, collection, batch_seq, html)

    def retrain(self, collection: str, full: bool) -> CandidateOutcome:
        return retrain(self.ws, collection, full)

    def build_index(self, collection: str, model_version: int, as_of: int) -> IndexOutcome:
        return build_index(self.ws, collection, model_version, as_of)

    def promote(self, collection: str, model_version: int, index_version: int | None, reason: str) -> None:
        promote(self.ws, collection, model_version, index_version, reason)

    def deliver_alerts(self) -> int:
        return deliver_alerts(self.ws)
