"""One drift decision from several detectors, with the family-wise false-alarm rate held at α.

Running five tests at α each would false-alarm up to 5α of the time. Holm's step-down procedure
(or plain Bonferroni) keeps P(any detector flags | no drift) ≤ α whatever the dependence between
detectors — and they are strongly dependent here, since all read the same rows. For the yes/no
"drifted?" question Holm and Bonferroni agree (both flag iff min p ≤ α/m); Holm names more of the
detectors that fired once one has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import ConfigError
from monitoring.detectors.base import DetectorResult

Method = Literal["holm", "bonferroni"]


@dataclass(frozen=True)
class Decision:
    drifted: bool
    alpha: float
    method: str
    combined_p_value: float  # min over detectors of the adjusted p-value
    adjusted_p_values: dict[str, float]
    flagged: tuple[str, ...]  # detectors rejected by the procedure, most significant first

    def to_dict(self) -> dict:
        return {
            "drifted": self.drifted,
            "alpha": self.alpha,
            "method": self.method,
            "combined_p_value": self.combined_p_value,
            "adjusted_p_values": self.adjusted_p_values,
            "flagged": list(self.flagged),
        }


    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        return cls(
            drifted=bool(d.get("drifted", False)), alpha=float(d.get("alpha", 0.05)), method=str(d.get("method", "holm")),
            combined_p_value=float(d.get("combined_p_value", 1.0)),
            adjusted_p_values={k: float(v) for k, v in (d.get("adjusted_p_values") or {}).items()},
            flagged=tuple(d.get("flagged") or ()),
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


def decide(
    results: Mapping[str, DetectorResult] | list[DetectorResult], alpha: float, method: Method = "holm"
) -> Decision:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha={alpha} must lie strictly between 0 and 1 (e.g. 0.05)")
    if not isinstance(results, Mapping):
        results = {r.name: r for r in results}
    p = {name: float(r.p_value) for name, r in results.items()}
    if not p:
        return Decision(False, alpha, method, 1.0, {}, ())
    adjusted = adjust_p_values(p, method)
    flagged = tuple(k for k, v in sorted(adjusted.items(), key=lambda kv: kv[1]) if v <= alpha)
    return Decision(
        drifted=bool(flagged),
        alpha=alpha,
        method=method,
        combined_p_value=min(adjusted.values()),
        adjusted_p_values=adjusted,
        flagged=flagged,
    )
