"""Classifier two-sample test (Lopez-Paz & Oquab 2017): if a classifier trained to tell reference
from current rows ranks held-out current rows above held-out reference rows, the samples differ.

The held-out AUC equals the Mann–Whitney U statistic divided by (n_ref·n_cur); because the held-out
rows played no part in training, under "no drift" their scores are exchangeable and the U test's
p-value is exact (up to its normal approximation). The model is a logistic regression: cheap, and
linear shifts are what embedding drift mostly looks like.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from monitoring.detectors.base import DetectorResult, check_pair, subsample


@dataclass(frozen=True)
class ClassifierConfig:
    max_reference: int = 2000
    max_current: int = 2000
    train_fraction: float = 0.5
    # features are standardised on the training split first, so C acts on comparable scales
    C: float = 1.0
    max_iter: int = 200


def classifier_test(
    reference: np.ndarray, current: np.ndarray, config: ClassifierConfig = ClassifierConfig(), seed: int = 0
) -> DetectorResult:
    from scipy.stats import mannwhitneyu
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

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
    # class_weight="balanced" so unequal sizes don't just teach the prior
    # embeddings have tiny per-dimension scales (L2-normalised rows); standardising makes one C fit all
    mu, sd = x_tr.mean(0), x_tr.std(0)
    sd = np.where(sd > 1e-6, sd, 1.0)  # constant dims (e.g. dead ReLU units) stay as they are
    clf = LogisticRegression(C=config.C, max_iter=config.max_iter, class_weight="balanced")
    with warnings.catch_warnings():
        # an unconverged fit only costs power: the held-out test stays valid for any fitted scorer
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit((x_tr - mu) / sd, y_tr)
    s_ref = clf.decision_function((ref_te - mu) / sd)
    s_cur = clf.decision_function((cur_te - mu) / sd)
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
        extra={"n_test_reference": len(s_ref), "n_test_current": len(s_cur), "model": "logistic_regression"},
    )
