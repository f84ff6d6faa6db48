"""The typed contract of a drift check: what ``steward drift --json``, the maintenance run, the API,
the dashboard and the alert all read, in one JSON shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from monitoring.decision import Decision
from monitoring.detectors.base import DetectorResult

SCHEMA_VERSION = 1
NOVEL_SHOWN = 5  # novel item ids a person is shown (the JSON has them all)

_STATUS_MEANING = {
    "drift": "acts: alert and retrain",
    "significant, small": "reported, does not act: significant but no larger than the stream's usual variation",
    "no drift": "nothing significant",
}


@dataclass(frozen=True)
class DriftSummary:
    collection: str
    batch_seq: int
    reference_batches: tuple[int, ...]
    embedding: str  # "model v<N>" or "raw"
    model_version: int | None
    n_reference: int
    n_current: int
    reference_items: str  # which reference items were used, in words
    decision: Decision  # significance and severity: ``decision.status`` is "drift", "significant, small" or "no drift"
    detectors: dict[str, DetectorResult]
    effects: dict[str, float] = field(default_factory=dict)  # per detector, on the scale named by effect_scale
    effect_scale: int | None = None  # the effect definitions' version: a baseline only learns from its own scale
    novel_items: tuple[dict[str, Any], ...] = ()  # rows the novelty detector names, most novel first
    seconds: dict[str, float] = field(default_factory=dict)
    report_id: int | None = None  # the stored drift report's id
    report_artifact: str | None = None  # sha256 of the HTML report, when one was written
    alert_id: int | None = None  # the alert raised by this check (None: no drift, or deduplicated)
    notice: str | None = None  # what alerting did (raised / repeats an open alert; event emitted or not)
    reused: bool = False  # an earlier check of the same batch and model, not run again

    @property
    def drifted(self) -> bool:
        return self.decision.drifted

    @property
    def p_values(self) -> dict[str, float]:
        return {name: d.p_value for name, d in self.detectors.items()}

    def with_record(self, **changes: Any) -> DriftSummary:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "collection": self.collection, "batch_seq": self.batch_seq,
            "reference_batches": list(self.reference_batches), "embedding": self.embedding,
            "model_version": self.model_version, "n_reference": self.n_reference, "n_current": self.n_current,
            "reference_items": self.reference_items, "drifted": self.drifted, "status": self.decision.status,
            "significant": self.decision.significant, "decision": self.decision.to_dict(),
            "detectors": {k: v.to_dict() for k, v in self.detectors.items()}, "effects": dict(self.effects),
            "effect_scale": self.effect_scale, "novel_items": [dict(n) for n in self.novel_items],
            "seconds": dict(self.seconds),
            "report_id": self.report_id, "report_artifact": self.report_artifact, "alert_id": self.alert_id,
            "notice": self.notice, "reused": self.reused,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftSummary:
        return cls(
            collection=str(d.get("collection", "")), batch_seq=int(d.get("batch_seq") or 0),
            reference_batches=tuple(d.get("reference_batches") or ()), embedding=str(d.get("embedding", "")),
            model_version=d.get("model_version"), n_reference=int(d.get("n_reference") or 0),
            n_current=int(d.get("n_current") or 0), reference_items=str(d.get("reference_items", "")),
            decision=Decision.from_dict(d.get("decision") or {"drifted": d.get("drifted", False)}),
            detectors={k: DetectorResult.from_dict(v) for k, v in (d.get("detectors") or {}).items()},
            effects={k: float(v) for k, v in (d.get("effects") or {}).items() if v is not None},
            effect_scale=d.get("effect_scale"), novel_items=tuple(d.get("novel_items") or ()),
            seconds={k: float(v) for k, v in (d.get("seconds") or {}).items() if v is not None},
            report_id=d.get("report_id"), report_artifact=d.get("report_artifact"), alert_id=d.get("alert_id"),
            notice=d.get("notice"), reused=bool(d.get("reused", False)),
        )

    @classmethod
    def from_report(cls, report: Any, **changes: Any) -> DriftSummary:
        """The summary stored with a registry drift report, with the report's own id and artifact."""
        summary = cls.from_dict({**(report.summary or {}), "collection": report.collection})
        return replace(summary, report_id=report.id, report_artifact=report.report_artifact, **changes)


def decision_lines(summary: DriftSummary, *, novel: int = NOVEL_SHOWN) -> list[str]:
    """The decision in words, for the CLI and the alert: the status and what it means, which detectors
    act and which are significant but small (effect against threshold), and a few novel item ids."""
    d = summary.decision
    lines = [f"status: {d.status} — {_STATUS_MEANING.get(d.status, d.status)} (alpha={d.alpha})"]
    small = [n for n in d.flagged if n not in d.acting]
    lines.append("acting: " + (", ".join(_effect(summary, n) for n in d.acting) or "none"))
    if small:
        lines.append("significant, small: " + ", ".join(_effect(summary, n) for n in small))
    items = [n for n in summary.novel_items if n.get("item_id") is not None or n.get("row") is not None]
    if items:
        shown = ", ".join(str(n.get("item_id", f"row {n.get('row')}")) for n in items[:novel])
        more = f" (+{len(items) - novel} more in the JSON)" if len(items) > novel else ""
        lines.append(f"novel items, most novel first: {shown}{more}")
    return lines


def _effect(summary: DriftSummary, name: str) -> str:
    v = summary.decision.verdicts.get(name)
    if v is None:
        return name
    return f"{name} (effect {v.effect:.3g} vs threshold {v.threshold.value:.3g})"
