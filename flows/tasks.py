"""Prefect tasks: each runs one maintenance step (:mod:`maintenance.steps`) and returns plain data.

Tasks take the resolved settings dict, not a workspace, so they run the same on a thread, a
process pool or a Dask worker.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from prefect import task
from prefect.tasks import exponential_backoff

from core.errors import StewardError
from flows.context import workspace
from maintenance import steps
from maintenance.summary import BatchQuality, CandidateOutcome, IndexOutcome, IngestedBatch
from monitoring.summary import DriftSummary

log = logging.getLogger(__name__)
Settings = dict[str, Any]


def _transient(task, task_run, state) -> bool:
    """Retry I/O hiccups, not user errors: a bad file or a failed checksum will not fix itself."""
    try:
        state.result()
    except StewardError:
        return False
    except Exception:  # noqa: BLE001 - any other exception is presumed transient (network, DB)
        return True
    return False


IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": _transient,
}


def _say(message: str, *args: Any) -> None:
    """One line in the task run's logs (the Prefect UI): through steward's own logger, which the flow
    forwards to the run (flows.run_logs) whatever level Prefect's console is set to."""
    log.info(message, *args)


@task(name="ingest-file", log_prints=True, **IO_RETRIES)
def ingest_file(settings: Settings, path: str, collection: str) -> dict[str, Any]:
    out = steps.ingest(workspace(settings), path, collection)
    _say("%s: %s", path, f"already ingested as batch {out.batch_seq}" if out.skipped_duplicate
         else f"batch {out.batch_seq}, {out.rows} rows, {out.quarantined} quarantined")
    return dataclasses.asdict(out)


@task(name="check-quality", log_prints=True)
def run_quality_check(settings: Settings, collection: str, batch_seq: int) -> dict[str, Any]:
    out = steps.check_quality(workspace(settings), collection, batch_seq)
    _say("batch %d: %s%s", batch_seq, "passed" if out.passed else f"FAILED: {out.summary}",
         " (excluded from training)" if out.excluded else "")
    return dataclasses.asdict(out)


@task(name="check-drift", log_prints=True)
def run_drift_check(settings: Settings, collection: str, batch_seq: int, html: bool = False) -> dict[str, Any]:
    out = steps.check_drift(workspace(settings), collection, batch_seq, html)
    _say("batch %d vs %s: %s (flagged: %s)%s", batch_seq, list(out.reference_batches),
         "DRIFT" if out.drifted else "no drift", ", ".join(out.decision.flagged) or "none",
         f"; {out.notice}" if out.notice else "")
    return out.to_dict()


@task(name="deliver-alerts", log_prints=True, **IO_RETRIES)
def deliver_alerts(settings: Settings) -> int:
    delivered = steps.deliver_alerts(workspace(settings))
    _say("%d pending alerts delivered%s", delivered, "" if workspace(settings).settings.webhook_url
         else " (no webhook configured)")
    return delivered


@task(name="retrain-candidate", log_prints=True)
def retrain_candidate(settings: Settings, collection: str, full: bool = False) -> dict[str, Any]:
    out = steps.retrain(workspace(settings), collection, full)
    _say("candidate v%d %s by the gate: %s", out.model_version, "accepted" if out.accepted else "rejected",
         "; ".join(out.reasons) or "-")
    return dataclasses.asdict(out)


@task(name="build-index", log_prints=True)
def build_index(settings: Settings, collection: str, model_version: int, as_of: int) -> dict[str, Any]:
    out = steps.build_index(workspace(settings), collection, model_version, as_of)
    _say("index %d (%s, %d vectors) recall@10 %s", out.id, out.factory, out.num_vectors, out.recall_at_10)
    return dataclasses.asdict(out)


@task(name="promote-pair", log_prints=True, **IO_RETRIES)
def promote_pair(settings: Settings, collection: str, model_version: int, index_version: int | None,
                 reason: str) -> None:
    steps.promote(workspace(settings), collection, model_version, index_version, reason)
    _say("production of %s -> model v%d + index %s (%s)", collection, model_version, index_version, reason)


@task(name="rollback-pair", log_prints=True, **IO_RETRIES)
def rollback_pair(settings: Settings, collection: str, to_version: int | None, reason: str) -> dict[str, Any]:
    from storage.serialization import iso_utc

    change = workspace(settings).production.rollback(collection, to_version, reason=reason)
    _say("production of %s rolled back from v%s to v%d (%s)", collection, change.from_model, change.to_model, reason)
    return {**dataclasses.asdict(change), "at": iso_utc(change.at)}


@task(name="publish-summary", log_prints=True)
def publish_summary(collection: str, summary: dict[str, Any], kind: str = "maintenance") -> None:
    from prefect.artifacts import create_table_artifact

    from flows.report import artifact_key, publish, summary_markdown, summary_table
    from maintenance.summary import MaintenanceSummary

    typed = MaintenanceSummary.from_dict(summary)
    key = artifact_key(collection, kind)
    publish(key, summary_markdown(typed, title=kind.replace("-", " ").capitalize()), f"{kind} of {collection}")
    create_table_artifact(key=f"{key}-table", table=summary_table(typed), description=f"{kind} of {collection}")


@task(name="publish-report", log_prints=True)
def publish_report(key: str, markdown: str, description: str) -> None:
    from flows.report import publish

    publish(key, markdown, description)


@dataclasses.dataclass(frozen=True)
class TaskSteps:
    """:class:`maintenance.steps.Steps` run as Prefect tasks (what the flows hand the cycle)."""

    settings: Settings

    def ingest(self, path: str, collection: str) -> IngestedBatch:
        return IngestedBatch(**ingest_file(self.settings, path, collection))

    def check_quality(self, collection: str, batch_seq: int) -> BatchQuality:
        return BatchQuality(**run_quality_check(self.settings, collection, batch_seq))

    def check_drift(self, collection: str, batch_seq: int, html: bool) -> DriftSummary:
        return DriftSummary.from_dict(run_drift_check(self.settings, collection, batch_seq, html))

    def retrain(self, collection: str, full: bool) -> CandidateOutcome:
        out = retrain_candidate(self.settings, collection, full)
        return CandidateOutcome(**{**out, "reasons": tuple(out["reasons"])})

    def build_index(self, collection: str, model_version: int, as_of: int) -> IndexOutcome:
        return IndexOutcome(**build_index(self.settings, collection, model_version, as_of))

    def promote(self, collection: str, model_version: int, index_version: int | None, reason: str) -> None:
        promote_pair(self.settings, collection, model_version, index_version, reason)

    def deliver_alerts(self) -> int:
        return deliver_alerts(self.settings)
