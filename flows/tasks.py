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


@task(name="ingest-file", **IO_RETRIES)
def ingest_file(settings: Settings, path: str, collection: str) -> dict[str, Any]:
    return dataclasses.asdict(steps.ingest(workspace(settings), path, collection))


@task(name="check-quality")
def run_quality_check(settings: Settings, collection: str, batch_seq: int) -> dict[str, Any]:
    return dataclasses.asdict(steps.check_quality(workspace(settings), collection, batch_seq))


@task(name="check-drift")
def run_drift_check(settings: Settings, collection: str, batch_seq: int, html: bool = False) -> dict[str, Any]:
    return steps.check_drift(workspace(settings), collection, batch_seq, html).to_dict()


@task(name="deliver-alerts", **IO_RETRIES)
def deliver_alerts(settings: Settings) -> int:
    return steps.deliver_alerts(workspace(settings))


@task(name="retrain-candidate")
def retrain_candidate(settings: Settings, collection: str, full: bool = False) -> dict[str, Any]:
    return dataclasses.asdict(steps.retrain(workspace(settings), collection, full))


@task(name="build-index")
def build_index(settings: Settings, collection: str, model_version: int, as_of: int) -> dict[str, Any]:
    return dataclasses.asdict(steps.build_index(workspace(settings), collection, model_version, as_of))


@task(name="promote-pair", **IO_RETRIES)
def promote_pair(settings: Settings, collection: str, model_version: int, index_version: int | None,
                 reason: str) -> None:
    steps.promote(workspace(settings), collection, model_version, index_version, reason)


@task(name="rollback-pair", **IO_RETRIES)
def rollback_pair(settings: Settings, collection: str, to_version: int | None, reason: str) -> dict[str, Any]:
    change = workspace(settings).production.rollback(collection, to_version, reason=reason)
    return {**dataclasses.asdict(change), "at": change.at.isoformat()}


@task(name="publish-summary")
def publish_summary(collection: str, summary: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from flows.report import artifact_key, summary_markdown, summary_table
    from maintenance.summary import MaintenanceSummary

    typed = MaintenanceSummary.from_dict(summary)
    key = artifact_key(collection)
    create_markdown_artifact(key=key, markdown=summary_markdown(typed), description=f"maintenance of {collection}")
    create_table_artifact(key=f"{key}-table", table=summary_table(typed), description=f"maintenance of {collection}")


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
