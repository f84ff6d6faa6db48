"""The neighbour-composition (emerging-cluster) detector: calibration, power, named rows, sizing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, hypergeom

from core.errors import ConfigError
from monitoring.config import DriftConfig
from monitoring.detectors.neighbourhood import (
    NeighbourhoodConfig,
    hypergeom_sf_table,
    knn_graph,
    neighbourhood_test,
    permutations_for,
)
from monitoring.suite import run_suite
from tests.monitoring._data import centres, mixture

TRIALS = 80
LEVEL = 0.1
BOUND = int(binom.ppf(0.999, TRIALS, LEVEL))
DIM = 16
C = centres(6, DIM)
FAST = NeighbourhoodConfig(permutations=199)


def _planted(seed: int, n_ref: int = 1200, n_known: int = 190, n_new: int = 10):
    rng = np.random.default_rng(seed)
    ref, _ = mixture(rng, n_ref, C[:5])
    cur_known, _ = mixture(rng, n_known, C[:5])
    cur_new, _ = mixture(rng, n_new, C[5:], spread=0.05)  # a tight new class: each other's neighbours
    return ref, cur_known, cur_new


def test_exchangeable_null_is_calibrated_and_not_vacuous():
    p = []
    for t in range(TRIALS):
        rng = np.random.default_rng(2000 + t)
        ref, _ = mixture(rng, 300, C)
        cur, _ = mixture(rng, 120, C)
        p.append(neighbourhood_test(ref, cur, FAST, seed=t).p_value)
    p = np.array(p)
    assert ((p > 0) & (p <= 1)).all()
    assert (p <= LEVEL).sum() <= BOUND, f"{(p <= LEVEL).sum()}/{TRIALS} false alarms at {LEVEL}"
    assert (p <= 0.5).sum() >= TRIALS * 0.25, "p-values pile up near 1"


def test_bound_catches_a_test_that_ignores_the_permutation_null():
    """Reading the count of current-crowded rows against a fixed cut (no permutation null) rejects
    far too often on clustered data: the calibration test above would see it."""
    rejections = 0
    for t in range(TRIALS):
        rng = np.random.default_rng(2000 + t)
        ref, _ = mixture(rng, 300, C)
        cur, _ = mixture(rng, 120, C)
        scan = neighbourhood_test(ref, cur, FAST, seed=t).extra["scan"]
        rejections += scan[0]["count"] > 0  # "any current row with ≥ 5 of 10 current neighbours"
    assert rejections > BOUND


def test_finds_a_planted_new_class_and_names_its_rows():
    ref, cur_known, cur_new = _planted(8)
    cur = np.concatenate([cur_known, cur_new])  # 5% of the batch from an unseen class, no labels
    r = neighbourhood_test(ref, cur, alpha=0.01, n_tests=6, seed=0)
    assert r.p_value <= 0.01 / 6, r  # Holm over six detectors at α = 0.01 can fire
    assert 0.03 < r.effect < 0.07  # about the planted 5%
    named = r.extra["novel_rows"]
    assert len(named) >= 8 and set(named) <= set(range(190, 200))
    scores = r.extra["novel_row_scores"]
    assert scores == sorted(scores, reverse=True) and all(s >= 0.7 for s in scores)
    quiet = neighbourhood_test(ref, cur_known, seed=0)
    assert quiet.p_value > 0.05 and abs(quiet.effect) < 0.01 and quiet.extra["novel_rows"] == []


def test_row_indices_survive_subsampling_of_the_current_batch():
    rng = np.random.default_rng(12)
    ref, _ = mixture(rng, 1600, C[:5])
    cur_known, _ = mixture(rng, 370, C[:5])
    cur_new, _ = mixture(rng, 30, C[5:], spread=0.05)
    cur = np.concatenate([cur_new, cur_known])  # novel rows first: indices 0..29
    r = neighbourhood_test(ref, cur, NeighbourhoodConfig(max_current=200, permutations=199), seed=1)
    assert r.n_current == 200
    assert r.extra["novel_rows"] and set(r.extra["novel_rows"]) <= set(range(30))


def test_reference_is_subsampled_to_the_configured_ratio():
    ref, cur_known, _ = _planted(3)
    for ratio in (1.0, 4.0):
        r = neighbourhood_test(ref, cur_known, NeighbourhoodConfig(reference_ratio=ratio, permutations=99))
        assert r.n_reference == round(ratio * len(cur_known))
        # the null share of current neighbours follows the ratio
        assert r.extra["expected_current_neighbours"] == pytest.approx(10 * (190 - 1) / (r.n_reference + 190 - 1))


def test_permutations_reach_ten_times_below_the_holm_threshold():
    for alpha, n_tests in ((0.05, 4), (0.01, 6), (0.001, 7)):
        b = permutations_for(alpha, n_tests)
        assert 1.0 / (b + 1) <= alpha / n_tests / 10 < 1.0 / b
    ref, cur_known, cur_new = _planted(5)
    r = neighbourhood_test(ref, np.concatenate([cur_known, cur_new]), alpha=0.01, n_tests=6)
    assert r.extra["permutations"] == permutations_for(0.01, 6)
    explicit = neighbourhood_test(ref, cur_known, NeighbourhoodConfig(permutations=49))
    assert explicit.extra["permutations"] == 49 and explicit.p_value >= 1 / 50
    with pytest.raises(ConfigError, match="alpha=1.5"):
        permutations_for(1.5, 3)


def test_knn_graph_excludes_self_and_finds_nearest():
    x = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.1, 0.99]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    g = knn_graph(x, 1)
    assert g[:, 0].tolist() == [1, 0, 3, 2]


def test_hypergeometric_tail_matches_scipy():
    got = hypergeom_sf_table(2499, 499, 10)
    want = [hypergeom.sf(c - 1, 2499, 499, 10) for c in range(11)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


def test_suite_runs_it_only_when_configured_and_names_its_rows_by_id():
    ref, cur_known, cur_new = _planted(9)
    cur = np.concatenate([cur_known, cur_new])
    ids = [f"item{i}" for i in range(len(cur))]
    default = run_suite(ref, cur, current_ids=ids)
    assert "neighbourhood" not in default.detectors
    cfg = DriftConfig(detectors=("mmd", "novelty", "neighbourhood"))
    res = run_suite(ref, cur, config=cfg, current_ids=ids)
    nb = res.detectors["neighbourhood"]
    # permutations sized for Holm over the three configured detectors at the config's α
    assert nb.extra["permutations"] == permutations_for(cfg.alpha, 3)
    named = [n for n in res.novel_items() if n["detector"] == "neighbourhood"]
    assert named and {n["item_id"] for n in named} <= {f"item{i}" for i in range(190, 200)}
    assert [n["rank"] for n in res.novel_items()] == list(range(1, len(res.novel_items()) + 1))
    assert "neighbourhood" in res.decision.acting  # significant and above its floor
