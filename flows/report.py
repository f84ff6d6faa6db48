"""Pure formatting of a maintenance run's summary for Prefect artifacts and the terminal."""

from __future__ import annotations

import re
from typing import Any


def artifact_key(collection: str) -> str:
    # Prefect artifact keys allow lowercase letters, digits and dashes only.
    return "maintenance-" + (re.sub(r"[^a-z0-9-]+", "-", collection.lower()).strip("-") or "collection")


def drift_outcome(report: Any, **extra: Any) -> dict[str, Any]:
    """The flow's view of a stored drift report (fresh or reused): decision and p-value per detector."""
    detectors = (report.summary or {}).get("detectors", {})
    return {
        "drifted": report.drifted, "report_id": report.id, "batch_seq": report.batch_seq,
        "model_version": report.model_version,
        "p_values": {name: d.get("p_value") for name, d in detectors.items()},
        **extra,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "—" if value is None else str(value)


def summary_table(summary: dict[str, Any]) -> list[dict[str, str]]:
    drift = summary.get("drift") or {}
    candidate = summary.get("candidate") or {}
    index = summary.get("index") or {}
    production = summary.get("production") or {}
    return [
        {"item": "batches ingested", "value": _fmt(", ".join(str(b.get("batch_seq")) for b in summary.get("ingested", [])) or None)},
        {"item": "latest batch", "value": _fmt(summary.get("latest_batch"))},
        {"item": "drift", "value": _fmt(drift.get("drifted")) if drift else "not checked"},
        {"item": "drift p-values", "value": ", ".join(f"{k}={_fmt(v)}" for k, v in (drift.get("p_values") or {}).items()) or "—"},
        {"item": "retrain", "value": summary.get("retrain_reason", "—")},
        {"item": "candidate", "value": f"v{candidate['model_version']} {candidate['status']}" if candidate else "—"},
        {"item": "gate reasons", "value": "; ".join(candidate.get("reasons", [])) or "—"},
        {"item": "index", "value": (f"#{index['id']} {index['factory']} recall@10={_fmt(index['metrics'].get('recall_at_10'))} "
                                    f"p50={_fmt(index['metrics'].get('latency_p50_ms'))} ms") if index else "—"},
        {"item": "production now", "value": (f"model v{production['model_version']} + index {production['index_version']}"
                                             if production else "none")},
    ]


def summary_markdown(summary: dict[str, Any]) -> str:
    rows = summary_table(summary)
    lines = [f"# Maintenance of `{summary.get('collection')}`", "", f"Outcome: **{summary.get('outcome', '?')}**", "",
             "| | |", "|---|---|"]
    lines += [f"| {r['item']} | {r['value']} |" for r in rows]
    return "\n".join(lines) + "\n"
