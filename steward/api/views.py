"""What /versions, /status and the dashboard show: registry state turned into plain values.

Everything is read through the typed contracts (``ModelReport`` for a model's metrics,
``DriftSummary`` for a drift check, ``CollectionStatus`` for the state of a collection,
``AlertRecord`` for an alert and what answered it), so no view guesses keys. The pure pieces live in
:mod:`steward.api.model_view`, :mod:`steward.api.drift_view` and :mod:`steward.api.gallery_map`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from embedding.report import ModelReport
from monitoring.alerts import alert_history, prefect_ui_url
from monitoring.open_alerts import open_alerts
from monitoring.status import collection_status
from steward.api.drift_view import drift_series, drift_view
from steward.api.model_view import (
    INDEX_METRICS,
    MODEL_METRICS,
    compare,
    group_rows,
    index_row,
    model_numbers,
    model_row,
    per_class,
)
from steward.api.serving import ServingState
from storage.serialization import iso_utc

# (key, column heading) pairs, kept for callers of the earlier API.
MODEL_COLUMNS: tuple[tuple[str, str], ...] = tuple((m.key, m.heading) for m in MODEL_METRICS)
INDEX_COLUMNS: tuple[tuple[str, str], ...] = tuple((m.key, m.heading) for m in INDEX_METRICS)
PER_CLASS_VERSIONS = 4  # versions side by side in the dashboard's per-class table
FLOW_RUN_KEYS = ("prefect_flow_run_id", "flow_run_id")  # where a training run's details name its Prefect run


def _iso(ts: datetime | None) -> str | None:
    return iso_utc(ts)


def _entity(obj: Any) -> dict[str, Any]:
    from steward.shapes import alias_change

    return alias_change(obj)


def versions_view(workspace: Any, state: ServingState, collection: str) -> dict[str, Any]:
    target = workspace.production.target(collection)
    serving = state.current(collection)
    return {
        "collection": collection,
        "production": None if target is None else {"model_version": target.model_version,
                                                   "index_version": target.index_version,
                                                   "since": _iso(target.updated_at)},
        "serving": None if serving is None else serving.describe(),
        "history": [_entity(c) for c in workspace.production.history(collection)],
    }


def status_view(workspace: Any, state: ServingState, collection: str) -> dict[str, Any]:
    """The collection's status (as ``steward status --json`` prints it) plus what this service serves."""
    status = collection_status(workspace, collection)
    failure = state.failures.get(collection)
    serving = state.current(collection)
    prod = status.production
    in_step = (prod is not None and serving is not None and serving.model_version == prod["model_version"]
               and (prod["index_version"] is None or serving.index_version == prod["index_version"]))
    return {
        **status.to_dict(),
        "serving": None if serving is None else serving.describe(),
        "serving_matches_production": in_step,
        "last_load_failure": None if failure is None else failure.describe(),
    }


@dataclass(frozen=True)
class AlertRow:
    id: int
    kind: str
    title: str  # the message's first line
    message: str
    raised_at: datetime
    open: bool
    answered: str  # in words: which production change answered it
    delivery: str | None  # None when no webhook is configured (nothing to deliver to)
    drift_report_id: int | None


def alert_rows(records: list[Any]) -> list[AlertRow]:
    """Rows of the alert history (``monitoring.alerts.AlertRecord``), newest first."""
    rows = []
    for r in records:
        a, change = r.alert, r.answered_by
        answered = "" if change is None else (
            f"{'rolled back' if change.kind == 'rollback' else 'promoted'} to v{change.to_model} by {change.actor} "
            f"at {change.at:%Y-%m-%d %H:%M}")
        delivery = None if r.undelivered is None else (
            f"not delivered ({a.attempts} attempts){': ' + a.last_error if a.last_error else ''}" if r.undelivered
            else f"delivered {a.delivered_at:%Y-%m-%d %H:%M}")
        rows.append(AlertRow(a.id, a.kind, (a.message or "").splitlines()[0] if a.message else "", a.message or "",
                             a.created_at, r.open, answered, delivery, a.drift_report_id))
    return rows


@dataclass(frozen=True)
class TrainingRunRow:
    id: int
    kind: str
    status: str
    model_version: int | None
    batches: str
    started_at: datetime
    seconds: float | None
    error: str
    prefect_url: str | None  # the Prefect UI's page of the flow run that trained it, when recorded


