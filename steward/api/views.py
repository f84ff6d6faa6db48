"""What /versions, /status and the dashboard show: registry state turned into plain dicts.

Everything is read through the typed contracts (``ModelReport`` for a model's metrics,
``DriftSummary`` for a drift check, ``CollectionStatus`` for the state of a collection), so no
view guesses keys. The pure helpers are separate from the functions that read the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from embedding.report import ModelReport
from monitoring.open_alerts import open_alerts
from monitoring.status import collection_status
from monitoring.summary import DriftSummary
from steward.api.charts import line_chart_svg
from steward.api.serving import ServingState
from storage.serialization import iso_utc

# (key, column heading) of the model and index tables.
MODEL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("map_at_r_all", "MAP@R all"), ("map_at_r_old", "MAP@R old"), ("map_at_r_new", "MAP@R new"),
    ("p_at_1_all", "P@1 all"), ("forgetting_max", "forgetting max"), ("forgetting_mean", "forgetting mean"),
    ("worst_group_map_at_r", "worst group MAP@R"), ("group_gap", "group gap"),
)
INDEX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("recall_at_10", "recall@10"), ("latency_p50_ms", "p50 ms"), ("latency_p99_ms", "p99 ms"),
    ("build_seconds", "build s"),
)


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
        return float(v)
    return None


def model_row(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The model table's numbers for one version's stored metrics."""
    report = ModelReport.from_dict(metrics or {})
    head = report.headline()
    ev = report.evaluation
    forgetting = [v for v in report.forgetting.values() if _number(v) is not None]
    groups = [m.map_at_r for m in (ev.per_group.values() if ev is not None else ()) if _number(m.map_at_r) is not None]
    return {
        "map_at_r_all": _number(head["overall"]), "map_at_r_old": _number(head["old"]),
        "map_at_r_new": _number(head["new"]),
        "p_at_1_all": None if ev is None else _number(ev.overall.precision_at_1),
        "forgetting_max": max(forgetting) if forgetting else None,
        "forgetting_mean": sum(forgetting) / len(forgetting) if forgetting else None,
        "worst_group_map_at_r": min(groups) if groups else None,
        "group_gap": None if ev is None else _number(ev.group_gap),
    }


def group_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One version's per-group numbers (``evaluation.group_column``), worst group first, with
    production's on the same items beside them: what ``partials/groups.html`` renders."""
    report = ModelReport.from_dict(metrics or {})
    ev, base = report.evaluation, report.baselines.get("production")
    if ev is None:
        return []
    rows = []
    for g, m in ev.per_group.items():
        was = base.per_group.get(g) if base is not None else None
        rows.append({"group": g, "column": ev.group_column, "items": m.items, "map_at_r": _number(m.map_at_r),
                     "precision_at_1": _number(m.precision_at_1),
                     "production_map_at_r": None if was is None else _number(was.map_at_r)})
    return sorted(rows, key=lambda r: (r["map_at_r"] is None, r["map_at_r"] or 0.0))


def index_row(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    return {key: _number((metrics or {}).get(key)) for key, _ in INDEX_COLUMNS}


def drift_series(reports: Sequence[Any]) -> tuple[list[str], dict[str, list[float | None]], list[bool]]:
    """Oldest-first x labels, p-value per detector (plus the combined one), and which checks found drift."""
    ordered = sorted(reports, key=lambda r: (r.created_at, r.id))
    labels = [f"b{r.batch_seq}" if r.batch_seq is not None else f"#{r.id}" for r in ordered]
    per_report = []
    for r in ordered:
        summary = DriftSummary.from_dict({**(r.summary or {}), "collection": ""})
        values = {name: _number(d.p_value) for name, d in summary.detectors.items()}
        if summary.detectors:
            values["combined"] = _number(summary.decision.combined_p_value)
        per_report.append(values)
    names: list[str] = []
    for values in per_report:
        names += [n for n, p in values.items() if p is not None and n not in names]
    series = {n: [values.get(n) for values in per_report] for n in names}
    return labels, series, [bool(r.drifted) for r in ordered]


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


def dashboard_view(workspace: Any, state: ServingState, collection: str, *, alpha: float) -> dict[str, Any]:
    """Everything the dashboard template shows for one collection."""
    registry = workspace.registry
    target = workspace.production.target(collection)
    models = sorted(registry.models.list_models(collection), key=lambda m: m.version, reverse=True)
    indexes = sorted(registry.models.list_indexes(collection), key=lambda i: i.id, reverse=True)
    reports = registry.monitoring.list_drift_reports(collection, limit=200)
    alerts = registry.monitoring.list_alerts(collection)
    labels, series, marked = drift_series(reports)
    report_alpha = next((r.alpha for r in reports if _number(r.alpha) is not None), alpha)
    return {
        "name": collection,
        "production": target,
        "serving": state.current(collection),
        "failure": state.failures.get(collection),
        "history": sorted(workspace.production.history(collection), key=lambda c: c.id, reverse=True)[:100],
        "models": [(m, model_row(m.metrics)) for m in models],
        "model_cols": MODEL_COLUMNS,
        "indexes": [(i, index_row(i.metrics)) for i in indexes],
        "index_cols": INDEX_COLUMNS,
        "drift_chart": line_chart_svg(
            series, labels, title="drift p-values per check (log scale; shaded: drift found)",
            threshold=report_alpha, threshold_label=f"alpha {report_alpha:g}", marked=marked,
        ),
        "reports": sorted(reports, key=lambda r: (r.created_at, r.id), reverse=True)[:50],
        "open_alerts": open_alerts(alerts, target.updated_at if target else None),
    }
