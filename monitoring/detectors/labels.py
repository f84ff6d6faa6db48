"""For labelled batches: did the class mix change, and did known classes move in embedding space?

- ``label_shift_test``: chi-square test of homogeneity on the reference-vs-current label counts.
  Classes rarer than ``min_expected`` expected rows are pooled into one "other" cell, because the
  chi-square approximation over-rejects on tiny expected counts. Effect: the largest change of one
  class's share of the batch (a class new to the batch counts with its full share). The total
  variation distance is reported beside it but is not the effect: with 30 classes and 500 rows its
  sampling noise alone is ~0.1 under random arrival and ~0 when batches keep the class mix, so one
  threshold cannot fit both; the largest single-class change has noise ~0.025 and a 5% new class
  moves it by 0.05 either way.
- ``prototype_displacement_test``: for every class present on both sides, the squared distance
  between its reference centre and its current centre, summed with weights n_ref·n_cur/(n_ref+n_cur)
  (each class's term then has the same scale under the null). The null is that of relabelling rows
  *within* each class, so a pure class-mix change does not trigger it; its tail comes from the
  spectral approximation (:mod:`monitoring.detectors.null`), so any α is reachable. Effect: the
  weighted mean over classes of the squared centre shift minus its no-drift mean.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from monitoring.detectors.base import DetectorResult, check_pair, is_missing, l2_normalise
from monitoring.detectors.null import gaussian_quadratic_null, gram_spectrum
from monitoring.detectors.stats import chi2_contingency


@dataclass(frozen=True)
class LabelConfig:
    min_expected: float = 5.0
    min_class_rows: int = 3  # per side, for a class to enter the displacement test
    max_rows_per_class: int = 250  # per side; bounds the cost
    n_eigenvalues: int = 8  # per class, exact; the rest of each class's spectrum as one gamma
    null_draws: int = 200  # relabellings giving the label-mix distance expected without drift


def _clean(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels, dtype=object)
    return np.array([None if is_missing(v) else str(v) for v in lab], dtype=object)


def label_shift_test(
    reference_labels: np.ndarray, current_labels: np.ndarray, min_expected: float = 5.0, *,
    null_draws: int = 200, seed: int = 0,
) -> DetectorResult | None:
    """None when either side has no labels."""
    ref = [v for v in _clean(reference_labels) if v is not None]
    cur = [v for v in _clean(current_labels) if v is not None]
    if not ref or not cur:
        return None
    cr, cc = Counter(ref), Counter(cur)
    classes = sorted(set(cr) | set(cc))
    full = np.array([[cr[c] for c in classes], [cc[c] for c in classes]], dtype=np.int64)
    table = full.astype(float)
    total = table.sum()
    expected_min = table.sum(1).min() * table.sum(0) / total
    rare = expected_min < min_expected
    if rare.any():
        table = np.concatenate([table[:, ~rare], table[:, rare].sum(1, keepdims=True)], axis=1)
        table = table[:, table.sum(0) > 0]
    share_ref, share_cur = full[0] / full[0].sum(), full[1] / full[1].sum()
    tvd = 0.5 * float(np.abs(share_ref - share_cur).sum())
    null_tvd = _null_tvd(full, null_draws, np.random.default_rng(seed))
    change = share_cur - share_ref
    most = int(np.argmax(np.abs(change)))
    effect = float(abs(change[most]))
    new_classes = sorted(set(cc) - set(cr))
    if table.shape[1] < 2:
        stat, p = 0.0, 1.0
    else:
        stat, p, _, _ = chi2_contingency(table, correction=False)
    return DetectorResult(
        name="label_shift",
        statistic=float(stat),
        p_value=float(p),
        effect=effect,
        effect_description=(
            f"class {classes[most]!r} changed its share of the batch by {change[most]:+.3f} (the largest change); "
            f"total variation {tvd:.3f} (about {null_tvd:.3f} expected from sampling alone)"
            + (f"; classes new in current: {new_classes[:10]}" if new_classes else "")
        ),
        n_reference=len(ref),
        n_current=len(cur),
        extra={
            "n_classes": len(classes), "new_classes": new_classes[:50], "pooled_rare_classes": int(rare.sum()),
            "total_variation": tvd, "null_total_variation": null_tvd, "most_changed_class": classes[most],
            "new_class_share": float(sum(cc[c] for c in new_classes)) / len(cur),
        },
    )


def _null_tvd(counts: np.ndarray, draws: int, rng: np.random.Generator) -> float:
    """Mean total variation between the two sides when the pooled items are dealt out at random."""
    if draws <= 0:
        return 0.0
    pooled = counts.sum(0)
    n_cur = int(counts[1].sum())
    cur = rng.multivariate_hypergeometric(pooled, n_cur, size=draws)
    ref = pooled[None, :] - cur
    diff = ref / ref.sum(1, keepdims=True) - cur / max(n_cur, 1)
    return float(0.5 * np.abs(diff).sum(1).mean())


def prototype_displacement_test(
    reference: np.ndarray,
    current: np.ndarray,
    reference_labels: np.ndarray,
    current_labels: np.ndarray,
    config: LabelConfig = LabelConfig(),
    seed: int = 0,
) -> DetectorResult | None:
    """None when no class has enough rows on both sides."""
    rng = np.random.default_rng(seed)
    ref, cur = check_pair(reference, current, min_rows=1)
    ref, cur = l2_normalise(ref), l2_normalise(cur)
    lr, lc = _clean(reference_labels), _clean(current_labels)
    if len(lr) != len(ref) or len(lc) != len(cur):
        return None
    groups = []
    for c in sorted({v for v in lr if v is not None} & {v for v in lc if v is not None}):
        a, b = np.flatnonzero(lr == c), np.flatnonzero(lc == c)
        if len(a) < config.min_class_rows or len(b) < config.min_class_rows:
            continue
        a = rng.choice(a, min(len(a), config.max_rows_per_class), replace=False)
        b = rng.choice(b, min(len(b), config.max_rows_per_class), replace=False)
        groups.append((c, ref[a], cur[b]))
    if not groups:
        return None

    observed = 0.0
    parts = []
    per_class: dict[str, float] = {}
    weight_sum = 0.0
    for c, a, b in groups:
        m, n = len(a), len(b)
        w = m * n / (m + n)
        diff = a.mean(0, dtype=np.float64) - b.mean(0, dtype=np.float64)
        term = w * float(diff @ diff)
        observed += term
        weight_sum += w
        pooled = np.concatenate([a, b]).astype(np.float64)
        pooled -= pooled.mean(0)
        # under relabelling within the class, w‖Δ‖² ≈ Σ eig(scatter/(N-1)) z²: see null.py
        part = gram_spectrum(pooled, config.n_eigenvalues, rng, scale=1.0 / (m + n - 1))
        parts.append(part)
        per_class[c] = (term - part.scale * part.trace) / w  # squared centre shift beyond its noise
    null = gaussian_quadratic_null(parts)
    p_value = null.sf(observed)
    effect = (observed - null.mean) / weight_sum
    worst = max(per_class, key=per_class.get)
    return DetectorResult(
        name="prototype_displacement",
        statistic=observed,
        p_value=p_value,
        effect=effect,
        effect_description=(
            f"class centres moved by a squared distance of {effect:.3g} on average beyond sampling noise; "
            f"most: {worst!r} ({per_class[worst]:.3g}); unit-norm embeddings, 0 = unmoved"
        ),
        n_reference=sum(len(a) for _, a, _ in groups),
        n_current=sum(len(b) for _, _, b in groups),
        extra={
            "n_classes_compared": len(groups),
            "null_mean": null.mean,
            "null_std": null.std,
            "z_score": (observed - null.mean) / null.std if null.std > 0 else 0.0,
            "p_value_method": f"spectral saddlepoint (top {config.n_eigenvalues} eigenvalues per class + gamma)",
            "displacement_by_class": dict(sorted(per_class.items(), key=lambda kv: -kv[1])[:20]),
        },
    )
