"""Prefect tasks: each one calls one library function and returns plain data."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from prefect import task
from prefect.tasks import exponential_backoff

from flows.context import workspace
from flows.report import drift_outcome
from steward.errors import StewardError

log = logging.getLogger(__name__)


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


def _plain(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


@task(name="ingest-file", **IO_RETRIES)
def ingest_file(path: str, collection: str) -> dict[str, Any]:
    return _plain(workspace().store.ingest(path, collection))


@task(name="check-drift")
def run_drift_check(collection: str, batch_seq: int, html: bool = False) -> dict[str, Any]:
    from monitoring.check import check_drift

    ws = workspace()
    html_path = str(ws.settings.reports_dir / collection / f"drift-batch-{batch_seq}.html") if html else None
    result = check_drift(ws, collection, batch_seq, html_path=html_path, notify=True)
    return drift_outcome(result.report, alert_id=result.alert.id if result.alert else None, html=html_path)


@task(name="deliver-alerts", **IO_RETRIES)
def deliver_alerts() -> int:
    from monitoring.alerts import deliver_pending_alerts

    return deliver_pending_alerts(workspace())


@task(name="retrain-candidate")
def retrain_candidate(collection: str, full: bool = False, loss: str | None = None) -> dict[str, Any]:
    from embedding.retrain import retrain

    config = None
    if loss is not None:
        from embedding.config import TrainConfig

        config = dataclasses.replace(TrainConfig(), loss=loss)
    # Prefect's logs are the progress report inside a flow; a tqdm bar would interleave with them.
    outcome = retrain(workspace(), collection, full=full, config=config, progress=False)
    return {
        "model_version": outcome.model.version,
        "status": outcome.model.status,
        "accepted": outcome.decision.accepted,
        "reasons": list(outcome.decision.reasons),
        "metrics": outcome.model.metrics,
    }


@task(name="build-index")
def build_index(collection: str, model_version: int, as_of: int | None = None) -> dict[str, Any]:
    from embedding.index.service import build_index_for_model

    index = build_index_for_model(workspace(), collection, model_version, as_of=as_of)
    return _plain(index)


@task(name="promote-pair", **IO_RETRIES)
def promote_pair(collection: str, model_version: int, index_version: int | None, reason: str) -> dict[str, Any]:
    from storage.lifecycle import promote

    ws = workspace()
    return _plain(promote(ws.registry, ws.artifacts, collection, model_version, index_version, reason=reason))


@task(name="rollback-pair", **IO_RETRIES)
def rollback_pair(collection: str, to_version: int | None, reason: str) -> dict[str, Any]:
    from storage.lifecycle import rollback

    ws = workspace()
    return _plain(rollback(ws.registry, ws.artifacts, collection, to_version, reason=reason))


@task(name="publish-summary")
def publish_summary(collection: str, summary: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from flows.report import artifact_key, summary_markdown, summary_table

    key = artifact_key(collection)
    create_markdown_artifact(key=key, markdown=summary_markdown(summary), description=f"maintenance of {collection}")
    create_table_artifact(key=f"{key}-table", table=summary_table(summary), description=f"maintenance of {collection}")
