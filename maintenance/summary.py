"""The typed contract of one maintenance run: what ``steward run --json``, the Prefect artifact, the
demo and the API read, in one JSON shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from monitoring.summary import DriftSummary

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class IngestedBatch:
    source: str
    batch_seq: int | None
    rows: int
    quarantined: int
    skipped_duplicate: bool


@dataclass(frozen=True)
class BatchQuality:
    batch_seq: int
    passed: bool
    summary: str  # what failed, in words (or how many checks passed)
    excluded: bool  # taken out of training because it failed
    notice: str | None = None  # the data_quality alert and event


@dataclass(frozen=True)
class CandidateOutcome:
    model_version: int
    status: str  # the version's status after the run: candidate, rejected or production
    accepted: bool  # by the gate
    reasons: tuple[str, ...]
    map_at_r: dict[str, float | None]  # overall / old / new classes, on the held-out items
    resumed: bool = False  # registered by an earlier, interrupted run and picked up
    suspects_flagged: int | None = None  # new items whose label disagrees with their neighbours (None: not checked)
    suspects_downweighted: int = 0  # of those, how many trained with a smaller weight (TrainConfig.suspect_weight)
    group_gap: float | None = None  # best minus worst group MAP@R (evaluation.group_column), when groups are named


@dataclass(frozen=True)
class IndexOutcome:
    id: int
    factory: str
    num_vectors: int
    recall_at_10: float | None
    latency_p50_ms: float | None
    resumed: bool = False


@dataclass(frozen=True)
class MaintenanceSummary:
    collection: str
    outcome: str  # one sentence: what happened
    ingested: tuple[IngestedBatch, ...] = ()
    quality: tuple[BatchQuality, ...] = ()  # data-quality verdicts of the batches this run checked
    latest_batch: int | None = None
    drift: DriftSummary | None = None
    retrain_reason: str | None = None
    candidate: CandidateOutcome | None = None
    index: IndexOutcome | None = None
    production: dict[str, Any] | None = None  # model_version, index_version, pinned after the run
    failed_runs: tuple[int, ...] = ()  # training runs a crash left "running", marked failed by this run
    alerts_delivered: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        """(item, value) lines a person reads: the terminal, the Prefect artifact, the dashboard."""
        drift, cand, index, prod = self.drift, self.candidate, self.index, self.production
        p_values = ", ".join(f"{k}={_fmt(v)}" for k, v in drift.p_values.items()) if drift else ""
        return [
            ("batches ingested", ", ".join(str(b.batch_seq) for b in self.ingested) or "—"),
            ("data quality", "; ".join(f"batch {q.batch_seq}: {'ok' if q.passed else q.summary}"
                                       + (" (excluded)" if q.excluded else "") for q in self.quality) or "—"),
            ("latest batch", _fmt(self.latest_batch)),
            ("drift", ("yes" if drift.drifted else "no") + (" (reused check)" if drift.reused else "")
             if drift else "not checked"),
            ("drift p-values", p_values or "—"),
            ("retrain", self.retrain_reason or "—"),
            ("candidate", f"v{cand.model_version} {cand.status}" if cand else "—"),
            ("gate reasons", "; ".join(cand.reasons) if cand and cand.reasons else "—"),
            ("suspect labels", (f"{cand.suspects_flagged} flagged, {cand.suspects_downweighted} down-weighted"
                                if cand and cand.suspects_flagged is not None else "—")),
            ("index", f"#{index.id} {index.factory} recall@10={_fmt(index.recall_at_10)} "
                      f"p50={_fmt(index.latency_p50_ms)} ms" if index else "—"),
            ("production now", (f"model v{prod['model_version']} + index {prod['index_version']}"
                                + (" (pinned)" if prod.get("pinned") else "")) if prod else "none"),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "collection": self.collection, "outcome": self.outcome,
            "ingested": [asdict(b) for b in self.ingested], "quality": [asdict(q) for q in self.quality],
            "latest_batch": self.latest_batch,
            "drift": None if self.drift is None else self.drift.to_dict(),
            "retrain_reason": self.retrain_reason,
            "candidate": None if self.candidate is None else {**asdict(self.candidate),
                                                              "reasons": list(self.candidate.reasons)},
            "index": None if self.index is None else asdict(self.index),
            "production": self.production, "failed_runs": list(self.failed_runs),
            "alerts_delivered": self.alerts_delivered, **self.extra,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MaintenanceSummary:
        known = {f for f in cls.__dataclass_fields__} | {"schema_version"}
        cand = d.get("candidate")
        return cls(
            collection=d["collection"], outcome=d.get("outcome", ""),
            ingested=tuple(IngestedBatch(**b) for b in d.get("ingested") or ()),
            quality=tuple(BatchQuality(**q) for q in d.get("quality") or ()),
            latest_batch=d.get("latest_batch"),
            drift=DriftSummary.from_dict(d["drift"]) if d.get("drift") else None,
            retrain_reason=d.get("retrain_reason"),
            candidate=None if not cand else CandidateOutcome(**{**cand, "reasons": tuple(cand.get("reasons") or ())}),
            index=IndexOutcome(**d["index"]) if d.get("index") else None,
            production=d.get("production"), failed_runs=tuple(d.get("failed_runs") or ()),
            alerts_delivered=int(d.get("alerts_delivered") or 0),
            extra={k: v for k, v in d.items() if k not in known},
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "—" if value is None else str(value)
