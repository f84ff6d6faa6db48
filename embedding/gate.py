"""The promotion gate: a pure function from candidate and production evaluations to accept/reject.

Both evaluations must be of the *same* held-out items (retrain evaluates the production model
afresh for exactly this reason). Thresholds are ``core.settings.GateSettings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.settings import GateSettings
from embedding.evaluation import EvaluationReport


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateDecision:
        return cls(bool(d.get("accepted", False)), tuple(d.get("reasons") or ()))


def decide(candidate: EvaluationReport | None, production: EvaluationReport | None,
           thresholds: GateSettings | None = None) -> GateDecision:
    """Accept iff every check passes; ``reasons`` says what was checked, failures first."""
    thresholds = thresholds or GateSettings()
    failures: list[str] = []
    passes: list[str] = []
    cand_overall = None if candidate is None else candidate.map_at_r("overall")
    if cand_overall is None:
        return GateDecision(False, ("candidate has no overall MAP@R; evaluation did not run",))
    if cand_overall < thresholds.min_overall_map:
        failures.append(f"MAP@R overall {cand_overall:.3f} is below the floor {thresholds.min_overall_map:.3f}")
    if production is None:
        passes.append(f"no production model: first model accepted (MAP@R overall {cand_overall:.3f})")
        return GateDecision(not failures, tuple(failures or passes))

    def check(label: str, cand: float | None, prod: float | None, limit: float) -> None:
        if cand is None or prod is None:
            return
        drop = prod - cand
        text = f"MAP@R on {label} {cand:.3f} vs production {prod:.3f}"
        if drop > limit + 1e-12:
            failures.append(f"MAP@R on {label} fell {drop:.3f}, limit {limit:g} ({cand:.3f} vs {prod:.3f})")
        else:
            passes.append(f"{text} (change {-drop:+.3f}, limit -{limit:g})")

    check("all classes", cand_overall, production.map_at_r("overall"), thresholds.max_overall_map_drop)
    check("old classes", candidate.map_at_r("old"), production.map_at_r("old") or production.map_at_r("overall"),
          thresholds.max_old_map_drop)
    if thresholds.max_class_map_drop is not None:
        old = set(production.per_class) & set(candidate.per_class)
        drops = {c: production.per_class[c].map_at_r - candidate.per_class[c].map_at_r for c in old}
        worst = max(drops.items(), key=lambda kv: kv[1], default=None)
        if worst is not None:
            c, d = worst
            if d > thresholds.max_class_map_drop + 1e-12:
                failures.append(f"MAP@R of class {c!r} fell {d:.3f}, limit {thresholds.max_class_map_drop:g}")
            else:
                passes.append(f"largest per-class MAP@R drop {max(d, 0.0):.3f} (class {c!r}), "
                              f"limit {thresholds.max_class_map_drop:g}")
    return GateDecision(not failures, tuple(failures + passes) if failures else tuple(passes))
