"""The one result type every detector returns, and small helpers they share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ValidationError


@dataclass(frozen=True)
class DetectorResult:
    """What one two-sample test found.

    ``p_value`` is the probability, under "no drift", of a statistic at least this extreme; it is
    what the decision combines. ``effect`` is a sample-size-independent magnitude a person can read
    (its meaning is in ``effect_description``), so a tiny-but-significant drift on a huge batch can
    be told from a large one.
    """

    name: str
    statistic: float
    p_value: float
    effect: float
    effect_description: str
    n_reference: int
    n_current: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "effect": _finite(self.effect),
            "effect_description": self.effect_description,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "extra": self.extra,
        }


    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorResult:
        """Inverse of :meth:`to_dict` (a null number reads back as NaN; unknown keys are ignored)."""
        values = {f: d.get(f) for f in cls.__dataclass_fields__ if f in d}
        for name in ("statistic", "p_value", "effect"):
            values[name] = math.nan if values.get(name) is None else float(values[name])
        values.setdefault("name", "?")
        values.setdefault("effect_description", "")
        values.setdefault("n_reference", 0)
        values.setdefault("n_current", 0)
        values["extra"] = dict(values.get("extra") or {})
        return cls(**values)


def is_missing(v: Any) -> bool:
    """None or a float NaN (how pyarrow/pandas hand out absent labels)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def as_matrix(x: Any, what: str) -> np.ndarray:
    """Validate a 2-D float array of finite values; returns float32 C-contiguous."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValidationError(f"{what} must be a 2-D array (rows × dims), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValidationError(f"{what} contains NaN or infinite values; clean or drop those rows first")
    return np.ascontiguousarray(arr)


def check_pair(reference: Any, current: Any, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    ref = as_matrix(reference, "reference")
    cur = as_matrix(current, "current")
    if ref.shape[1] != cur.shape[1]:
        raise ValidationError(
            f"reference has {ref.shape[1]} dims but current has {cur.shape[1]}; "
            "embed both with the same model"
        )
    for arr, what in ((ref, "reference"), (cur, "current")):
        if arr.shape[0] < min_rows:
            raise ValidationError(f"{what} has {arr.shape[0]} rows; this test needs at least {min_rows}")
    return ref, cur


def subsample(x: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` rows, drawn without replacement (a uniform subsample keeps tests valid)."""
    if cap is None or x.shape[0] <= cap:
        return x
    idx = rng.choice(x.shape[0], size=cap, replace=False)
    return x[np.sort(idx)]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
