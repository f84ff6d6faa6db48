"""For labelled batches: did the class mix change, and did known classes move in embedding space?

- ``label_shift_test``: chi-square test of homogeneity on the reference-vs-current label counts.
  Classes rarer than ``min_expected`` expected rows are pooled into one "other" cell, because the
  chi-square approximation over-rejects on tiny expected counts.
- ``prototype_displacement_test``: for every class present on both sides, the squared distance
  between its reference centre and its current centre, summed with weights n_ref·n_cur/(n_ref+n_cur)
  (each class's term then has the same scale under the null). The p-value comes from permuting the
  reference/current tag *within* each class, so a pure class-mix change does not trigger it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from monitoring.detectors.base import DetectorResult, check_pair, is_missing, l2_normalise


@dataclass(frozen=True)
class LabelConfig:
    min_expected: float = 5.0
    min_class_rows: int = 3  # per side, for a class to enter the displacement test
    n_permutations: int = 200
    max_rows_per_class: int = 250  # per side; bounds the permutation cost


def _clean(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels, dtype=object)
    return np.array([None if is_missing(v) else str(v) for v in lab], dtype=object)


def label_shift_test(
    reference_labels: np.ndarray, current_labels: np.ndarray, min_expected: float = 5.0
) -> DetectorResult | None:
    """None when either side has no labels."""
    from scipy.stats import chi2_contingency

    ref = [v for v in _clean(reference_labels) if v is not None]
    cur = [v for v in _clean(current_labels) if v is not None]
    if not ref or not cur:
        return None
    cr, cc = Counter(ref), Counter(cur)
    classes = sorted(set(cr) | set(cc))
    table = np.array([[cr[c] for c in classes], [cc[c] for c in classes]], dtype=float)
    total = table.sum()
    expected_min = table.sum(1).min() * table.sum(0) / total
    rare = expected_min < min_expected
    if rare.any():
        table = np.concatenate([table[:, ~rare], table[:, rare].sum(1, keepdims=True)], axis=1)
        table = table[:, table.sum(0) > 0]
    p_ref = table[0] / table[0].sum()
    p_cur = table[1] / table[1].sum()
    tvd = 0.5 * float(np.abs(p_ref - p_cur).sum())
    new_classes = sorted(set(cc) - set(cr))
    if table.shape[1] < 2:
        stat, p = 0.0, 1.0
    else:
        stat, p, _, _ = chi2_contingency(table, correction=False)
    return DetectorResult(
        name="label_shift",
        statistic=float(stat),
        p_value=float(p),
        effect=tvd,
        effect_description=(
            f"class mix moved by total variation {tvd:.3f} (share of items that would have to change class)"
            + (f"; classes new in current: {new_classes[:10]}" if new_classes else "")
        ),
        n_reference=len(ref),
        n_current=len(cur),
        extra={"n_classes": len(classes), "new_classes": new_classes[:50], "pooled_rare_classes": int(rare.sum())},
    )


def prototype_displacement_test(
    reference: np.ndarray,
    current: np.ndarray,
    reference_labels: np.ndarray,
    current_labels: np.ndarray,
    config: LabelConfig = LabelConfig(),
    seed: int = 0,
) -> DetectorResult | None:
    """None when no class has enough rows on both sides."""
    import torch

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

    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    n_perm = config.n_permutations
    observed = 0.0
    null = torch.zeros(n_perm, dtype=torch.float64)
    per_class = {}
    for c, a, b in groups:
        m, n = len(a), len(b)
        z = torch.from_numpy(np.concatenate([a, b]))
        w = m * n / (m + n)
        s = torch.cat([torch.full((m,), 1.0 / m), torch.full((n,), -1.0 / n)])
        diff = s @ z
        term = w * float(diff @ diff)
        observed += term
        ca, cb = a.mean(0), b.mean(0)
        cos = float(ca @ cb) / max(float(np.linalg.norm(ca) * np.linalg.norm(cb)), 1e-12)
        per_class[c] = 1.0 - cos
        perms = torch.argsort(torch.rand(n_perm, m + n, generator=gen), dim=1)
        diffs = s[perms] @ z  # (n_perm, d)
        null += w * (diffs * diffs).sum(1).double()
    exceed = int((null.numpy() >= observed - 1e-12).sum())
    p_value = (1 + exceed) / (1 + n_perm)
    worst = max(per_class, key=per_class.get)
    mean_disp = float(np.mean(list(per_class.values())))
    return DetectorResult(
        name="prototype_displacement",
        statistic=observed,
        p_value=p_value,
        effect=per_class[worst],
        effect_description=(
            f"class centres moved by cosine distance {mean_disp:.4f} on average; most: {worst!r} "
            f"({per_class[worst]:.4f})"
        ),
        n_reference=sum(len(a) for _, a, _ in groups),
        n_current=sum(len(b) for _, _, b in groups),
        extra={
            "n_classes_compared": len(groups),
            "n_permutations": n_perm,
            "displacement_by_class": dict(sorted(per_class.items(), key=lambda kv: -kv[1])[:20]),
        },
    )
