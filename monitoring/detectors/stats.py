"""Light statistics for the detectors: numpy and ``scipy.special`` only.

``scipy.stats``, ``scipy.optimize`` and ``sklearn`` cost ~1.5 s of import per ``steward`` command
(benchmarks/RESULTS.md, "Command wall time"), while the detectors need only a handful of their
functions. Each function here follows the library's own formula step by step (the source it mirrors
is named), so results agree with it to rounding (tests/monitoring/test_stats.py compares them);
the few branches not worth re-implementing (exact small-sample distributions) import the library
lazily, and are rare on the detectors' path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

from core.errors import StewardError, ValidationError
from monitoring.detectors.kolmogorov import kolmogorov_sf


def ledoit_wolf(X: np.ndarray, assume_centered: bool = True) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf shrunk covariance and its shrinkage, as ``sklearn.covariance.ledoit_wolf``.

    Mirrors sklearn's ``ledoit_wolf_shrinkage`` / ``_ledoit_wolf`` (block_size 1000: for fewer than
    1000 features its block loop is the single full product done here, so the sums are the same).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if not assume_centered:
        X = X - X.mean(0)
    n, p = X.shape
    X2 = X**2
    emp_cov_trace = np.sum(X2, axis=0) / n
    mu = np.sum(emp_cov_trace) / p
    if p < 1000:
        beta_ = float(np.sum(np.dot(X2.T, X2)))
        delta_ = float(np.sum(np.dot(X.T, X) ** 2))
    else:  # bound the temporaries like sklearn's blocks (sums may then differ in the last bits)
        beta_ = delta_ = 0.0
        for start in range(0, p, 1000):
            rows = slice(start, start + 1000)
            beta_ += float(np.sum(np.dot(X2.T[rows], X2)))
            delta_ += float(np.sum(np.dot(X.T[rows], X) ** 2))
    delta_ /= n**2
    beta = 1.0 / (p * n) * (beta_ / n - delta_)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + p * mu**2) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else float(beta / delta)
    emp_cov = np.dot(X.T, X) / n
    mu = np.sum(np.trace(emp_cov)) / p
    cov = (1.0 - shrinkage) * emp_cov
    cov.flat[:: p + 1] += shrinkage * mu
    return cov, shrinkage


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average rank, and the size of every tie group."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    new_group = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    starts = np.flatnonzero(new_group)
    counts = np.diff(np.append(starts, values.size))
    # a group occupying sorted positions s..s+c-1 (0-based) has average rank s + (c + 1) / 2
    group_rank = starts + (counts + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, counts)
    return ranks, counts


def mann_whitney_greater(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mann–Whitney U of ``x`` and its one-sided p-value for "x tends to be greater than y".

    Same as ``scipy.stats.mannwhitneyu(x, y, alternative="greater")`` (method "auto"): the normal
    approximation with continuity and tie corrections, except that small samples without ties
    (either side ≤ 8 rows) get scipy's exact distribution, imported lazily (a rare path here).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0 or np.isnan(x).any() or np.isnan(y).any():
        raise ValidationError(
            f"Mann–Whitney needs non-empty samples without NaN (got {x.size} and {y.size} values); "
            "drop missing scores first"
        )
    n1, n2 = x.size, y.size
    ranks, ties = _average_ranks(np.concatenate([x, y]))
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    if not (n1 > 8 and n2 > 8) and not (ties > 1).any():
        from scipy.stats import mannwhitneyu  # exact distribution: small samples, no ties

        res = mannwhitneyu(x, y, alternative="greater")
        return float(res.statistic), float(res.pvalue)
    n = n1 + n2
    t = ties.astype(np.float64)
    tie_term = float(np.sum(t**3 - t))
    s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    numerator = u1 - n1 * n2 / 2 - 0.5  # continuity correction
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.float64(numerator) / np.float64(s)
    p = float(special.ndtr(-z))
    return u1, min(1.0, max(0.0, p))


def kolmogorov_ppf(q: float) -> float:
    """Quantile of the limiting Kolmogorov distribution (``scipy.stats.kstwobign.ppf``)."""
    return float(special.kolmogi(1.0 - q))


def ks_2samp_asymp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided two-sample KS distance and p-value, as ``scipy.stats.ks_2samp(a, b, method="asymp")``.

    scipy's "asymp" p-value is the one-sample Kolmogorov distribution's survival function at
    ``n = round(n1·n2/(n1+n2))`` (``kstwo.sf``), ported in :mod:`monitoring.detectors.kolmogorov`.
    """
    data1, data2 = np.sort(a), np.sort(b)
    n1, n2 = data1.shape[0], data2.shape[0]
    if min(n1, n2) == 0:
        raise ValidationError("the KS test needs non-empty samples; got an empty side")
    data_all = np.concatenate([data1, data2])
    cddiffs = np.searchsorted(data1, data_all, side="right") / n1 - np.searchsorted(
        data2, data_all, side="right"
    ) / n2
    min_s = float(np.clip(-cddiffs[np.argmin(cddiffs)], 0, 1))
    max_s = float(cddiffs[np.argmax(cddiffs)])
    d = max(max_s, min_s)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    prob = kolmogorov_sf(int(np.round(en)), d)
    return d, float(np.clip(prob, 0, 1))


