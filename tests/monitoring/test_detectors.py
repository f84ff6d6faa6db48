"""Calibration (false-alarm rate under no drift) and power of each detector, at small seeded scale.

The calibration bound: with T trials at level a, a correct test rejects Binomial(T, ≤a) times, so
more than the binomial 99.9% quantile means the test is broken (a 1-in-1000 flake for a correct one,
but the seeds are fixed so it is deterministic). The "broken" variants below show the bound has teeth.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from core.errors import ValidationError
from monitoring.detectors.classifier import ClassifierConfig, classifier_test
from monitoring.detectors.ks import KSConfig, combine_pvalues, ks_test
from monitoring.detectors.labels import label_shift_test, prototype_displacement_test
from monitoring.detectors.mmd import MMDConfig, mmd_test
from monitoring.detectors.novelty import NoveltyConfig, novelty_test
from tests.monitoring._data import centres, mixture

TRIALS = 80
LEVEL = 0.1
BOUND = int(binom.ppf(0.999, TRIALS, LEVEL))  # 17 of 80
DIM = 16
C = centres(6, DIM)


def null_pvalues(run, trials: int = TRIALS, n_ref: int = 300, n_cur: int = 120) -> np.ndarray:
    out = []
    for t in range(trials):
        rng = np.random.default_rng(1000 + t)
        ref, _ = mixture(rng, n_ref, C)
        cur, _ = mixture(rng, n_cur, C)
        out.append(run(ref, cur, t))
    return np.array(out)


DETECTORS = {
    "mmd": lambda r, c, s: mmd_test(r, c, MMDConfig(n_permutations=99), seed=s).p_value,
    "classifier": lambda r, c, s: classifier_test(r, c, ClassifierConfig(), seed=s).p_value,
    "ks": lambda r, c, s: ks_test(r, c, KSConfig(n_components=8), seed=s).p_value,
    "novelty": lambda r, c, s: novelty_test(r, c, config=NoveltyConfig(n_clusters=6), seed=s).p_value,
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_false_alarm_rate_within_binomial_bound(name):
    p = null_pvalues(DETECTORS[name])
    assert ((p >= 0) & (p <= 1)).all()
    rejections = int((p <= LEVEL).sum())
    assert rejections <= BOUND, f"{name}: {rejections}/{TRIALS} false alarms at level {LEVEL}"
    # and not vacuous: a test that never rejects would also pass the bound
    assert (p <= 0.5).sum() >= TRIALS * 0.25, f"{name} p-values pile up near 1"


def test_bound_catches_a_broken_novelty_test():
    """Calibrating the threshold on the rows that built the prototypes (and using a plain
    binomial) makes reference rows look closer than fresh rows: the bound must reject that."""
    from scipy.stats import binom as b

    from monitoring.detectors.novelty import derive_prototypes, nearest_similarity

    def broken(ref, cur, seed):
        protos, _ = derive_prototypes(ref, None, 24, seed)
        s_ref = nearest_similarity(ref, protos)
        tau = np.quantile(s_ref, 0.05)
        count = int((nearest_similarity(cur, protos) <= tau).sum())
        return float(b.sf(count - 1, len(cur), 0.05))

    p = null_pvalues(broken, n_ref=150)
    assert (p <= LEVEL).sum() > BOUND


def test_bound_catches_uncorrected_ks_components():
    def broken(ref, cur, seed):  # min p over 8 components without Bonferroni
        r = ks_test(ref, cur, KSConfig(n_components=8), seed=seed)
        return min(r.extra["component_p_values"])

    p = null_pvalues(broken)
    assert (p <= LEVEL).sum() > BOUND


def test_detectors_find_a_planted_mean_shift():
    rng = np.random.default_rng(7)
    ref, _ = mixture(rng, 400, C)
    shift = np.zeros(DIM)
    shift[0] = 0.35
    cur, _ = mixture(rng, 200, C, shift=shift)
    for name, run in DETECTORS.items():
        if name == "novelty":
            continue  # a shift of known classes is not novelty
        assert run(ref, cur, 0) <= 0.011, name  # 0.01 is the smallest p with 99 permutations


def test_novelty_finds_planted_new_classes_that_barely_move_the_mean():
    rng = np.random.default_rng(8)
    known, new = C[:5], C[5:]
    ref, ref_y = mixture(rng, 1200, known)
    cur_known, _ = mixture(rng, 190, known)
    cur_new, _ = mixture(rng, 10, new)  # 5% of the batch from an unseen class
    cur = np.concatenate([cur_known, cur_new])
    r = novelty_test(ref, cur, reference_labels=ref_y, seed=0)
    assert r.p_value < 0.001, r
    assert r.extra["prototype_source"] == "labels"
    assert r.effect > 0.03
    # without labels it falls back to k-means prototypes and still sees them
    r2 = novelty_test(ref, cur, config=NoveltyConfig(n_clusters=10), seed=0)
    assert r2.extra["prototype_source"] == "kmeans"
    assert r2.p_value < 0.01
    # and with model prototypes
    r3 = novelty_test(ref, cur, prototypes=known, seed=0)
    assert r3.extra["prototype_source"] == "model" and r3.p_value < 0.001


def test_label_shift_and_displacement():
    rng = np.random.default_rng(9)
    ref, ry = mixture(rng, 600, C)
    w = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    cur, cy = mixture(rng, 300, C, weights=w)
    ls = label_shift_test(ry, cy)
    assert ls is not None and ls.p_value < 1e-6 and ls.effect > 0.2
    # a pure prior shift does not move class centres: displacement stays quiet
    pd_ = prototype_displacement_test(ref, cur, ry, cy, seed=0)
    assert pd_ is not None and pd_.p_value > 0.01
    # same mix, moved classes: displacement fires, label shift does not
    shift = np.zeros(DIM)
    shift[1] = 0.3
    cur2, cy2 = mixture(rng, 300, C, shift=shift)
    assert prototype_displacement_test(ref, cur2, ry, cy2, seed=0).p_value < 0.01
    assert label_shift_test(ry, cy2).p_value > 0.01


def test_label_detectors_skip_unlabelled():
    assert label_shift_test(np.array([None, None]), np.array(["a"])) is None
    x = np.ones((3, 4), dtype=np.float32)
    assert prototype_displacement_test(x, x, np.array([None] * 3), np.array([None] * 3)) is None


def test_results_carry_sizes_and_readable_effect():
    rng = np.random.default_rng(3)
    ref, _ = mixture(rng, 3000, C)
    cur, _ = mixture(rng, 500, C)
    r = mmd_test(ref, cur, MMDConfig(n_permutations=20, max_reference=1000, max_current=1000))
    assert (r.n_reference, r.n_current) == (1000, 500)  # the stated cap applies
    assert r.extra["subsample_cap"] == [1000, 1000]
    assert "MMD²" in r.effect_description
    d = r.to_dict()
    assert set(d) >= {"name", "statistic", "p_value", "effect", "n_reference", "n_current"}
    assert 1 / 21 <= r.p_value <= 1.0  # permutation p-value can never be 0


def test_bad_inputs_raise_validation_errors():
    good = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(ValidationError, match="dims"):
        mmd_test(good, np.zeros((10, 5)))
    bad = good.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        ks_test(bad, good)
    with pytest.raises(ValidationError, match="2-D"):
        classifier_test(np.zeros(5), good)


def test_combine_pvalues():
    p = np.array([0.01, 0.2, 0.5, 0.9])
    assert combine_pvalues(p, "bonferroni") == pytest.approx(0.04)
    assert combine_pvalues(p, "bh") == pytest.approx(0.04)
    assert combine_pvalues(np.array([0.02, 0.021]), "bh") == pytest.approx(0.021)
