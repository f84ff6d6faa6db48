"""What /versions, /status and the dashboard show: registry state turned into plain dicts.

The pure helpers (metric picking, which alerts are open, the drift series) are separate from the
functions that read the registry, so they can be tested on hand-made entities.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from monitoring.open_alerts import open_alerts
from steward.api.charts import line_chart_svg
from steward.api.serving import PRODUCTION, ServingState

# Metric keys worth a column, by what their name contains (training, gate and index metrics are
# written by other modules; matching by name keeps the dashboard working as they add keys).
MODEL_METRIC_PATTERN = re.compile(r"map|forget|precision|recall|r_prec", re.IGNORECASE)
INDEX_METRIC_PATTERN = re.compile(r"recall|latency|(^|_)ms($|_)|qps|build", re.IGNORECASE)
MAX_METRIC_COLUMNS = 8
PER_CLASS_SUMMARISED = ("forgetting",)  # metrics keyed by class, shown as max and mean
HEADLINE_METRICS = tuple(
    re.compile(p)
    for p in (r"^overall\.map", r"^old\.map", r"^new\.map", r"forget", r"map", r"recall_at_10", r"recall")
)


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts as dotted keys (``{"map_at_r": {"old": .8}}`` -> ``map_at_r.old``)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if key in PER_CLASS_SUMMARISED and isinstance(value, Mapping):
            # one column per class would swamp the table: show the worst and the mean instead
            values = [float(v) for v in value.values() if _scalar(v)]
            if values:
                flat[f"{name}.max"] = max(values)
                flat[f"{name}.mean"] = sum(values) / len(values)
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def pick_metric_columns(
    metric_dicts: Iterable[Mapping[str, Any]], pattern: re.Pattern[str], limit: int = MAX_METRIC_COLUMNS
) -> list[str]:
    """Scalar keys matching ``pattern``: headline names first (MAP@R overall/old/new, forgetting),
    then the most common. Per-class breakdowns and deeper nesting stay off the table."""
    counts: dict[str, int] = {}
    for metrics in metric_dicts:
        for key, value in flatten_metrics(metrics).items():
            if key.count(".") > 1 or "per_class" in key:
                continue
            if _scalar(value) and pattern.search(key):
                counts[key] = counts.get(key, 0) + 1

    def rank(key: str) -> int:
        return next((i for i, p in enumerate(HEADLINE_METRICS) if p.search(key)), len(HEADLINE_METRICS))

    return sorted(counts, key=lambda k: (rank(k), -counts[k], k))[:limit]


def drift_series(reports: Sequence[Any]) -> tuple[list[str], dict[str, list[float | None]], list[bool]]:
    """Oldest-first x labels, p-value per detector, and which checks found drift."""
    ordered = sorted(reports, key=lambda r: (r.created_at, r.id))
    labels = [f"b{r.batch_seq}" if r.batch_seq is not None else f"#{r.id}" for r in ordered]
    def p_values(report: Any) -> dict[str, Any]:
        # monitoring.check stores {"detectors": {name: {"p_value": ...}}, "decision": {"combined_p_value": ...}}
        summary = report.summary or {}
        detectors = summary.get("detectors", summary)
        out = {name: v.get("p_value") for name, v in detectors.items() if isinstance(v, Mapping)}
        combined = (summary.get("decision") or {}).get("combined_p_value")
        if combined is not None:
            out["combined"] = combined
        return out

    per_report = [p_values(r) for r in ordered]
    names: list[str] = []
    for values in per_report:
        for name, p in values.items():
            if _scalar(p) and name not in names:
                names.append(name)
    series: dict[str, list[float | None]] = {n: [] for n in names}
    for values in per_report:
        for n in names:
            p = values.get(n)
            series[n].append(float(p) if _scalar(p) else None)
    return labels, series, [bool(r.drifted) for r in ordered]


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _entity(obj: Any) -> dict[str, Any]:
    out = asdict(obj)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    return out


def versions_view(workspace: Any, state: ServingState, collection: str) -> dict[str, Any]:
    registry = workspace.registry
    alias = registry.get_alias(collection, PRODUCTION)
    serving = state.current(collection)
    return {
        "collection": collection,
        "production": None
        if alias is None
        else {
            "model_version": alias.model_version,
            "index_version": alias.index_version,
            "since": _iso(alias.updated_at),
        },
        "serving": None if serving is None else serving.describe(),
        "history": [_entity(c) for c in registry.alias_history(collection, PRODUCTION)],
    }


def status_view(workspace: Any, state: ServingState, collection: str) -> dict[str, Any]:
    registry = workspace.registry
    alias = registry.get_alias(collection, PRODUCTION)
    reports = registry.list_drift_reports(collection, limit=1)
    alerts = registry.list_alerts(collection)
    failure = state.failures.get(collection)
    serving = state.current(collection)
    in_step = (
        alias is not None
        and serving is not None
        and serving.model_version == alias.model_version
        and (alias.index_version is None or serving.index_version == alias.index_version)
    )
    return {
        "collection": collection,
        "production": None
        if alias is None
        else {"model_version": alias.model_version, "index_version": alias.index_version},
        "serving": None if serving is None else serving.describe(),
        "serving_matches_production": in_step,
        "last_drift_check": _entity(reports[0]) if reports else None,
        "open_alerts": [_entity(a) for a in open_alerts(alerts, alias.updated_at if alias else None)],
        "undelivered_alerts": sum(1 for a in alerts if a.delivered_at is None),
        "last_load_failure": None if failure is None else failure.describe(),
    }


def dashboard_view(workspace: Any, state: ServingState, collection: str, *, alpha: float) -> dict[str, Any]:
    """Everything the dashboard template shows for one collection."""
    registry = workspace.registry
    alias = registry.get_alias(collection, PRODUCTION)
    models = sorted(registry.list_models(collection), key=lambda m: m.version, reverse=True)
    indexes = sorted(registry.list_indexes(collection), key=lambda i: i.id, reverse=True)
    reports = registry.list_drift_reports(collection, limit=200)
    alerts = registry.list_alerts(collection)
    labels, series, marked = drift_series(reports)
    model_cols = pick_metric_columns((m.metrics for m in models), MODEL_METRIC_PATTERN)
    index_cols = pick_metric_columns((i.metrics for i in indexes), INDEX_METRIC_PATTERN)
    report_alpha = next((r.alpha for r in reports if _scalar(r.alpha)), alpha)
    return {
        "name": collection,
        "production": alias,
        "serving": state.current(collection),
        "failure": state.failures.get(collection),
        "history": sorted(registry.alias_history(collection, PRODUCTION), key=lambda c: c.id, reverse=True)[
            :100
        ],
        "models": [(m, flatten_metrics(m.metrics)) for m in models],
        "model_cols": model_cols,
        "indexes": [(i, flatten_metrics(i.metrics)) for i in indexes],
        "index_cols": index_cols,
        "drift_chart": line_chart_svg(
            series,
            labels,
            title="drift p-values per check (log scale; shaded: drift found)",
            threshold=report_alpha,
            threshold_label=f"alpha {report_alpha:g}",
            marked=marked,
        ),
        "reports": sorted(reports, key=lambda r: (r.created_at, r.id), reverse=True)[:50],
        "open_alerts": open_alerts(alerts, alias.updated_at if alias else None),
    }