def chi2_contingency(
    observed: np.ndarray, correction: bool = True
) -> tuple[float, float, int, np.ndarray]:
    """Pearson's chi-square test of independence, as ``scipy.stats.chi2_contingency`` (λ = 1):
    (statistic, p-value, degrees of freedom, expected counts); Yates' correction when dof == 1 and
    ``correction``; p = ``chdtrc(dof, statistic)`` (what ``chi2.sf`` evaluates)."""
    observed = np.asarray(observed)
    if np.any(observed < 0):
        raise ValidationError("chi-square counts must be non-negative; got a negative cell")
    if observed.size == 0:
        raise ValidationError("chi-square needs a non-empty table")
    obs = np.asarray(observed, dtype=np.float64)
    # scipy's expected_freq: the outer product of the margins over total ** (ndim - 1)
    margins = [obs.sum(axis=tuple(j for j in range(obs.ndim) if j != k), keepdims=True) for k in range(obs.ndim)]
    expected = margins[0]
    for m in margins[1:]:
        expected = expected * m
    expected = expected / obs.sum() ** (obs.ndim - 1)
    if np.any(expected == 0):
        raise ValidationError("chi-square expected counts have a zero cell; drop empty rows/columns first")
    dof = int(expected.size - sum(expected.shape) + expected.ndim - 1)
    if dof == 0:
        return 0.0, 1.0, 0, expected
    if dof == 1 and correction:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    terms = (np.asarray(observed, dtype=np.float64) - expected) ** 2 / expected
    stat = float(np.sum(terms))
    return stat, float(special.chdtrc(dof, stat)), dof, expected


def betabinom_sf(k: int, n: int, a: float, b: float) -> float:
    """P(X > k) for X ~ BetaBinomial(n, a, b), as ``scipy.stats.betabinom.sf``.

    Sums the upper tail's pmf in log space (scipy computes 1 − cdf: equal to ~1e-15 absolute, and
    this keeps its relative accuracy where the tail is far below 1e-15).
    """
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    j = np.arange(k + 1, n + 1, dtype=np.float64)
    log_comb = -np.log(n + 1.0) - special.betaln(n - j + 1, j + 1)
    log_pmf = log_comb + special.betaln(j + a, n - j + b) - special.betaln(a, b)
    return float(min(1.0, math.exp(float(special.logsumexp(log_pmf)))))


def normal_sf(x: float) -> float:
    """P(Z ≥ x) for a standard normal Z."""
    return float(special.ndtr(-x))


def normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def brentq(
    f: Callable[[float], float], xa: float, xb: float, xtol: float = 2e-12, rtol: float = 4 * np.finfo(float).eps,
    maxiter: int = 100,
) -> float:
    """A root of ``f`` in [xa, xb] (signs must differ) by Brent's method.

    A line-by-line port of scipy's C ``brentq`` (scipy/optimize/Zeros/brentq.c), so it takes the
    same steps and returns the same root as ``scipy.optimize.brentq``.
    """
    xpre, xcur = float(xa), float(xb)
    xblk = fblk = spre = scur = 0.0
    fpre, fcur = f(xpre), f(xcur)
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    if math.copysign(1.0, fpre) == math.copysign(1.0, fcur):
        raise StewardError(f"brentq: f({xa}) = {fpre} and f({xb}) = {fcur} have the same sign; widen the bracket")
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and math.copysign(1.0, fpre) != math.copysign(1.0, fcur):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # extrapolate
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):  # good short step
                spre, scur = scur, stry
            else:  # bisect
                spre = scur = sbis
        else:  # bisect
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = f(xcur)
    raise StewardError(f"brentq did not converge in {maxiter} iterations on [{xa}, {xb}]; raise maxiter")
