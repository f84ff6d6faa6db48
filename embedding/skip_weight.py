"""Choosing a ``blend`` head's skip weight (the raw input's share of the served cosine) per version,
from classes the head did not train on (issue 12, "never below the input").

A blend serves ``cos = w * cos(raw inputs) + (1 - w) * cos(head outputs)``. The larger ``w``, the
closer classes the head never saw stay to the raw features, and the less the head helps the classes it
trained on. The weight is chosen on *held-out classes*: classes a head (the previous version, or a
validation fit that left them out) did not train on, scored at every weight of a grid against the raw
features on the same items. :func:`choose_skip_weight` is the pure decision;
:func:`skip_weight_trials` scores the grid on arrays.

A version's held-out classes are few (two per step on digits), and a point estimate on so few tells
little about the classes still to come: the rule picked weight 0 from two classes that happened to
gain and fell below raw on the next ones. :func:`choose_skip_weight_pooled` (``skip_weight_rule =
"pooled_lcb"``) judges each weight on the per-class gains over raw of the held-out classes of every
version so far, by a lower confidence bound rather than the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import ValidationError

# Weights tried, ascending. 0 is the head alone; the raw features alone (1) is not a blend.
SKIP_WEIGHT_GRID: tuple[float, ...] = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
# pooled_lcb: one-sided level of the lower bound on the mean per-class gain, and its bootstrap draws
POOLED_CONFIDENCE = 0.9
POOLED_SAMPLES = 2000


@dataclass(frozen=True)
class SkipWeightTrial:
    skip_weight: float
    heldout_map_at_r: float  # the blend at this weight, on the held-out classes' items
    trained_map_at_r: float | None = None  # on items of trained classes, when measured
    # per held-out class (sorted by name): the blend's MAP@R minus the raw features' on its items
    heldout_class_gains: tuple[float, ...] = ()


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


def choose_skip_weight_pooled(versions: Sequence[Sequence[SkipWeightTrial]], raw_map_at_r: float, *,
                              confidence: float = POOLED_CONFIDENCE, samples: int = POOLED_SAMPLES,
                              seed: int = 0, min_classes: int = 2,
                              fallback_weight: float | None = None) -> SkipWeightChoice:
    """The smallest weight (the most head) whose lower confidence bound on the mean gain over the raw
    features is >= 0, the mean taken over held-out classes pooled from every version's trials
    (``versions``, oldest first, the current one last) and the bound from a bootstrap over those
    classes (each class counts once, however many items it has: the claim is about classes to come).
    If no weight's bound reaches 0, the largest weight of the current version's grid. With fewer than
    ``min_classes`` pooled classes nothing is decided: ``fallback_weight`` (the weight in force; None:
    the largest of the grid), flagged infeasible. ``raw_map_at_r``: the current version's bar, for the
    record."""
    from embedding.gate import paired_drop  # the shipped bootstrap; a class is one resampled unit here

    if not versions or not versions[-1]:
        raise ValidationError("choosing a skip weight needs the current version's scored weights")
    current = sorted(versions[-1], key=lambda t: t.skip_weight)
    gains: dict[float, list[float]] = {t.skip_weight: [] for t in current}
    for trials in versions:
        for t in trials:
            if t.skip_weight in gains:
                gains[t.skip_weight] += list(t.heldout_class_gains)
    bounds = {}
    for w, g in gains.items():
        if not g:
            raise ValidationError(f"weight {w} has no per-class gains; score trials with skip_weight_trials")
        d = paired_drop(np.asarray(g), np.zeros(len(g)), samples=samples, confidence=confidence,
                        rng=np.random.default_rng(seed))
        bounds[w] = d.low if d.low is not None else d.value
    n = len(gains[current[0].skip_weight])
    if n < min_classes:
        keep = current[-1].skip_weight if fallback_weight is None else fallback_weight
        return SkipWeightChoice(keep, raw_map_at_r, False,
                                f"{n} pooled held-out classes, fewer than {min_classes}: the weight in force",
                                tuple(current))
    ok = [w for w in sorted(bounds) if bounds[w] >= 0]
    if not ok:
        return SkipWeightChoice(current[-1].skip_weight, raw_map_at_r, False,
                                f"no weight's {confidence:.0%} lower bound on the gain over raw reached 0 on {n} "
                                f"pooled classes (best {max(bounds.values()):+.4f}); the largest tried", tuple(current))
    return SkipWeightChoice(ok[0], raw_map_at_r, True,
                            f"smallest weight whose {confidence:.0%} lower bound on the gain over raw, over {n} "
                            f"held-out classes of {len(versions)} version(s), is {bounds[ok[0]]:+.4f} >= 0",
                            tuple(current))


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
    outputs and, for a whitened blend, raw-path outputs ``skip``; None: the raw inputs), with each
    class's gain over the raw features, and the raw features' MAP@R on the same items (the bar,
    whatever the raw path)."""
    from embedding.evaluation import per_class_metrics

    names, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    size = dict(zip(names.tolist(), counts.tolist(), strict=True))

    def score(e: np.ndarray) -> tuple[float, dict[str, float]]:
        # MAP@R is a mean over queries, so the per-class means weighted by class size give it: one
        # nearest-neighbour search per weight instead of two.
        per_class = {c: m.map_at_r for c, m in per_class_metrics(e, labels).items()}
        n = sum(size[c] for c in per_class)
        return (sum(size[c] * v for c, v in per_class.items()) / n if n else float("nan")), per_class

    raw_map, raw_classes = score(np.ascontiguousarray(_unit_rows(raw), dtype=np.float32))
    path = raw if skip is None else skip
    trials = []
    for w in grid:
        blend_map, blend_classes = score(blend_embeddings(path, head, w))
        gains = tuple(blend_classes[c] - raw_classes[c] for c in sorted(raw_classes))
        trials.append(SkipWeightTrial(float(w), blend_map, heldout_class_gains=gains))
    return trials, raw_map
