"""The spectral null of quadratic-form statistics: exact where a closed form exists, and close to
many permutations where it does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitoring.detectors.mmd import rbf_kernel
from monitoring.detectors.null import (
    SpectrumPart,
    WeightedChiSquare,
    gaussian_quadratic_null,
    kernel_permutation_null,
    top_eigenvalues,
)
from tests.monitoring._data import centres, mixture


@pytest.mark.parametrize("x", [3.0, 10.0, 25.0, 60.0])
def test_saddlepoint_matches_a_scaled_chi_square_far_into_the_tail(x):
    q = WeightedChiSquare((0.5,) * 6)  # 0.5 · χ²₆
    exact = stats.chi2.sf(x / 0.5, 6)
    assert q.sf(x) == pytest.approx(exact, rel=0.03)
    assert q.mean == pytest.approx(3.0) and q.std == pytest.approx(np.sqrt(2 * 6 * 0.25))


def test_saddlepoint_matches_gamma_and_shift():
    q = WeightedChiSquare((), gamma_shape=4.0, gamma_scale=0.25, shift=1.0)
    for x in (1.5, 2.5, 5.0):
        assert q.sf(x) == pytest.approx(stats.gamma.sf(x - 1.0, 4.0, scale=0.25), rel=0.03)
    assert q.sf(0.5) == 1.0  # below the shift nothing is possible


def test_unequal_weights_against_monte_carlo():
    w = (3.0, 1.0, 0.5, 0.5, 0.1)
    q = WeightedChiSquare(w)
    rng = np.random.default_rng(0)
    draws = (rng.standard_normal((400_000, len(w))) ** 2) @ np.array(w)
    for tail in (0.05, 0.005, 0.0005):
        x = float(np.quantile(draws, 1 - tail))
        assert q.sf(x) == pytest.approx(tail, rel=0.15)


def test_top_eigenvalues_of_a_psd_matrix():
    rng = np.random.default_rng(1)
    c = centres(6, 16)
    x, _ = mixture(rng, 600, c)
    m, _ = rbf_kernel(x, 1000, rng)  # a kernel spectrum: decaying, as the detectors meet it
    m = m.astype(np.float64)
    exact = np.linalg.eigvalsh(m)[::-1][:8]
    got = top_eigenvalues(lambda v: m @ v, 600, 8, rng)
    assert got == pytest.approx(exact, rel=0.01)


def test_remainder_gamma_keeps_the_exact_mean_and_variance():
    rng = np.random.default_rng(2)
    ev = np.sort(rng.exponential(1.0, 50))[::-1]
    part = SpectrumPart(tuple(ev[:5]), float(ev.sum()), float((ev**2).sum()), scale=0.1)
    q = gaussian_quadratic_null([part])
    assert q.mean == pytest.approx(0.1 * ev.sum())
    assert q.std == pytest.approx(0.1 * np.sqrt(2 * (ev**2).sum()))
    assert len(q.weights) == 5


@pytest.mark.parametrize("sizes", [(150, 60), (400, 200)])
def test_kernel_null_tracks_the_permutation_distribution(sizes):
    """Quantiles of 40,000 permutations of sᵀKs against the approximation, at p = 0.05 … 0.001."""
    m, n = sizes
    rng = np.random.default_rng(3)
    c = centres(6, 16)
    x, _ = mixture(rng, m + n, c)
    kernel, _ = rbf_kernel(x, 1000, rng)
    null = kernel_permutation_null(kernel, m, n, rng)
    s = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)]).astype(np.float32)
    perms = np.argsort(rng.random((40_000, m + n)), axis=1)
    sp = s[perms].T
    draws = (sp * (kernel @ sp)).sum(0)
    assert null.mean == pytest.approx(float(draws.mean()), rel=0.01)  # the mean is exact
    for tail in (0.05, 0.01, 0.001):
        p = null.sf(float(np.quantile(draws, 1 - tail)))
        assert tail * 0.75 < p < tail * 1.6, (tail, p)  # close, and if anything conservative
