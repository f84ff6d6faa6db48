"""The promotion gate: a pure function from evaluations to accept/reject, judged under noise.

All evaluations must be of the *same* held-out items (the retrain service scores candidate,
production and the raw input features on the collection's stable evaluation set). A drop counts
only when it is real: a paired bootstrap over the held-out queries (each query's AP@R under both
models, resampled together) must put the drop's lower confidence bound above the tolerance. Per
class the confidence is Bonferroni-corrected over the classes checked, so with many small classes
one unlucky class does not sink a candidate that is better overall. With
``bootstrap_samples = 0`` the point values decide, as a plain threshold gate would.

Thresholds are ``core.settings.GateSettings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.settings import GateSettings
from embedding.metrics import EvaluationReport

_CHUNK = 100  # bootstrap resamples drawn at a time (bounds memory at n_queries * _CHUNK)


@dataclass(frozen=True)
class GateCheck:
    name: str  # "floor", "raw", "overall", "old", "class:<label>"
    passed: bool
    drop: float | None  # baseline - candidate MAP@R (positive: the candidate is worse)
    low: float | None  # lower confidence bound of the drop (None: point value only)
    high: float | None
    limit: float
    detail: str


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reasons: tuple[str, ...]
    checks: tuple[GateCheck, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reasons": list(self.reasons), "checks": [asdict(c) for c in self.checks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateDecision:
        checks = tuple(GateCheck(**c) for c in d.get("checks") or ())
        return cls(bool(d.get("accepted", False)), tuple(d.get("reasons") or ()), checks)


@dataclass(frozen=True)
class Drop:
    """Baseline minus candidate mean score over some queries, with a one-sided lower bound."""

    value: float
    low: float | None
    high: float | None
    n: int


def paired_drop(baseline: np.ndarray, candidate: np.ndarray, *, samples: int, confidence: float,
                rng: np.random.Generator, groups: np.ndarray | None = None) -> Drop:
    """Mean of ``baseline - candidate`` over queries, and its bootstrap interval (queries resampled
    in pairs, so what both models find hard cancels out).

    ``groups`` (each query's class): resample whole classes instead of queries, the mean of a draw
    being over all queries of the drawn classes. The interval then also covers *which* classes were
    measured, not only which of their items: what a claim about classes yet to come needs when few
    classes are in the set (queries of one class are not independent draws)."""
    diff = np.asarray(baseline, np.float64) - np.asarray(candidate, np.float64)
    keep = ~np.isnan(diff)
    diff = diff[keep]
    if len(diff) == 0:
        return Drop(float("nan"), None, None, 0)
    if groups is None:
        sums, counts = diff, np.ones(len(diff))
    else:
        _, codes = np.unique(np.asarray(groups)[keep], return_inverse=True)
        sums, counts = np.bincount(codes, weights=diff), np.bincount(codes).astype(np.float64)
    if samples <= 0 or len(sums) < 2:
        return Drop(float(diff.mean()), None, None, len(diff))
    means = []
    for start in range(0, samples, _CHUNK):
        idx = rng.integers(0, len(sums), size=(min(_CHUNK, samples - start), len(sums)), dtype=np.int32)
        means.append(sums[idx].sum(axis=1) / counts[idx].sum(axis=1))
    boot = np.concatenate(means)
    low, high = np.quantile(boot, [1 - confidence, confidence])
    return Drop(float(diff.mean()), float(low), float(high), len(diff))


def _scores(report: EvaluationReport) -> np.ndarray | None:
    return None if report.queries is None else report.queries.map_at_r


class _Judge:
    """Runs the comparisons of one decision with shared settings and a seeded generator."""

    def __init__(self, settings: GateSettings, seed: int) -> None:
        self.settings = settings
        self.rng = np.random.default_rng(seed)
        self.checks: list[GateCheck] = []

    def compare(self, name: str, what: str, baseline: np.ndarray | None, candidate: np.ndarray | None,
                point: tuple[float | None, float | None], limit: float, confidence: float) -> None:
        """Fail when the candidate is worse than the baseline by more than ``limit``, beyond noise."""
        base_point, cand_point = point
        if baseline is not None and candidate is not None and len(baseline) == len(candidate):
            d = paired_drop(baseline, candidate, samples=self.settings.bootstrap_samples, confidence=confidence,
                            rng=self.rng)
        elif base_point is not None and cand_point is not None:
            d = Drop(base_point - cand_point, None, None, 0)
        else:
            return
        if np.isnan(d.value):
            return
        decisive = d.low if d.low is not None else d.value
        failed = decisive > limit + 1e-12
        ci = (f" (drop {d.low:+.3f} to {d.high:+.3f}, {100 * (2 * confidence - 1):.4g}% bootstrap interval over "
              f"{d.n} queries)" if d.low is not None else "")
        if failed:
            detail = f"MAP@R {what} fell {d.value:.3f}{ci}, limit {limit:g}"
        elif d.value > limit + 1e-12:
            detail = f"MAP@R {what} fell {d.value:.3f}{ci}: above the {limit:g} limit but within noise"
        else:
            detail = f"MAP@R {what} changed {-d.value:+.3f}{ci}, limit -{limit:g}"
        self.checks.append(GateCheck(name, not failed, d.value, d.low, d.high, limit, detail))


def decide(candidate: EvaluationReport | None, production: EvaluationReport | None,
           thresholds: GateSettings | None = None, *, raw: EvaluationReport | None = None,
           seed: int = 0) -> GateDecision:
    """Accept iff every check passes; ``reasons`` lists the checks, failures first.

    ``raw``: the raw input features (normalised, no model) scored on the same items; the candidate
    may not be worse than them (``max_drop_vs_raw``), so a model never serves worse than no model.
    """
    settings = thresholds or GateSettings()
    cand_overall = None if candidate is None else candidate.map_at_r("overall")
    if cand_overall is None:
        return GateDecision(False, ("candidate has no overall MAP@R; evaluation did not run",))
    judge = _Judge(settings, seed)
    conf = settings.confidence
    cand = _scores(candidate)
    if production is None:
        judge.checks.append(GateCheck("first", True, None, None, None, 0.0,
                                      f"no production model: first model (MAP@R overall {cand_overall:.3f})"))
    else:
        _against_production(judge, candidate, production, cand, settings)
        if settings.max_group_gap_increase is not None:
            check = group_gap_check(candidate, production, settings.max_group_gap_increase,
                                    samples=settings.bootstrap_samples, confidence=conf, rng=judge.rng)
            if check is not None:
                judge.checks.append(check)
    if raw is not None and settings.max_drop_vs_raw is not None:
        judge.compare("raw", "against the raw input features", _scores(raw), cand,
                      (raw.map_at_r("overall"), cand_overall), settings.max_drop_vs_raw, conf)
    floor_ok = cand_overall >= settings.min_overall_map
    judge.checks.append(GateCheck("floor", floor_ok, None, None, None, settings.min_overall_map,
                                  f"MAP@R overall {cand_overall:.3f} "
                                  f"{'meets' if floor_ok else 'is below'} the floor {settings.min_overall_map:.3f}"))
    checks = tuple(judge.checks)
    return GateDecision(all(c.passed for c in checks), _reasons(checks), checks)


def _group_scores(report: EvaluationReport, groups: list[str]) -> list[np.ndarray] | None:
    q = report.queries
    if q is None or q.groups is None:
        return None
    return [q.map_at_r[q.groups == g] for g in groups]


def _gap_of(means: np.ndarray) -> np.ndarray:
    return means.max(axis=0) - means.min(axis=0)


def group_gap_check(candidate: EvaluationReport, production: EvaluationReport, limit: float, *,
                    samples: int = 1000, confidence: float = 0.95,
                    rng: np.random.Generator | None = None) -> GateCheck | None:
    """Fail when the candidate widens the gap between the best and the worst group's MAP@R by more
    than ``limit`` beyond noise: each group's queries are resampled in pairs (both models' AP@R of
    the same query together) and the widening's lower bound must exceed the limit. None when the
    two reports do not share two measured groups."""
    import math

    groups = sorted(g for g in set(candidate.per_group) & set(production.per_group)
                    if not math.isnan(candidate.per_group[g].map_at_r)
                    and not math.isnan(production.per_group[g].map_at_r))
    if len(groups) < 2:
        return None
    cand_gap = float(_gap_of(np.array([candidate.per_group[g].map_at_r for g in groups])))
    prod_gap = float(_gap_of(np.array([production.per_group[g].map_at_r for g in groups])))
    value, low, high = cand_gap - prod_gap, None, None
    c_scores, p_scores = _group_scores(candidate, groups), _group_scores(production, groups)
    paired = (samples > 0 and c_scores is not None and p_scores is not None
              and all(len(c) == len(p) for c, p in zip(c_scores, p_scores, strict=True)))
    if paired:
        rng = rng or np.random.default_rng(0)
        c_means, p_means = [], []
        for c, p in zip(c_scores, p_scores, strict=True):
            ok = ~(np.isnan(c) | np.isnan(p))
            c, p = c[ok], p[ok]
            if len(c) == 0:
                paired = False
                break
            idx = rng.integers(0, len(c), size=(samples, len(c)), dtype=np.int32)
            c_means.append(c[idx].mean(axis=1))
            p_means.append(p[idx].mean(axis=1))
        if paired:
            widening = _gap_of(np.array(c_means)) - _gap_of(np.array(p_means))
            low, high = (float(v) for v in np.quantile(widening, [1 - confidence, confidence]))
    decisive = low if low is not None else value
    failed = decisive > limit + 1e-12
    worst = min(groups, key=lambda g: candidate.per_group[g].map_at_r)
    ci = (f" ({low:+.3f} to {high:+.3f}, {100 * (2 * confidence - 1):.4g}% bootstrap interval)"
          if low is not None else "")
    gaps = f"gap between groups {prod_gap:.3f} -> {cand_gap:.3f} (worst group {worst!r})"
    if failed:
        detail = f"{gaps}: widened {value:+.3f}{ci}, limit {limit:g}"
    elif value > limit + 1e-12:
        detail = f"{gaps}: widened {value:+.3f}{ci}, above the {limit:g} limit but within noise"
    else:
        detail = f"{gaps}: changed {value:+.3f}{ci}, limit +{limit:g}"
    return GateCheck("group_gap", not failed, value, low, high, limit, detail)


def _reasons(checks: tuple[GateCheck, ...]) -> tuple[str, ...]:
    """Failures first; of the per-class checks that passed, only the one with the largest drop."""
    failures = [c.detail for c in checks if not c.passed]
    classes = [c for c in checks if c.passed and c.name.startswith("class:") and c.drop is not None]
    passes = [c.detail for c in checks if c.passed and not c.name.startswith("class:")]
    if classes:
        worst = max(classes, key=lambda c: c.drop)
        passes.append(f"largest per-class drop: {worst.detail}")
    return tuple(failures + passes)


def _against_production(judge: _Judge, candidate: EvaluationReport, production: EvaluationReport,
                        cand: np.ndarray | None, settings: GateSettings) -> None:
    prod = _scores(production)
    paired = cand is not None and prod is not None and candidate.queries is not None and len(cand) == len(prod)
    labels = candidate.queries.labels if paired else None
    conf = settings.confidence
    judge.compare("overall", "on all classes", prod, cand,
                  (production.map_at_r("overall"), candidate.map_at_r("overall")), settings.max_overall_map_drop, conf)
    # Classes production was trained on (scored on the same items by both); without that record
    # (older reports), every class both were scored on.
    known = set(production.old_classes or candidate.old_classes) or set(production.per_class)
    old_classes = sorted(known & set(production.per_class) & set(candidate.per_class))
    if paired and old_classes:
        old = np.isin(labels, old_classes)
        judge.compare("old", "on old classes", prod[old], cand[old],
                      (production.map_at_r("old"), candidate.map_at_r("old")), settings.max_old_map_drop, conf)
    else:
        judge.compare("old", "on old classes", None, None,
                      (production.map_at_r("old") or production.map_at_r("overall"), candidate.map_at_r("old")),
                      settings.max_old_map_drop, conf)
    if settings.max_class_map_drop is None:
        return
    # One-sided family-wise confidence over the classes checked (Bonferroni).
    per_class_conf = 1 - (1 - conf) / max(len(old_classes), 1)
    for c in old_classes:
        mask = labels == c if paired else None
        judge.compare(f"class:{c}", f"of class {c!r}", prod[mask] if paired else None,
                      cand[mask] if paired else None,
                      (production.per_class[c].map_at_r, candidate.per_class[c].map_at_r),
                      settings.max_class_map_drop, per_class_conf)
