"""What an evaluation says, as plain data: the typed contract stored with every model version.

Kept apart from :mod:`embedding.evaluation` (which computes it with pytorch-metric-learning and
torch) so that reading a version's metrics (status, model lists, the dashboard, the gate) imports
neither.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class QueryScores:
    """Per-query retrieval scores on one evaluation set (leave-one-out): what a paired comparison of
    two models on the same items resamples. NaN where a query's class has no other item."""

    labels: np.ndarray  # str (n,)
    map_at_r: np.ndarray  # float (n,)
    precision_at_1: np.ndarray  # float (n,)
    groups: np.ndarray | None = None  # str (n,): each query's group, when the collection names a group column


SCHEMA_VERSION = 1


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


@dataclass(frozen=True)
class RetrievalMetrics:
    precision_at_1: float
    r_precision: float
    map_at_r: float
    recall_at_k: dict[int, float]
    nmi: float | None
    ami: float | None
    num_queries: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recall_at_k"] = {str(k): v for k, v in self.recall_at_k.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrievalMetrics:
        """Inverse of :meth:`to_dict`; a value stored as null (NaN) or left out reads back as NaN."""
        return cls(
            precision_at_1=_num(d.get("precision_at_1")), r_precision=_num(d.get("r_precision")),
            map_at_r=_num(d.get("map_at_r")),
            recall_at_k={int(k): _num(v) for k, v in (d.get("recall_at_k") or {}).items()},
            nmi=d.get("nmi"), ami=d.get("ami"), num_queries=int(d.get("num_queries", 0)),
        )


@dataclass(frozen=True)
class ClassMetrics:
    map_at_r: float
    precision_at_1: float


@dataclass(frozen=True)
class GroupMetrics:
    """One group's queries (searching the whole evaluation set): their mean AP@R and P@1."""

    map_at_r: float
    precision_at_1: float
    items: int  # the group's evaluation items (queries whose class has another item count in the means)


def group_metrics(scores: QueryScores, groups: np.ndarray) -> dict[str, GroupMetrics]:
    """Per group: the mean of its queries' AP@R and P@1 (NaN where none of its queries has a
    same-class item). Each query searched the whole set, so a group faces every other group."""
    groups = np.asarray(groups).astype(str)
    out = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        ap, p1 = scores.map_at_r[m], scores.precision_at_1[m]
        ok = ~np.isnan(ap)
        out[g] = GroupMetrics(float(ap[ok].mean()) if ok.any() else math.nan,
                              float(p1[ok].mean()) if ok.any() else math.nan, int(m.sum()))
    return out


def largest_gap(per_group: Mapping[str, GroupMetrics]) -> float | None:
    """Best minus worst group MAP@R; None with fewer than two measured groups."""
    values = [m.map_at_r for m in per_group.values() if not math.isnan(m.map_at_r)]
    return float(max(values) - min(values)) if len(values) >= 2 else None


@dataclass(frozen=True)
class EvaluationReport:
    """One model evaluated on one labelled held-out set: overall, old/new classes, and per class.

    "old" and "new" are present when the classes of the previous version were given: queries of
    those classes search the whole set, so old classes still face the new ones.
    """

    num_items: int
    num_classes: int
    overall: RetrievalMetrics
    old: RetrievalMetrics | None = None
    new: RetrievalMetrics | None = None
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    old_classes: tuple[str, ...] = ()  # the classes the previous version knew (what "old" means here)
    # Fairness: per value of the collection's group column (``evaluation.group_column``), when named.
    per_group: dict[str, GroupMetrics] = field(default_factory=dict)
    group_column: str | None = None
    # Not part of the JSON shape (it is stored as an artifact when kept): per-query scores.
    queries: QueryScores | None = field(default=None, compare=False, repr=False)

    def map_at_r(self, part: str = "overall") -> float | None:
        """MAP@R of ``part`` ("overall", "old" or "new"); None when it was not measured."""
        metrics = getattr(self, part)
        return None if metrics is None or math.isnan(metrics.map_at_r) else metrics.map_at_r

    @property
    def group_gap(self) -> float | None:
        """The largest MAP@R gap between two groups (None without groups)."""
        return largest_gap(self.per_group)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "num_items": self.num_items, "num_classes": self.num_classes,
            "overall": self.overall.to_dict(),
            "old": None if self.old is None else self.old.to_dict(),
            "new": None if self.new is None else self.new.to_dict(),
            "per_class": {c: asdict(m) for c, m in self.per_class.items()},
            "old_classes": list(self.old_classes),
            "group_column": self.group_column,
            "per_group": {g: asdict(m) for g, m in self.per_group.items()},
            "group_gap": self.group_gap,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationReport:
        def part(name: str) -> RetrievalMetrics | None:
            return RetrievalMetrics.from_dict(d[name]) if d.get(name) else None

        return cls(
            num_items=int(d.get("num_items", 0)), num_classes=int(d.get("num_classes", 0)),
            overall=part("overall") or RetrievalMetrics.from_dict({}), old=part("old"), new=part("new"),
            per_class={str(c): ClassMetrics(_num(v.get("map_at_r")), _num(v.get("precision_at_1")))
                       for c, v in (d.get("per_class") or {}).items()},
            old_classes=tuple(str(c) for c in d.get("old_classes") or ()),
            per_group={str(g): GroupMetrics(_num(v.get("map_at_r")), _num(v.get("precision_at_1")),
                                            int(v.get("items") or 0))
                       for g, v in (d.get("per_group") or {}).items()},
            group_column=d.get("group_column"),
        )
