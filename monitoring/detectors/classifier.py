"""Classifier two-sample test (Lopez-Paz & Oquab 2017): if a classifier trained to tell reference
from current rows ranks held-out current rows above held-out reference rows, the samples differ.

The held-out AUC equals the Mann–Whitney U statistic divided by (n_ref·n_cur); because the held-out
rows played no part in training, under "no drift" their scores are exchangeable and the U test's
p-value is exact (up to its normal approximation). The model is a linear classifier (shrinkage LDA,
i.e. a regularised logistic-regression-like linear rule in closed form): cheap, and linear shifts
are what embedding drift mostly looks like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitoring.detectors.base import DetectorResult, check_pair, subsample


@dataclass(frozen=True)
class ClassifierConfig:
    max_reference: int = 2000
    max_current: int = 2000
    train_fraction: float = 0.5


def classifier_test(
    reference: np.ndarray, current: np.ndarray, config: ClassifierConfig = ClassifierConfig(), seed: int = 0
) -> DetectorResult:
    from scipy.stats import mannwhitneyu
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(seed)
    ref, cur = check_pair(reference, current, min_rows=4)
    ref = subsample(ref, config.max_reference, rng)
    cur = subsample(cur, config.max_current, rng)

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.permutation(x.shape[0])
        k = min(max(1, int(round(config.train_fraction * x.shape[0]))), x.shape[0] - 1)
        return x[idx[:k]], x[idx[k:]]

    ref_tr, ref_te = split(ref)
    cur_tr, cur_te = split(cur)
    x_tr = np.concatenate([ref_tr, cur_tr])
    y_tr = np.concatenate([np.zeros(len(ref_tr)), np.ones(len(cur_tr))])
    # Fisher's linear discriminant with Ledoit–Wolf shrinkage: one regularised d×d solve, no
    # iterations (a logistic regression needs ~2 s to converge at this size, with no gain in power)
    clf = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    clf.fit(x_tr.astype(np.float64), y_tr)
    s_ref = clf.decision_function(ref_te.astype(np.float64))
    s_cur = clf.decision_function(cur_te.astype(np.float64))
    res = mannwhitneyu(s_cur, s_ref, alternative="greater")
    auc = float(res.statistic) / (len(s_cur) * len(s_ref))
    return DetectorResult(
        name="classifier",
        statistic=auc,
        p_value=float(res.pvalue),
        effect=auc,
        effect_description=(
            f"held-out AUC {auc:.3f} telling current from reference (0.5 = indistinguishable, 1 = disjoint)"
        ),
        n_reference=int(ref.shape[0]),
        n_current=int(cur.shape[0]),
        extra={"n_test_reference": len(s_ref), "n_test_current": len(s_cur), "model": "shrinkage_lda"},
    )
