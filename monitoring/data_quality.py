"""Data-quality checks: is this batch broken (a fault in the pipe), as opposed to drifted (the world changed)?

Drift tests ask whether the batch comes from another distribution; they fire on new classes and
on sensor faults alike. These checks ask narrower questions whose answer is "this data should not
be learnt from", each against the reference batches before it:

- ``zero_rows``: rows whose features are all zero;
- ``constant_rows``: rows whose values (nearly) do not vary: a stuck sensor, a fill value;
- ``out_of_range``: rows whose norm, or any one value, lies well outside what the reference holds;
- ``duplicate_burst``: many more repeated rows (within the batch, or copies of reference rows) than
  the reference has;
- ``stuck_dimensions``: dimensions that are constant across the batch although, given how they vary
  in the reference, so many equal values would be very unlikely;
- ``quarantine_jump``: a quarantine rate (rows refused at ingest) far above the reference batches'.

Pure functions of arrays (no I/O); thresholds are ``core.settings.QualitySettings`` and were set
by ``benchmarks/data_quality.py`` on clean real batches and on injected faults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.settings import QualitySettings

MAX_LISTED = 20


@dataclass(frozen=True)
class QualityCheck:
    name: str
    value: float  # the measured share (or count, for stuck dimensions)
    limit: float  # the check fails when value > limit
    passed: bool
    detail: str  # in words, with the numbers
    where: tuple[int, ...] = ()  # offending rows (dimensions, for stuck_dimensions), at most MAX_LISTED


@dataclass(frozen=True)
class QualityReport:
    passed: bool
    checks: dict[str, QualityCheck]
    n_rows: int
    n_reference: int
    skipped: tuple[str, ...] = ()  # checks that could not run, with why

    @property
    def failures(self) -> list[QualityCheck]:
        return [c for c in self.checks.values() if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"passed {len(self.checks)} data-quality checks"
        return "; ".join(c.detail for c in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "n_rows": self.n_rows, "n_reference": self.n_reference,
                "checks": {k: {**asdict(v), "where": list(v.where)} for k, v in self.checks.items()},
                "skipped": list(self.skipped), "summary": self.summary()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QualityReport:
        checks = {k: QualityCheck(**{**v, "where": tuple(v.get("where") or ())})
                  for k, v in (d.get("checks") or {}).items()}
        return cls(bool(d.get("passed", True)), checks, int(d.get("n_rows", 0)), int(d.get("n_reference", 0)),
                   tuple(d.get("skipped") or ()))


@dataclass(frozen=True)
class _Reference:
    """What the checks need to know about the reference, computed once."""

    norm_low: float
    norm_high: float
    value_low: np.ndarray  # per dimension
    value_high: np.ndarray
    row_spread: float  # median per-row standard deviation
    duplicate_share: float
    mode_share: np.ndarray  # per dimension: share of rows holding its most common value
    hashes: set[bytes] = field(default_factory=set)


def _row_keys(x: np.ndarray) -> list[bytes]:
    # Rounded so that float noise from a round trip does not hide a copy.
    return [r.tobytes() for r in np.round(x.astype(np.float64), 6)]


def _mode_share(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        _, counts = np.unique(x[:, j], return_counts=True)
        out[j] = counts.max() / len(x)
    return out


def _reference(ref: np.ndarray, settings: QualitySettings) -> _Reference:
    norms = np.linalg.norm(ref, axis=1)
    lo, hi = np.quantile(norms, [settings.norm_quantile, 1 - settings.norm_quantile])
    # Norms: the reference's [q, 1-q] range padded by a share of its own width, plus a little of the
    # typical norm, so normalised embeddings (all norms 1) accept rounding but not unnormalised rows.
    norm_pad = (settings.range_margin - 1) * (hi - lo) + settings.norm_tolerance * float(np.median(norms))
    vlo, vhi = ref.min(axis=0), ref.max(axis=0)
    # Values: every dimension widened by the same amount, a share of the typical dimension's span: a
    # new class may use a dimension the reference left flat (a pixel blank in every digit seen so far),
    # which is the world changing, not a fault; a unit or scale error leaves every range far behind.
    spans = vhi - vlo
    typical = float(np.median(spans[spans > 0])) if np.any(spans > 0) else 1.0
    pad = (settings.range_margin - 1) * typical
    keys = _row_keys(ref)
    return _Reference(
        norm_low=float(lo) - norm_pad, norm_high=float(hi) + norm_pad,
        value_low=vlo - pad, value_high=vhi + pad,
        row_spread=float(np.median(ref.std(axis=1))), duplicate_share=1 - len(set(keys)) / max(len(keys), 1),
        mode_share=_mode_share(ref), hashes=set(keys),
    )


def _share_check(name: str, mask: np.ndarray, limit: float, what: str) -> QualityCheck:
    share = float(mask.mean()) if len(mask) else 0.0
    rows = tuple(int(i) for i in np.flatnonzero(mask)[:MAX_LISTED])
    passed = share <= limit
    return QualityCheck(name, share, limit, passed,
                        f"{100 * share:.1f}% of rows {what} (limit {100 * limit:.1f}%)", rows)


def check_quality(current: np.ndarray, reference: np.ndarray, *, settings: QualitySettings,
                  quarantined: int = 0, reference_quarantine_rates: tuple[float, ...] = ()) -> QualityReport:
    """Run every check on ``current`` (rows x dims, as ingested) against ``reference``.

    ``quarantined``: rows of this batch refused at ingest; ``reference_quarantine_rates``: the same
    share for each reference batch.
    """
    cur = np.asarray(current, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    skipped: list[str] = []
    checks: dict[str, QualityCheck] = {}
    n_in = len(cur) + quarantined
    if n_in and quarantined:
        base = float(np.median(reference_quarantine_rates)) if reference_quarantine_rates else 0.0
        rate = quarantined / n_in
        limit = base + settings.max_quarantine_jump
        checks["quarantine_jump"] = QualityCheck(
            "quarantine_jump", rate, limit, rate <= limit,
            f"{100 * rate:.1f}% of rows were quarantined at ingest (reference batches {100 * base:.1f}%, "
            f"limit {100 * limit:.1f}%)")
    if len(cur) == 0:
        return QualityReport(all(c.passed for c in checks.values()), checks, 0, len(ref), ("no good rows",))
    checks["zero_rows"] = _share_check("zero_rows", ~np.any(cur != 0, axis=1), settings.max_zero_rows, "are all zero")
    if len(ref) < settings.min_reference_rows:
        skipped.append(f"reference checks: {len(ref)} reference rows, need {settings.min_reference_rows}")
        return QualityReport(all(c.passed for c in checks.values()), checks, len(cur), len(ref), tuple(skipped))
    r = _reference(ref, settings)
    flat = cur.std(axis=1) <= settings.constant_spread * r.row_spread
    checks["constant_rows"] = _share_check("constant_rows", flat & np.any(cur != 0, axis=1),
                                           settings.max_constant_rows, "are constant (no spread across values)")
    norms = np.linalg.norm(cur, axis=1)
    outside = ((norms < r.norm_low) | (norms > r.norm_high)
               | np.any((cur < r.value_low) | (cur > r.value_high), axis=1))
    checks["out_of_range"] = _share_check("out_of_range", outside & np.any(cur != 0, axis=1),
                                          settings.max_out_of_range, "lie outside the reference's range")
    checks["duplicate_burst"] = _duplicates(cur, r, settings)
    checks["stuck_dimensions"] = _stuck(cur, r, settings)
    return QualityReport(all(c.passed for c in checks.values()), checks, len(cur), len(ref), tuple(skipped))


def _duplicates(cur: np.ndarray, r: _Reference, settings: QualitySettings) -> QualityCheck:
    seen: set[bytes] = set()
    dup = np.zeros(len(cur), dtype=bool)
    for i, key in enumerate(_row_keys(cur)):
        dup[i] = key in seen or key in r.hashes
        seen.add(key)
    limit = max(settings.max_duplicate_rows, settings.duplicate_factor * r.duplicate_share)
    check = _share_check("duplicate_burst", dup, limit, "repeat another row")
    return check


def _stuck(cur: np.ndarray, r: _Reference, settings: QualitySettings) -> QualityCheck:
    """Dimensions constant in the batch although the reference makes that very unlikely.

    If a dimension's most common reference value covers a share ``p`` of rows, ``n`` rows all
    agreeing happens with probability about ``p**n`` (less when they agree on a rarer value).
    """
    constant = np.all(cur == cur[0], axis=0)
    unlikely = np.power(np.clip(r.mode_share, 0.0, 1.0), len(cur)) < settings.stuck_probability
    stuck = np.flatnonzero(constant & unlikely)
    limit = settings.max_stuck_dimensions
    share = len(stuck) / cur.shape[1]
    return QualityCheck("stuck_dimensions", share, limit, share <= limit,
                        f"{len(stuck)} of {cur.shape[1]} dimensions are stuck at one value across the batch "
                        f"(limit {100 * limit:.1f}% of dimensions)", tuple(int(j) for j in stuck[:MAX_LISTED]))
