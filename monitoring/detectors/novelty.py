"""Novelty: how many current items lie farther from every known class than reference items do.

A new class that is a few percent of a batch barely moves the mean or the covariance, but its
items sit far from every class prototype. The test is conformal:

1. prototypes (L2-normalised class centres) come from the model, or else from labelled reference
   rows, or else from k-means on the reference;
2. a calibration part of the reference, *not* used to build the prototypes, gives each row's cosine
   similarity to its nearest prototype; the threshold τ is its ``k``-th smallest value, k = ⌈q·n_cal⌉;
3. under "no drift" the chance that a current item falls below τ is Beta(k, n_cal−k+1)-distributed,
   so the number of current items below τ is exactly beta-binomial(n_cur, k, n_cal−k+1), which gives
   the p-value. (A plain binomial(n_cur, q) ignores the error in τ and false-alarms on small references.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitoring.detectors.base import DetectorResult, check_pair, is_missing, l2_normalise, subsample


@dataclass(frozen=True)
class NoveltyConfig:
    quantile: float = 0.01  # share of reference items deemed "far" by construction
    min_tail_count: int = 10  # raise the quantile on small references so τ rests on ≥ this many rows
    calibration_fraction: float = 0.5  # of the reference, when prototypes are derived from it
    n_clusters: int = 32  # k-means prototypes when no labels and no model prototypes exist
    max_reference: int | None = 10000
    max_current: int | None = None
    max_kmeans_rows: int = 3000


def derive_prototypes(
    x: np.ndarray, labels: np.ndarray | None, n_clusters: int, seed: int, max_rows: int = 3000
) -> tuple[np.ndarray, str]:
    """Class centres from labels when available, else k-means centroids; L2-normalised."""
    if labels is not None:
        lab = np.asarray(labels, dtype=object)
        ok = ~np.array([is_missing(v) for v in lab], dtype=bool)
        if ok.sum() >= 2:
            classes = sorted(set(lab[ok].tolist()))
            protos = np.stack([x[ok][lab[ok] == c].mean(0) for c in classes])
            return l2_normalise(protos), "labels"
    rng = np.random.default_rng(seed)
    xs = l2_normalise(subsample(x, max_rows, rng))
    k = max(1, min(n_clusters, xs.shape[0] // 5))
    return spherical_kmeans(xs, k, rng), "kmeans"


def spherical_kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 15) -> np.ndarray:
    """Lloyd iterations on the unit sphere (cosine assignment), k-means++-style seeding.

    Small and deterministic given ``rng``; sklearn's KMeans costs ~1 s here for no better prototypes.
    """
    n = x.shape[0]
    centres = [x[rng.integers(n)]]
    best = 1.0 - x @ centres[0]
    for _ in range(1, k):
        w = np.clip(best, 0, None) ** 2
        i = rng.choice(n, p=w / w.sum()) if w.sum() > 0 else rng.integers(n)
        centres.append(x[i])
        best = np.minimum(best, 1.0 - x @ x[i])
    c = np.stack(centres)
    for _ in range(iterations):
        assign = (x @ c.T).argmax(1)
        onehot = np.zeros((k, n), dtype=np.float32)
        onehot[assign, np.arange(n)] = 1.0
        sums = onehot @ x
        empty = np.bincount(assign, minlength=k) == 0
        sums[empty] = c[empty]  # keep a centre that lost all its rows
        c = l2_normalise(sums)
    return c


def nearest_similarity(x: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    return (l2_normalise(x) @ prototypes.T).max(1)


def novelty_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    prototypes: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    config: NoveltyConfig = NoveltyConfig(),
    seed: int = 0,
) -> DetectorResult:
    from scipy.stats import betabinom

    rng = np.random.default_rng(seed)
    ref, cur = check_pair(reference, current, min_rows=4)
    if reference_labels is not None:
        reference_labels = np.asarray(reference_labels, dtype=object)
        if len(reference_labels) != ref.shape[0]:
            reference_labels = None
    if config.max_reference is not None and ref.shape[0] > config.max_reference:
        keep = np.sort(rng.choice(ref.shape[0], config.max_reference, replace=False))
        ref = ref[keep]
        reference_labels = reference_labels[keep] if reference_labels is not None else None
    cur = subsample(cur, config.max_current, rng)

    if prototypes is not None and len(prototypes):
        protos, source = l2_normalise(np.asarray(prototypes, dtype=np.float32)), "model"
        calib = ref
    else:
        # prototypes built from the reference are closer to the rows they were built from, so
        # calibrate on a disjoint part
        idx = rng.permutation(ref.shape[0])
        n_build = min(ref.shape[0] - 2, max(2, round((1 - config.calibration_fraction) * ref.shape[0])))
        build = idx[:n_build]
        labels_build = reference_labels[build] if reference_labels is not None else None
        protos, source = derive_prototypes(ref[build], labels_build, config.n_clusters, seed, config.max_kmeans_rows)
        calib = ref[idx[n_build:]]

    s_cal = np.sort(nearest_similarity(calib, protos))
    n_cal = len(s_cal)
    q = min(1.0, max(config.quantile, config.min_tail_count / n_cal))
    k = max(1, min(n_cal, math.ceil(q * n_cal)))
    tau = float(s_cal[k - 1])
    s_cur = nearest_similarity(cur, protos)
    count = int((s_cur <= tau).sum())
    n_cur = len(s_cur)
    # P(X >= count) under beta-binomial(n_cur, k, n_cal - k + 1)
    p_value = float(betabinom.sf(count - 1, n_cur, k, n_cal - k + 1)) if count > 0 else 1.0
    expected = k / (n_cal + 1)
    share = count / n_cur
    excess = max(share - expected, 0.0)
    return DetectorResult(
        name="novelty",
        statistic=share,
        p_value=min(1.0, p_value),
        effect=excess,
        effect_description=(
            f"{100 * share:.1f}% of current items are farther from every known class than "
            f"{100 * (1 - expected):.0f}% of reference items (expected {100 * expected:.1f}%); "
            f"excess {100 * excess:.1f}% may be new classes"
        ),
        n_reference=int(ref.shape[0]),
        n_current=n_cur,
        extra={
            "threshold_similarity": tau,
            "n_below": count,
            "expected_share": expected,
            "n_calibration": n_cal,
            "prototype_source": source,
            "n_prototypes": int(protos.shape[0]),
        },
    )
