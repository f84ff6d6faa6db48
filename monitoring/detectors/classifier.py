"""Classifier two-sample test (Lopez-Paz & Oquab 2017): if a classifier trained to tell reference
from current rows ranks held-out current rows above held-out reference rows, the samples differ.

The held-out AUC equals the Mann–Whitney U statistic divided by (n_ref·n_cur); because the held-out
rows played no part in training, under "no drift" their scores are exchangeable and the U test's
p-value is exact (up to its normal approximation). The model is a linear classifier (shrinkage LDA,
i.e. a regularised logistic-regression-like linear rule in closed form): cheap, and linear shifts
are what embedding drift mostly looks like.

Effect (one scale): held-out AUC − 0.5 (0 = indistinguishable, 0.5 = disjoint); its no-drift mean is
0 whatever the batch sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitoring.detectors.base import DetectorResult, check_pair, subsample
from monitoring.detectors.stats import ledoit_wolf, mann_whitney_greater


@dataclass(frozen=True)
class ClassifierConfig:
    max_reference: int = 2000
    max_current: int = 2000
    train_fraction: float = 0.5


def classifier_test(
    reference: np.ndarray, current: np.ndarray, config: ClassifierConfig = ClassifierConfig(), seed: int = 0
) -> DetectorResult:
    rng = np.random.default_rng(seed)
    ref, cur = check_pair(reference, current, min_rows=4)
    ref = subsample(ref, config.max_reference, rng)
    cur = subsample(cur, config.max_current, rng)

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.permutation(x.shape[0])
        k = min(max(1, round(config.train_fraction * x.shape[0])), x.shape[0] - 1)
        return x[idx[:k]], x[idx[k:]]

    ref_tr, ref_te = split(ref)
    cur_tr, cur_te = split(cur)
    # Fisher's linear discriminant with Ledoit–Wolf shrinkage: one regularised d×d solve, no
    # iterations (a logistic regression needs ~2 s to converge at this size, with no gain in power)
    m0, m1 = ref_tr.mean(0, dtype=np.float64), cur_tr.mean(0, dtype=np.float64)
    within = np.concatenate([ref_tr - m0, cur_tr - m1]).astype(np.float64)
    cov, _ = ledoit_wolf(within, assume_centered=True)
    w = np.linalg.solve(cov, m1 - m0)
    s_ref = ref_te.astype(np.float64) @ w
    s_cur = cur_te.astype(np.float64) @ w
    u, p_value = mann_whitney_greater(s_cur, s_ref)
    auc = u / (len(s_cur) * len(s_ref))
    return DetectorResult(
        name="classifier",
        statistic=auc,
        p_value=p_value,
        effect=auc - 0.5,
        effect_description=(
            f"held-out AUC {auc:.3f} telling current from reference: {auc - 0.5:+.3f} above chance "
            "(0 = indistinguishable, 0.5 = disjoint)"
        ),
        n_reference=int(ref.shape[0]),
        n_current=int(cur.shape[0]),
        extra={"n_test_reference": len(s_ref), "n_test_current": len(s_cur), "model": "shrinkage_lda"},
    )
