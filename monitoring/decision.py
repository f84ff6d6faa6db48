"""One drift decision from several detectors: significant, and large enough to act on.

Significance. Running five tests at α each would false-alarm up to 5α of the time. Holm's
step-down procedure (or plain Bonferroni) keeps P(any detector flags | no drift) ≤ α whatever the
dependence between detectors — and they are strongly dependent here, since all read the same rows.
For the yes/no "significant?" question Holm and Bonferroni agree (both flag iff min p ≤ α/m); Holm
names more of the detectors that fired once one has.

Severity. Real batches are never exchangeable with the ones before them (a nightly batch comes from
other users, other sources, other sub-topics), so on real streams the tests are significant almost
every time. A detector *acts* (alert + retrain) only when it is significant **and** its effect (a
sample-size-independent magnitude, one documented scale per detector) exceeds the stream's own
batch-to-batch variation: a control-chart limit learnt from the effects of the collection's past
accepted checks, ``max(floor, median + k · 1.4826 · MAD)`` over the last ``window`` of them, or the
fixed ``floor`` alone while fewer than ``min_history`` exist. "Significant, small" is reported and
does not act.

Everything here is pure: :class:`EffectBaseline` is built from a list of past effect dicts (where
they come from is the caller's business) and :func:`decide` takes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from monitoring.detectors.base import DetectorResult

Method = Literal["holm", "bonferroni"]

# Bump when a detector's effect definition changes: baselines only mix effects of the same scale.
EFFECT_SCALE = "effects-v2"

# The smallest effect worth an alert and a retrain, per detector, on its own scale (see each
# detector's module docstring); it is the whole threshold while a collection is young. Calibrated on
# real sentence embeddings (benchmarks/drift.py --real; calibration streams with seeds 100-105,
# disjoint from the reported ones): each sits above the 99th percentile of that detector's effect
# on contiguous-slice batches of a sorted corpus (which the tests find significant nearly every
# time) and below what a 10% data fault produces in the detector that sees it (zero or noisy rows:
# novelty ≥ 0.08; one repeated row: MMD² ≥ 0.0059).
DEFAULT_FLOORS: dict[str, float] = {
    "mmd": 0.003,  # bias-corrected MMD² (RBF, median bandwidth); contiguous q99 0.0027
    "classifier": 0.2,  # held-out AUC − 0.5; contiguous q99 0.195
    "ks": 0.08,  # largest KS distance over PCA components beyond its no-drift median; q99 0.067
    "novelty": 0.03,  # estimated share of novel rows; q99 0.027
    "label_shift": 0.03,  # largest change of one class's share of the batch; q99 0.000, 5% new class 0.049
    "prototype_displacement": 0.1,  # mean squared class-centre shift beyond sampling noise; q99 0.090
    # estimated share of rows in current-only neighbourhoods (opt-in detector): above its largest
    # effect on random-arrival batches (0.003 on both corpora, 38 checks); contiguous batches run at
    # 0.08-0.2 without a new class, which is why it is not run by default
    "neighbourhood": 0.005,
}


@dataclass(frozen=True)
class SeverityConfig:
    floors: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FLOORS))
    k: float = 3.0  # robust standard deviations (1.4826 · MAD) above the median of past effects
    min_history: int = 5  # past accepted checks a detector needs before its baseline is used
    window: int = 30  # most recent accepted checks the baseline looks at

    def floor(self, name: str) -> float:
        return float(self.floors.get(name, 0.0))


@dataclass(frozen=True)
class EffectThreshold:
    value: float
    floor: float
    source: Literal["floor", "baseline"]
    n_past: int
    median: float | None = None
    spread: float | None = None  # 1.4826 · MAD of the past effects

    def describe(self) -> str:
        if self.source == "floor":
            return f"the floor {self.floor:.3g} (young: {self.n_past} past checks)"
        return (
            f"{self.value:.3g} = max(floor {self.floor:.3g}, median {self.median:.3g} + k·{self.spread:.3g} "
            f"over {self.n_past} past checks)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "floor": self.floor, "source": self.source, "n_past": self.n_past,
                "median": self.median, "spread": self.spread}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EffectThreshold:
        return cls(float(d.get("value") or 0.0), float(d.get("floor") or 0.0), d.get("source", "floor"),
                   int(d.get("n_past") or 0), d.get("median"), d.get("spread"))


@dataclass(frozen=True)
class EffectBaseline:
    """Effects of a collection's past accepted (non-acting) checks, per detector, oldest first."""

    history: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def from_effects(cls, past: Iterable[Mapping[str, float | None]]) -> EffectBaseline:
        """From one ``{detector: effect}`` dict per past check, oldest first; missing or non-finite
        effects (a detector that did not run) are skipped."""
        hist: dict[str, list[float]] = {}
        for effects in past:
            for name, v in effects.items():
                if v is not None and math.isfinite(float(v)):
                    hist.setdefault(name, []).append(float(v))
        return cls({k: tuple(v) for k, v in sorted(hist.items())})

    def n_past(self, name: str) -> int:
        return len(self.history.get(name, ()))

    def threshold(self, name: str, severity: SeverityConfig) -> EffectThreshold:
        floor = severity.floor(name)
        past = np.asarray(self.history.get(name, ())[-severity.window :], dtype=np.float64)
        if past.size < max(1, severity.min_history):
            return EffectThreshold(floor, floor, "floor", int(past.size))
        median = float(np.median(past))
        spread = 1.4826 * float(np.median(np.abs(past - median)))
        limit = median + severity.k * spread
        return EffectThreshold(max(floor, limit), floor, "baseline", int(past.size), median, spread)

    def to_dict(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EffectBaseline:
        return cls({k: tuple(float(x) for x in v) for k, v in (d.get("history") or {}).items()})


@dataclass(frozen=True)
class DetectorVerdict:
    p_value: float
    adjusted_p_value: float
    significant: bool
    effect: float
    threshold: EffectThreshold
    acting: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value, "adjusted_p_value": self.adjusted_p_value, "significant": self.significant,
            "effect": self.effect if math.isfinite(self.effect) else None, "threshold": self.threshold.to_dict(),
            "acting": self.acting, "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectorVerdict:
        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        return cls(num(d.get("p_value")), num(d.get("adjusted_p_value")), bool(d.get("significant")),
                   num(d.get("effect")), EffectThreshold.from_dict(d.get("threshold") or {}), bool(d.get("acting")),
                   str(d.get("reason", "")))


@dataclass(frozen=True)
class Decision:
    drifted: bool  # act (alert + retrain): some detector is significant *and* large
    alpha: float
    method: str
    combined_p_value: float  # min over detectors of the adjusted p-value
    adjusted_p_values: dict[str, float]
    flagged: tuple[str, ...]  # significant detectors (family-wise at α), most significant first
    acting: tuple[str, ...] = ()  # flagged detectors whose effect exceeds their threshold
    verdicts: dict[str, DetectorVerdict] = field(default_factory=dict)

    @property
    def significant(self) -> bool:
        return bool(self.flagged)

    @property
    def status(self) -> str:
        """"drift" (acts), "significant, small" (reported, does not act) or "no drift"."""
        if self.drifted:
            return "drift"
        return "significant, small" if self.flagged else "no drift"

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "status": self.status,
            "significant": self.significant,
            "alpha": self.alpha,
            "method": self.method,
            "combined_p_value": self.combined_p_value,
            "adjusted_p_values": self.adjusted_p_values,
            "flagged": list(self.flagged),
            "acting": list(self.acting),
            "verdicts": {k: v.to_dict() for k, v in self.verdicts.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        """Inverse of :meth:`to_dict` (reports stored before severity existed read as all-acting)."""
        flagged = tuple(d.get("flagged") or ())
        return cls(
            drifted=bool(d.get("drifted", False)), alpha=float(d.get("alpha", 0.05)), method=str(d.get("method", "holm")),
            combined_p_value=float(d.get("combined_p_value", 1.0)),
            adjusted_p_values={k: float(v) for k, v in (d.get("adjusted_p_values") or {}).items()},
            flagged=flagged, acting=tuple(d.get("acting", flagged if d.get("drifted") else ())),
            verdicts={k: DetectorVerdict.from_dict(v) for k, v in (d.get("verdicts") or {}).items()},
        )


def adjust_p_values(p_values: Mapping[str, float], method: Method = "holm") -> dict[str, float]:
    """Family-wise adjusted p-values: detector i is flagged at level α iff adjusted[i] ≤ α."""
    items = sorted(p_values.items(), key=lambda kv: kv[1])
    m = len(items)
    out: dict[str, float] = {}
    if method == "bonferroni":
        return {k: min(1.0, m * p) for k, p in items}
    if method != "holm":
        raise ConfigError(f"decision method {method!r} is unknown; use 'holm' or 'bonferroni'")
    running = 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))  # enforce monotone adjusted values
        out[k] = running
    return out


