"""Model versions as the dashboard shows them: headline numbers, per-class quality, a comparison of two.

Everything is read through :class:`embedding.report.ModelReport` (never by key guessing), and every
number carries a readable heading and its unit. Pure functions: the route hands in registry entities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from embedding.gate import GateCheck
from embedding.report import ModelReport


@dataclass(frozen=True)
class Metric:
    key: str
    heading: str  # what a table column says
    unit: str  # what the number is measured in
    higher_is_better: bool | None  # None: neither (a count, a time that is not a goal)
    fmt: str = ".3f"

    def format(self, v: float | None) -> str:
        return "" if v is None else format(v, self.fmt)


# The model table's columns: the headline numbers of a ModelReport.
MODEL_METRICS: tuple[Metric, ...] = (
    Metric("map_at_r_all", "MAP@R, all classes", "0–1", True),
    Metric("map_at_r_old", "MAP@R, old classes", "0–1", True),
    Metric("map_at_r_new", "MAP@R, new classes", "0–1", True),
    Metric("p_at_1_all", "precision@1", "0–1", True),
    Metric("forgetting_max", "forgetting, worst class", "MAP@R drop", False),
    Metric("forgetting_mean", "forgetting, mean", "MAP@R drop", False),
    Metric("worst_group_map_at_r", "MAP@R, worst group", "0–1", True),
    Metric("group_gap", "group gap (best − worst group)", "MAP@R", False),
)
# Index metrics are the index tuner's flat dict (embedding.index.tune.TuneResult.metrics).
INDEX_METRICS: tuple[Metric, ...] = (
    Metric("recall_at_10", "recall@10", "0–1", True),
    Metric("latency_p50_ms", "latency p50", "ms", False, ".2f"),
    Metric("latency_p99_ms", "latency p99", "ms", False, ".2f"),
    Metric("build_seconds", "build time", "s", False, ".1f"),
)
TRAINING_FIELDS: tuple[tuple[str, str], ...] = (
    ("mode", "training mode"), ("epochs_run", "epochs run"), ("best_epoch", "best epoch"),
    ("stopped_early", "stopped early"), ("seconds", "training time (s)"), ("train_items", "items trained on"),
    ("new_items", "new items"), ("rehearsal_items", "rehearsal items (replayed)"),
    ("holdout_items", "held-out items"),
)
# embedding.evaluation.compatibility: cross-model retrieval on one split (BCT's protocol).
COMPATIBILITY_LABELS: dict[str, str] = {
    "new_vs_old_map_at_r": "MAP@R, new model's queries against the old model's gallery",
    "old_vs_old_map_at_r": "MAP@R, old model against itself",
    "new_vs_new_map_at_r": "MAP@R, new model against itself",
}


def number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
        return float(v)
    return None


def model_row(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The headline numbers of one version's stored report, keyed as :data:`MODEL_METRICS`."""
    return model_numbers(ModelReport.from_dict(metrics or {}))


def model_numbers(report: ModelReport) -> dict[str, float | None]:
    head = report.headline()
    ev = report.evaluation
    forgetting = [v for v in report.forgetting.values() if number(v) is not None]
    groups = [m.map_at_r for m in (ev.per_group.values() if ev is not None else ()) if number(m.map_at_r) is not None]
    return {
        "map_at_r_all": number(head["overall"]), "map_at_r_old": number(head["old"]),
        "map_at_r_new": number(head["new"]),
        "p_at_1_all": None if ev is None else number(ev.overall.precision_at_1),
        "forgetting_max": max(forgetting) if forgetting else None,
        "forgetting_mean": sum(forgetting) / len(forgetting) if forgetting else None,
        "worst_group_map_at_r": min(groups) if groups else None,
        "group_gap": None if ev is None else number(ev.group_gap),
    }


def group_rows(report: ModelReport) -> list[dict[str, Any]]:
    """One version's per-group numbers (``evaluation.group_column``), worst group first, with
    production's on the same items beside them: what ``partials/groups.html`` renders."""
    ev, base = report.evaluation, report.baselines.get("production")
    if ev is None:
        return []
    rows = []
    for g, m in ev.per_group.items():
        was = base.per_group.get(g) if base is not None else None
        rows.append({"group": g, "column": ev.group_column, "items": m.items, "map_at_r": number(m.map_at_r),
                     "precision_at_1": number(m.precision_at_1),
                     "production_map_at_r": None if was is None else number(was.map_at_r)})
    return sorted(rows, key=lambda r: (r["map_at_r"] is None, r["map_at_r"] or 0.0))


