"""The promotion gate: a pure function from candidate and production metrics to accept/reject.

Both metric dicts must come from ``evaluation.evaluate_embeddings`` on the *same* held-out items
(retrain evaluates the production model afresh for exactly this reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateThresholds:
    # Largest allowed drop (production - candidate) in MAP@R on classes production knew.
    max_old_map_drop: float = 0.01
    # Largest allowed drop in MAP@R over all classes.
    max_overall_map_drop: float = 0.005
    # Largest allowed drop in MAP@R of any single old class (None: not checked).
    max_class_map_drop: float | None = 0.10
    # Absolute floor for the candidate's overall MAP@R (also applies to the first model).
    min_overall_map: float = 0.0


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reasons": list(self.reasons)}


def _map(metrics: Mapping[str, Any] | None, part: str) -> float | None:
    if not metrics or not metrics.get(part):
        return None
    value = metrics[part].get("map_at_r")
    return None if value is None else float(value)


def decide(candidate: Mapping[str, Any], production: Mapping[str, Any] | None,
           thresholds: GateThresholds = GateThresholds()) -> GateDecision:
    """Accept iff every check passes; ``reasons`` says what was checked, failures first."""
    failures: list[str] = []
    passes: list[str] = []
    cand_overall = _map(candidate, "overall")
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

    check("all classes", cand_overall, _map(production, "overall"), thresholds.max_overall_map_drop)
    check("old classes", _map(candidate, "old"), _map(production, "old") or _map(production, "overall"),
          thresholds.max_old_map_drop)
    if thresholds.max_class_map_drop is not None:
        cand_pc = candidate.get("per_class") or {}
        prod_pc = production.get("per_class") or {}
        old = set(prod_pc) & set(cand_pc)
        drops = {c: prod_pc[c]["map_at_r"] - cand_pc[c]["map_at_r"] for c in old}
        worst = max(drops.items(), key=lambda kv: kv[1], default=None)
        if worst is not None:
            c, d = worst
            if d > thresholds.max_class_map_drop + 1e-12:
                failures.append(f"MAP@R of class {c!r} fell {d:.3f}, limit {thresholds.max_class_map_drop:g}")
            else:
                passes.append(f"largest per-class MAP@R drop {max(d, 0.0):.3f} (class {c!r}), "
                              f"limit {thresholds.max_class_map_drop:g}")
    return GateDecision(not failures, tuple(failures + passes) if failures else tuple(passes))
