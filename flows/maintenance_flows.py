"""The maintenance cycle and its parts as Prefect flows: thin wrappers over :mod:`maintenance`.

Every flow takes ``settings`` (``Settings.to_dict()``, as the CLI resolved them from its
``--config``, environment and flags) and hands it to its tasks; a deployment run by a worker
without it uses the worker's own settings.

What a Prefect user finds in the UI: run names such as ``maintenance/shop/batch-5``, the tags
``steward`` and ``collection:shop`` on the flow run and its task runs, a log line from every task
and steward's own INFO logs (:mod:`flows.run_logs`), and a markdown artifact per flow run.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from flows import tasks
from flows.context import resolve_settings, workspace
from flows.report import artifact_key, drift_markdown, record_markdown
from flows.run_logs import collection_run, run_name
from maintenance.cycle import lock_name, run_maintenance, train_gate_index_promote
from monitoring.summary import DriftSummary

log = logging.getLogger(__name__)


def _latest_batch(params: dict[str, Any]) -> int:
    from core.errors import NotFoundError

    try:
        latest = workspace(params.get("settings")).registry.catalog.latest_batch(params["collection"])
    except NotFoundError:  # a new collection: its first batch is on its way
        return 0
    return 0 if latest is None else latest.seq


def _maintenance_name(params: dict[str, Any]) -> str:
    # The newest batch the run will see (assuming its files are new content).
    return f"maintenance/{params['collection']}/batch-{_latest_batch(params) + len(params.get('files') or ())}"


def _drift_name(params: dict[str, Any]) -> str:
    return f"check-drift/{params['collection']}/batch-{params.get('batch_seq') or _latest_batch(params)}"


def _retrain_name(params: dict[str, Any]) -> str:
    return f"retrain/{params['collection']}/batch-{_latest_batch(params)}"


def _rollback_name(params: dict[str, Any]) -> str:
    to = params.get("to_version")
    return f"rollback/{params['collection']}/" + (f"to-v{to}" if to else "previous")


@flow(name="ingest", log_prints=True, flow_run_name=run_name(
    lambda p: f"ingest/{p['collection']}/{len(p.get('files') or ())}-files", "ingest"))
def ingest_flow(collection: str, files: list[str], settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    s = resolve_settings(settings)
    with collection_run(collection):
        out = [tasks.ingest_file(s, path, collection) for path in files]
        tasks.publish_report(artifact_key(collection, "ingest"), record_markdown(
            f"Ingest into `{collection}`",
            [(r["source"], f"batch {r['batch_seq']}: {r['rows']} rows, {r['quarantined']} quarantined"
              + (" (already ingested)" if r["skipped_duplicate"] else "")) for r in out]), f"ingest into {collection}")
    return out


@flow(name="check_drift", log_prints=True, flow_run_name=run_name(_drift_name, "check-drift"))
def check_drift_flow(collection: str, batch_seq: int | None = None, html: bool = False,
                     settings: dict[str, Any] | None = None) -> dict[str, Any]:
    s = resolve_settings(settings)
    with collection_run(collection):
        seq = batch_seq or workspace(s).registry.catalog.latest_batch(collection).seq
        result = tasks.run_drift_check(s, collection, seq, html)
        tasks.deliver_alerts(s)
        tasks.publish_report(artifact_key(collection, "drift"), drift_markdown(DriftSummary.from_dict(result)),
                             f"drift check of {collection}")
    return result


@flow(name="rebuild_index", log_prints=True, flow_run_name=run_name(
    lambda p: f"index/{p['collection']}/model-{p['model_version']}", "index"))
def rebuild_index_flow(collection: str, model_version: int, as_of: int | None = None,
                       settings: dict[str, Any] | None = None) -> dict[str, Any]:
    s = resolve_settings(settings)
    with collection_run(collection):
        as_of = as_of or workspace(s).registry.catalog.latest_batch(collection).seq
        out = tasks.build_index(s, collection, model_version, as_of)
        tasks.publish_report(artifact_key(collection, "index"), record_markdown(
            f"Index {out['id']} of `{collection}` model v{model_version}", sorted(out.items())),
            f"index build of {collection}")
    return out


@flow(name="promote", log_prints=True, flow_run_name=run_name(
    lambda p: f"promote/{p['collection']}/v{p['model_version']}", "promote"))
def promote_flow(collection: str, model_version: int, index_version: int | None = None,
                 reason: str = "promoted by flow", settings: dict[str, Any] | None = None) -> None:
    s = resolve_settings(settings)
    with collection_run(collection):
        tasks.promote_pair(s, collection, model_version, index_version, reason)
        tasks.publish_report(artifact_key(collection, "promote"), record_markdown(
            f"Promotion in `{collection}`", [("model", f"v{model_version}"), ("index", index_version),
                                             ("reason", reason)]), f"promotion in {collection}")


@flow(name="rollback", log_prints=True, flow_run_name=run_name(_rollback_name, "rollback"))
def rollback_flow(collection: str, to_version: int | None = None, reason: str = "rollback",
                  settings: dict[str, Any] | None = None) -> dict[str, Any]:
    s = resolve_settings(settings)
    with collection_run(collection):
        change = tasks.rollback_pair(s, collection, to_version, reason)
        tasks.publish_report(artifact_key(collection, "rollback"), record_markdown(
            f"Rollback in `{collection}`", [(k, change[k]) for k in ("from_model", "from_index", "to_model",
                                                                     "to_index", "actor", "reason", "at")]),
            f"rollback in {collection}")
    return change


@flow(name="retrain", log_prints=True, flow_run_name=run_name(_retrain_name, "retrain"))
def retrain_flow(collection: str, full: bool = False, reason: str = "retrain flow",
                 settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Retrain, gate, index and promote (used by the drift-triggered deployment)."""
    s = resolve_settings(settings)
    ws = workspace(s)
    with collection_run(collection), ws.registry.runs.lock(lock_name(collection),
                                                           ttl_seconds=ws.settings.maintenance.lock_ttl_seconds):
        summary = train_gate_index_promote(ws, tasks.TaskSteps(s), collection, full=full, reason=reason).to_dict()
        tasks.publish_summary(collection, summary, kind="retrain")
    return summary


@flow(name="maintenance", log_prints=True, flow_run_name=run_name(_maintenance_name, "maintenance"))
def maintenance_flow(collection: str, files: list[str] | None = None, retrain_on: str | None = None,
                     html_report: bool = False, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One maintenance cycle for ``collection`` (see :mod:`maintenance.cycle`)."""
    s = resolve_settings(settings)
    with collection_run(collection):
        summary = run_maintenance(workspace(s), tasks.TaskSteps(s), collection, files or [], retrain_on=retrain_on,
                                  html_report=html_report).to_dict()
        tasks.publish_summary(collection, summary)
    return summary