def index_row(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    return {m.key: number((metrics or {}).get(m.key)) for m in INDEX_METRICS}


@dataclass(frozen=True)
class ClassRow:
    label: str
    map_at_r: tuple[float | None, ...]  # one per version, in the order the versions were given
    precision_at_1: tuple[float | None, ...]
    forgetting: tuple[float | None, ...]  # production - this version, on this (old) class
    new_in: tuple[bool, ...]  # the class was new to this version (not among its parent's classes)

    def delta(self) -> float | None:
        """Last minus first version's MAP@R (the comparison's "b - a")."""
        a, b = self.map_at_r[0], self.map_at_r[-1]
        return None if a is None or b is None else b - a


def per_class(reports: Sequence[ModelReport]) -> list[ClassRow]:
    """Per-class MAP@R, precision@1 and forgetting for each report, one row per class seen by any.

    Sorted by the last report's MAP@R, worst first: the classes a person should look at come first.
    """
    classes: list[str] = []
    for r in reports:
        if r.evaluation is not None:
            classes += [c for c in r.evaluation.per_class if c not in classes]

    def cell(r: ModelReport, c: str, attr: str) -> float | None:
        m = None if r.evaluation is None else r.evaluation.per_class.get(c)
        return None if m is None else number(getattr(m, attr))

    def is_new(r: ModelReport, c: str) -> bool:
        ev = r.evaluation
        return ev is not None and bool(ev.old_classes) and c in ev.per_class and c not in ev.old_classes

    rows = [ClassRow(c, tuple(cell(r, c, "map_at_r") for r in reports),
                     tuple(cell(r, c, "precision_at_1") for r in reports),
                     tuple(number(r.forgetting.get(c)) for r in reports), tuple(is_new(r, c) for r in reports))
            for c in classes]
    last = len(reports) - 1
    return sorted(rows, key=lambda row: (row.map_at_r[last] is None, row.map_at_r[last] or 0.0, row.label))


@dataclass(frozen=True)
class MetricDelta:
    metric: Metric
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def verdict(self) -> str:
        """"better", "worse" or "" for b against a, by the metric's direction."""
        d = self.delta
        if d is None or self.metric.higher_is_better is None or abs(d) < 1e-12:
            return ""
        return "better" if (d > 0) == self.metric.higher_is_better else "worse"


@dataclass(frozen=True)
class GateView:
    accepted: bool | None  # None: no gate decision stored (the first model)
    reasons: tuple[str, ...]
    checks: tuple[GateCheck, ...]


@dataclass(frozen=True)
class Comparison:
    a: Any  # storage.registry.entities.ModelVersion
    b: Any
    headline: tuple[MetricDelta, ...]
    classes: tuple[ClassRow, ...]
    gates: tuple[GateView, GateView]
    training: tuple[tuple[str, Any, Any], ...]  # (label, a, b)
    compatibility: tuple[tuple[str, float | None, float | None], ...]
    index: tuple[MetricDelta, ...]


def gate_view(report: ModelReport, metrics: Mapping[str, Any]) -> GateView:
    stored = "gate" in (metrics or {})
    return GateView(report.gate.accepted if stored else None, report.gate.reasons, report.gate.checks)


def compare(a: Any, b: Any, index_a: Mapping[str, Any] | None = None,
            index_b: Mapping[str, Any] | None = None) -> Comparison:
    """Version ``b`` against version ``a`` (registry ``ModelVersion`` entities), with their newest indexes'
    metrics when given."""
    ra, rb = ModelReport.from_dict(a.metrics or {}), ModelReport.from_dict(b.metrics or {})
    na, nb = model_numbers(ra), model_numbers(rb)
    ia, ib = index_row(index_a or {}), index_row(index_b or {})
    ta, tb = ra.training, rb.training
    compat_keys = [k for k in COMPATIBILITY_LABELS if k in ra.compatibility or k in rb.compatibility]
    return Comparison(
        a=a, b=b,
        headline=tuple(MetricDelta(m, na[m.key], nb[m.key]) for m in MODEL_METRICS),
        classes=tuple(per_class([ra, rb])),
        gates=(gate_view(ra, a.metrics), gate_view(rb, b.metrics)),
        training=tuple((label, getattr(ta, f), getattr(tb, f)) for f, label in TRAINING_FIELDS),
        compatibility=tuple((COMPATIBILITY_LABELS[k], number(ra.compatibility.get(k)), number(rb.compatibility.get(k)))
                            for k in compat_keys),
        index=tuple(MetricDelta(m, ia[m.key], ib[m.key]) for m in INDEX_METRICS),
    )
