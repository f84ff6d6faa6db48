"""monitoring.detectors.stats against the libraries it stands in for (scipy.stats, sklearn)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import optimize as sopt
from scipy import stats as sst
from sklearn.covariance import ledoit_wolf as sk_ledoit_wolf

from core.errors import StewardError, ValidationError
from monitoring.detectors import stats as ls

RTOL = 1e-9  # holds for every comparison below (most agree to the last bit)
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("n,p,scale", [(5, 3, 1.0), (40, 10, 1e-3), (300, 64, 10.0), (50, 120, 1.0)])
def test_ledoit_wolf_matches_sklearn(n, p, scale):
    x = np.random.default_rng(n + p).standard_normal((n, p)) * scale
    x[:, 0] *= 5.0  # unequal variances, so the shrinkage is neither 0 nor 1
    for centred in (True, False):
        cov, s = ls.ledoit_wolf(x, assume_centered=centred)
        cov_ref, s_ref = sk_ledoit_wolf(x, assume_centered=centred)
        assert_allclose(s, s_ref, rtol=RTOL)
        assert_allclose(cov, cov_ref, rtol=RTOL, atol=1e-15 * scale**2)
    assert 0.0 < ls.ledoit_wolf(x)[1] < 1.0


def _mwu_cases():
    rng = np.random.default_rng(1)
    yield rng.standard_normal(30), rng.standard_normal(40)  # no ties, asymptotic
    yield rng.standard_normal(500) + 0.2, rng.standard_normal(700)  # drift
    yield rng.integers(0, 5, 25).astype(float), rng.integers(0, 5, 20).astype(float)  # heavy ties
    yield rng.integers(0, 3, 6).astype(float), rng.integers(0, 3, 4).astype(float)  # tiny with ties
    yield rng.standard_normal(5), rng.standard_normal(7)  # tiny without ties: exact (scipy, lazily)
    yield np.arange(20.0) + 100, np.arange(20.0)  # disjoint: p ~ 1e-8
    yield np.ones(10), np.ones(12)  # all tied


@pytest.mark.parametrize("x,y", list(_mwu_cases()))
def test_mann_whitney_matches_scipy(x, y):
    u, p = ls.mann_whitney_greater(x, y)
    ref = sst.mannwhitneyu(x, y, alternative="greater")
    assert u == float(ref.statistic)
    assert_allclose(p, float(ref.pvalue), rtol=RTOL)


def test_mann_whitney_rejects_nan():
    with pytest.raises(ValidationError, match="NaN"):
        ls.mann_whitney_greater(np.array([1.0, np.nan]), np.ones(3))


@pytest.mark.parametrize("n1,n2,shift,ties", [
    (200, 150, 0.0, False), (120, 90, 0.3, False), (1000, 1200, 0.05, False), (300, 300, 0.0, True),
    (90, 130, 1.5, False), (4000, 3000, 0.02, False), (101, 99, 0.0, True),
])
def test_ks_asymp_matches_scipy(n1, n2, shift, ties):
    rng = np.random.default_rng(n1 * n2)
    a, b = rng.standard_normal(n1), rng.standard_normal(n2) + shift
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    d, p = ls.ks_2samp_asymp(a, b)
    ref = sst.ks_2samp(a, b, method="asymp")
    assert d == float(ref.statistic)
    assert_allclose(p, float(ref.pvalue), rtol=RTOL, atol=1e-300)


def test_kolmogorov_sf_covers_every_branch():
    # Simard–L'Ecuyer switch between several algorithms by n and n·x²: hit each one
    for n in (1, 3, 10, 50, 140, 141, 1000, 20000, 200000):
        for x in (0.001, 0.4 / n, 0.8 / n, 1.5 / n, 0.02, 0.05, 0.1, 0.3, 0.6, 1.0 - 1e-9, 1.0):
            assert_allclose(ls.kolmogorov_sf(n, x), float(sst.kstwo.sf(x, n)), rtol=RTOL, atol=1e-300,
                            err_msg=f"n={n} x={x}")


@pytest.mark.parametrize("q", [0.01, 0.5, 0.5 ** (1 / 20), 0.999])
def test_kolmogorov_ppf_matches_kstwobign(q):
    assert_allclose(ls.kolmogorov_ppf(q), float(sst.kstwobign.ppf(q)), rtol=RTOL)


@pytest.mark.parametrize("table", [
    [[10, 20], [30, 25]],  # dof 1: Yates
    [[3, 1], [1, 3]],  # dof 1, corrections capped at |o - e|
    [[120, 80, 33, 7], [100, 95, 20, 15]],  # dof 3
    [[5, 9, 12], [7, 3, 8], [10, 10, 1]],  # 3×3
    [[4, 6], [8, 12]],  # independent exactly: statistic 0
])
def test_chi2_contingency_matches_scipy(table):
    t = np.array(table, dtype=float)
    for correction in (True, False):
        stat, p, dof, expected = ls.chi2_contingency(t, correction=correction)
        ref = sst.chi2_contingency(t, correction=correction)
        assert dof == ref.dof
        assert_allclose(stat, ref.statistic, rtol=RTOL, atol=1e-12)
        assert_allclose(p, ref.pvalue, rtol=RTOL)
        assert_allclose(expected, ref.expected_freq, rtol=RTOL)


def test_chi2_contingency_single_column_has_no_dof():
    assert ls.chi2_contingency(np.array([[3.0], [4.0]]))[:3] == (0.0, 1.0, 0)


@pytest.mark.parametrize("n,a,b", [(10, 1, 10), (200, 5, 96), (2000, 30, 971), (50, 1, 1)])
def test_betabinom_sf_matches_scipy(n, a, b):
    for k in sorted({-1, 0, 1, n // 10, n // 3, n // 2, n - 1, n}):
        mine, ref = ls.betabinom_sf(k, n, a, b), float(sst.betabinom.sf(k, n, a, b))
        # scipy computes 1 − Σ pmf (each pmf through exp(betaln…)), so it is accurate only to
        # ~1e-14·n absolute: in the tail it loses relative accuracy (6e-4 at 5.8e-10 below)
        assert_allclose(mine, ref, rtol=RTOL, atol=1e-14 * n, err_msg=f"k={k}")


@pytest.mark.parametrize("k,n,a,b", [(66, 200, 5, 96), (120, 2000, 30, 971), (60, 200, 1, 100)])
def test_betabinom_sf_keeps_relative_accuracy_in_the_tail(k, n, a, b):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    exact = mp.nsum(lambda j: mp.binomial(n, j) * mp.beta(j + a, n - j + b) / mp.beta(a, b), [k + 1, n])
    assert_allclose(ls.betabinom_sf(k, n, a, b), float(exact), rtol=1e-10)


def test_normal_helpers_match_scipy():
    for x in (-8.0, -1.3, 0.0, 0.7, 5.0, 30.0):
        assert_allclose(ls.normal_sf(x), sst.norm.sf(x), rtol=RTOL)
        assert_allclose(ls.normal_pdf(x), sst.norm.pdf(x), rtol=RTOL)


@pytest.mark.parametrize("f,lo,hi", [
    (lambda t: t**3 - 2 * t - 5, 2.0, 3.0),
    (lambda t: np.exp(-t) - t, -1.0, 2.0),
    (lambda t: np.tanh(50 * (t - 0.3)), 0.0, 1.0),
    (lambda t: 1.0 / (1.0 - 2.0 * t) - 3.0, -5.0, 0.5 * (1 - 1e-12)),  # a cgf' with a pole
])
def test_brentq_matches_scipy(f, lo, hi):
    mine = ls.brentq(f, lo, hi, xtol=1e-300, rtol=1e-13, maxiter=500)
    ref = sopt.brentq(f, lo, hi, xtol=1e-300, rtol=1e-13, maxiter=500)
    assert mine == ref  # the same steps, so the same root


def test_brentq_needs_a_bracket():
    with pytest.raises(StewardError, match="same sign"):
        ls.brentq(lambda t: t * t + 1.0, -1.0, 1.0)


_PROBE = """
import json, sys
import numpy as np
from monitoring.config import DriftConfig
from monitoring.suite import run_suite
rng = np.random.default_rng(0)
ref = rng.standard_normal((300, 16)).astype(np.float32)
cur = (rng.standard_normal((200, 16)) + 0.1).astype(np.float32)
ry = np.array([f"c{i % 4}" for i in range(300)], dtype=object)
cy = np.array([f"c{i % 5}" for i in range(200)], dtype=object)
r = run_suite(ref, cur, reference_labels=ry, current_labels=cy)
heavy = [m for m in ("scipy.stats", "scipy.optimize", "sklearn") if m in sys.modules]
print(json.dumps({"heavy": heavy, "detectors": sorted(r.detectors)}))
"""


def test_run_suite_imports_no_heavy_statistics():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(got["detectors"]) >= {"mmd", "ks", "classifier", "novelty", "label_shift", "prototype_displacement"}
    assert got["heavy"] == []
