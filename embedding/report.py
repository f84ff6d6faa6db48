"""What a registered model version says about itself: the typed contract of ``ModelVersion.metrics``.

The retrain service writes a :class:`ModelReport`; the CLI, the flows, the API and the dashboard
read it back with :meth:`ModelReport.from_dict` instead of guessing keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from embedding.gate import GateDecision
from embedding.metrics import EvaluationReport

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TrainingSummary:
    mode: str  # "full" or "incremental"
    epochs_run: int = 0
    best_epoch: int = 0
    best_val_map_at_r: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    train_items: int = 0
    new_items: int = 0
    rehearsal_items: int = 0
    holdout_items: int = 0
    history: tuple[dict[str, float], ...] = ()
    suspects_flagged: int | None = None  # new items flagged as suspect labels (None: not checked)
    suspect_weight: float = 1.0  # the weight their loss terms got (1: not down-weighted)

    @property
    def suspects_downweighted(self) -> int:
        return (self.suspects_flagged or 0) if self.suspect_weight < 1.0 else 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingSummary:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in d.items() if k in known}
        values["history"] = tuple(values.get("history") or ())
        return cls(**{"mode": "unknown", **values})


@dataclass(frozen=True)
class ModelReport:
    """A model version's evaluation, its baselines on the same items, the gate's decision and how it
    was trained.

    ``baselines``: other embeddings scored on the same held-out items, by name ("production": the
    model it would replace).
    """

    evaluation: EvaluationReport | None
    gate: GateDecision
    training: TrainingSummary
    baselines: dict[str, EvaluationReport] = field(default_factory=dict)
    forgetting: dict[str, float] = field(default_factory=dict)  # per old class: production - candidate MAP@R
    compatibility: dict[str, Any] = field(default_factory=dict)  # new-vs-old retrieval (see evaluation.compatibility)
    evaluation_set: dict[str, int] = field(default_factory=dict)  # revision, items, classes it was scored on

    def headline(self) -> dict[str, float | None]:
        """MAP@R overall / old / new classes: the numbers tables show."""
        ev = self.evaluation
        return {part: None if ev is None else ev.map_at_r(part) for part in ("overall", "old", "new")}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "evaluation": None if self.evaluation is None else self.evaluation.to_dict(),
            "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
            "forgetting": dict(self.forgetting),
            "compatibility": dict(self.compatibility),
            "evaluation_set": dict(self.evaluation_set),
            "gate": self.gate.to_dict(),
            "training": {**asdict(self.training), "history": list(self.training.history)},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelReport:
        if "schema_version" not in d:  # written before the contract existed: a flat evaluation dict
            return cls._from_legacy(d)
        return cls(
            evaluation=EvaluationReport.from_dict(d["evaluation"]) if d.get("evaluation") else None,
            gate=GateDecision.from_dict(d.get("gate") or {}),
            training=TrainingSummary.from_dict(d.get("training") or {}),
            baselines={k: EvaluationReport.from_dict(v) for k, v in (d.get("baselines") or {}).items()},
            forgetting=_per_class(d.get("forgetting")),
            compatibility=dict(d.get("compatibility") or {}),
            evaluation_set={k: int(v) for k, v in (d.get("evaluation_set") or {}).items()},
        )

    @classmethod
    def _from_legacy(cls, d: Mapping[str, Any]) -> ModelReport:
        baseline = d.get("production_baseline")
        return cls(
            evaluation=EvaluationReport.from_dict(d) if d.get("overall") else None,
            gate=GateDecision.from_dict(d.get("gate") or {}),
            training=TrainingSummary.from_dict(d.get("training") or {}),
            baselines={"production": EvaluationReport.from_dict(baseline)} if baseline else {},
            forgetting=_per_class(d.get("forgetting")),
            compatibility=dict(d.get("compatibility") or {}),
        )


def _per_class(values: Any) -> dict[str, float]:
    """Per-class numbers, skipping what is not one (NaN stored as null, or an older scalar field)."""
    if not isinstance(values, Mapping):
        return {}
    return {str(k): float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not math.isnan(float(v))}