def training_rows(runs: list[Any], ui: str | None, limit: int = 10) -> list[TrainingRunRow]:
    out = []
    for r in sorted(runs, key=lambda r: r.id, reverse=True)[:limit]:
        details = r.details or {}
        run_id = next((str(details[k]) for k in FLOW_RUN_KEYS if details.get(k)), None)
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        batches = list(r.batches or [])
        shown = (f"{batches[0]}–{batches[-1]}" if len(batches) > 2 else ", ".join(map(str, batches)))
        out.append(TrainingRunRow(r.id, r.kind, r.status, r.model_version, shown, r.started_at, seconds,
                                  str(details.get("error") or ""),
                                  f"{ui}/runs/flow-run/{run_id}" if ui and run_id else None))
    return out


def per_class_view(reports: Mapping[int, ModelReport], production_version: int | None,
                   versions: int = PER_CLASS_VERSIONS) -> dict[str, Any]:
    """Per-class MAP@R of the newest ``versions`` evaluated versions (and production's, always)."""
    evaluated = [v for v in sorted(reports) if reports[v].evaluation is not None]
    shown = evaluated[-versions:]
    if production_version in evaluated and production_version not in shown:
        shown = [production_version, *shown[1:]]
    return {"versions": shown, "rows": per_class([reports[v] for v in shown]) if shown else []}


def dashboard_view(workspace: Any, state: ServingState, collection: str, *, alpha: float) -> dict[str, Any]:
    """Everything the dashboard template shows for one collection."""
    registry = workspace.registry
    target = workspace.production.target(collection)
    models = sorted(registry.models.list_models(collection), key=lambda m: m.version, reverse=True)
    # each stored report parsed once: the model rows, the per-group rows and the per-class table read it
    parsed = {m.version: ModelReport.from_dict(m.metrics or {}) for m in models}
    indexes = sorted(registry.models.list_indexes(collection), key=lambda i: i.id, reverse=True)
    reports = registry.monitoring.list_drift_reports(collection, limit=200)
    alerts = registry.monitoring.list_alerts(collection)
    ui = prefect_ui_url()
    return {
        "name": collection,
        "production": target,
        "serving": state.current(collection),
        "failure": state.failures.get(collection),
        "history": sorted(workspace.production.history(collection), key=lambda c: c.id, reverse=True)[:100],
        "models": [(m, model_numbers(parsed[m.version])) for m in models],
        "model_metrics": MODEL_METRICS,
        "indexes": [(i, index_row(i.metrics)) for i in indexes],
        "index_metrics": INDEX_METRICS,
        "per_class": per_class_view(parsed, target.model_version if target else None),
        "groups": [(v, rows) for v, rows in ((m.version, group_rows(parsed[m.version]))
                                             for m in models[:PER_CLASS_VERSIONS]) if rows],
        "drift": drift_view(reports, alpha=alpha),
        "open_alerts": open_alerts(alerts, target.updated_at if target else None),
        "alerts": alert_rows(alert_history(workspace, collection, limit=50)),
        "webhook": bool(workspace.settings.webhook_url),
        "training_runs": training_rows(registry.runs.list_training_runs(collection), ui),
        "prefect_ui": ui,
    }


def compare_view(workspace: Any, collection: str, a: int, b: int) -> dict[str, Any]:
    """Version ``b`` against version ``a``: headline numbers, per class, gate reasons, training, index."""
    registry = workspace.registry.models
    ma, mb = registry.get_model(collection, a), registry.get_model(collection, b)  # NotFoundError -> 404

    def newest_index(v: int) -> dict[str, Any]:
        indexes = registry.list_indexes(collection, v)
        return max(indexes, key=lambda i: i.id).metrics if indexes else {}

    return {"name": collection, "comparison": compare(ma, mb, newest_index(a), newest_index(b)),
            "versions": [m.version for m in sorted(registry.list_models(collection), key=lambda m: m.version)]}


__all__ = ["INDEX_COLUMNS", "MODEL_COLUMNS", "alert_rows", "compare_view", "dashboard_view", "drift_series",
           "index_row", "model_numbers", "model_row", "open_alerts", "status_view", "training_rows",
           "versions_view"]
