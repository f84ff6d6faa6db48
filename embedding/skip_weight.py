"""Choosing a ``blend`` head's skip weight (the raw input's share of the served cosine) per version,
from classes the head did not train on (issue 12, "never below the input").

A blend serves ``cos = w * cos(raw inputs) + (1 - w) * cos(head outputs)``. The larger ``w``, the
closer classes the head never saw stay to the raw features, and the less the head helps the classes it
trained on. The weight is chosen on *held-out classes*: classes a head (the previous version, or a
validation fit that left them out) did not train on, scored at every weight of a grid against the raw
features on the same items. :func:`choose_skip_weight` is the pure decision;
:func:`skip_weight_trials` scores the grid on arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import ValidationError

# Weights tried, ascending. 0 is the head alone; the raw features alone (1) is not a blend.
SKIP_WEIGHT_GRID: tuple[float, ...] = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class SkipWeightTrial:
    skip_weight: float
    heldout_map_at_r: float  # the blend at this weight, on the held-out classes' items
    trained_map_at_r: float | None = None  # on items of trained classes, when measured


@dataclass(frozen=True)
class SkipWeightChoice:
    skip_weight: float
    raw_map_at_r: float  # the raw features on the held-out classes' items
    feasible: bool  # some weight kept the held-out classes at or above the raw features
    reason: str
    trials: tuple[SkipWeightTrial, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "trials": [asdict(t) for t in self.trials]}


def choose_skip_weight(trials: Sequence[SkipWeightTrial], raw_map_at_r: float, *,
                       margin: float = 0.0) -> SkipWeightChoice:
    """Among the weights whose held-out-class MAP@R is at least the raw features' (minus ``margin``),
    the one with the best trained-class MAP@R, ties to the larger weight; without trained-class
    scores, the smallest such weight (the most head: trained classes gain as the weight falls). If
    none keeps the held-out classes at the raw features, the largest weight tried (closest to raw)."""
    if not trials:
        raise ValidationError("choosing a skip weight needs at least one scored weight")
    ordered = sorted(trials, key=lambda t: t.skip_weight)
    ok = [t for t in ordered if t.heldout_map_at_r >= raw_map_at_r - margin]
    if not ok:
        best = ordered[-1]
        return SkipWeightChoice(best.skip_weight, raw_map_at_r, False,
                                f"no weight kept held-out classes at the raw features' {raw_map_at_r:.4f}; "
                                f"the largest tried", tuple(ordered))
    scored = [t for t in ok if t.trained_map_at_r is not None]
    if scored:
        best = max(scored, key=lambda t: (t.trained_map_at_r, t.skip_weight))
        reason = "best trained-class MAP@R among weights keeping held-out classes at the raw features"
    else:
        best = ok[0]
        reason = "smallest weight keeping held-out classes at the raw features"
    return SkipWeightChoice(best.skip_weight, raw_map_at_r, True, reason, tuple(ordered))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def blend_embeddings(raw: np.ndarray, head: np.ndarray, skip_weight: float) -> np.ndarray:
    """What a blend head serves, from its raw path (the inputs, or their whitened version) and its
    (normalised) head outputs."""
    return np.concatenate([np.sqrt(skip_weight) * _unit_rows(raw), np.sqrt(1 - skip_weight) * head],
                          axis=1).astype(np.float32)


def skip_weight_trials(raw: np.ndarray, head: np.ndarray, labels: np.ndarray,
                       grid: Sequence[float] = SKIP_WEIGHT_GRID,
                       skip: np.ndarray | None = None) -> tuple[list[SkipWeightTrial], float]:
    """MAP@R of the blend at every weight of ``grid`` on held-out-class items (their raw inputs, head
    outputs and, for a whitened blend, raw-path outputs ``skip``; None: the raw inputs), and the raw
    features' MAP@R on the same items (the bar, whatever the raw path)."""
    from embedding.evaluation import retrieval_metrics

    def score(e: np.ndarray) -> float:
        return retrieval_metrics(e, labels, ks=(1,), clustering=False).map_at_r

    raw_map = score(np.ascontiguousarray(_unit_rows(raw), dtype=np.float32))
    path = raw if skip is None else skip
    return [SkipWeightTrial(float(w), score(blend_embeddings(path, head, w))) for w in grid], raw_map