def _verdict(result: DetectorResult, adjusted: float, alpha: float, threshold: EffectThreshold) -> DetectorVerdict:
    effect = float(result.effect)
    significant = adjusted <= alpha
    large = math.isfinite(effect) and effect > threshold.value
    if not significant:
        reason = f"not significant: adjusted p {adjusted:.3g} > α {alpha:g}"
    elif large:
        reason = f"acts: adjusted p {adjusted:.3g} ≤ α {alpha:g} and effect {effect:.3g} > {threshold.describe()}"
    else:
        reason = (
            f"significant, small: adjusted p {adjusted:.3g} ≤ α {alpha:g} but effect {effect:.3g} ≤ "
            f"{threshold.describe()}"
        )
    return DetectorVerdict(float(result.p_value), adjusted, significant, effect, threshold,
                           significant and large, reason)


def decide(
    results: Mapping[str, DetectorResult] | list[DetectorResult],
    alpha: float,
    method: Method = "holm",
    *,
    baseline: EffectBaseline | None = None,
    severity: SeverityConfig | None = None,
) -> Decision:
    """Significance family-wise at ``alpha``; action where the effect also beats the baseline
    (no baseline: the floors, as for a young collection)."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha={alpha} must lie strictly between 0 and 1 (e.g. 0.05)")
    if not isinstance(results, Mapping):
        results = {r.name: r for r in results}
    if not results:
        return Decision(False, alpha, method, 1.0, {}, ())
    severity = severity or SeverityConfig()
    baseline = baseline or EffectBaseline()
    adjusted = adjust_p_values({name: float(r.p_value) for name, r in results.items()}, method)
    order = sorted(adjusted, key=lambda k: adjusted[k])
    verdicts = {
        name: _verdict(results[name], adjusted[name], alpha, baseline.threshold(name, severity)) for name in order
    }
    flagged = tuple(k for k in order if verdicts[k].significant)
    acting = tuple(k for k in order if verdicts[k].acting)
    return Decision(
        drifted=bool(acting),
        alpha=alpha,
        method=method,
        combined_p_value=min(adjusted.values()),
        adjusted_p_values=adjusted,
        flagged=flagged,
        acting=acting,
        verdicts=verdicts,
    )
