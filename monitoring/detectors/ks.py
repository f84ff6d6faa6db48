"""Per-component Kolmogorov–Smirnov tests on PCA projections (the "Failing Loudly" recipe).

The PCA basis is fitted on one random part of the reference and the KS tests compare the *rest*
of the reference with the current batch: projecting the very rows the basis was fitted on would
give them more variance along the top components than fresh rows have, and the tests would
false-alarm on small references. The component p-values are combined with Bonferroni (valid under
any dependence) or Benjamini–Hochberg/Simes (valid for independent or positively dependent tests).

Effect (one scale): the largest KS distance over the components minus the median of that maximum
without drift (≈ the median of the largest of k Kolmogorov variables × √(1/n_ref + 1/n_cur)); the
raw distance shrinks like 1/√n without drift, the excess does not depend on the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import ConfigError
from monitoring.detectors.base import DetectorResult, check_pair, subsample
from monitoring.detectors.stats import kolmogorov_ppf, ks_2samp_asymp


@dataclass(frozen=True)
class KSConfig:
    n_components: int = 20
    correction: Literal["bonferroni", "bh"] = "bonferroni"
    fit_fraction: float = 0.3  # share of the reference used only to fit the PCA basis
    max_fit_rows: int = 3000
    max_reference: int | None = 10000
    max_current: int | None = None


def combine_pvalues(p: np.ndarray, correction: str) -> float:
    """One global p-value from k component p-values."""
    k = len(p)
    if k == 0:
        return 1.0
    if correction == "bonferroni":
        return float(min(1.0, k * p.min()))
    if correction == "bh":
        ps = np.sort(p)
        return float(min(1.0, (ps * k / np.arange(1, k + 1)).min()))
    raise ConfigError(f"KS correction {correction!r} is unknown; use 'bonferroni' or 'bh'")


def top_directions(scatter: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 6):
    """The top-k eigenvectors (columns) and eigenvalues of a symmetric PSD matrix, by subspace
    iteration with 8 extra vectors and a final Rayleigh–Ritz step."""
    d = scatter.shape[0]
    p = min(d, k + 8)
    q, _ = np.linalg.qr(scatter @ rng.standard_normal((d, p)))
    for _ in range(iterations):
        q, _ = np.linalg.qr(scatter @ q)
    small = q.T @ scatter @ q
    w, v = np.linalg.eigh(0.5 * (small + small.T))
    order = np.argsort(w)[::-1][:k]
    return q @ v[:, order], np.clip(w[order], 0.0, None)


def null_median_max_ks(k: int, n_ref: int, n_cur: int) -> float:
    """Median of the largest of k independent two-sample KS distances without drift (asymptotic)."""
    return float(kolmogorov_ppf(0.5 ** (1.0 / k)) * np.sqrt(1.0 / n_ref + 1.0 / n_cur))


def ks_test(
    reference: np.ndarray, current: np.ndarray, config: KSConfig = KSConfig(), seed: int = 0
) -> DetectorResult:
    rng = np.random.default_rng(seed)
    ref, cur = check_pair(reference, current, min_rows=4)
    ref = subsample(ref, config.max_reference, rng)
    cur = subsample(cur, config.max_current, rng)
    idx = rng.permutation(ref.shape[0])
    n_fit = min(config.max_fit_rows, max(2, round(config.fit_fraction * ref.shape[0])))
    n_fit = min(n_fit, ref.shape[0] - 2)
    fit, ref_test = ref[idx[:n_fit]], ref[idx[n_fit:]]

    mean = fit.mean(0, dtype=np.float64)
    centred = (fit - mean).astype(np.float64)
    k = max(1, min(config.n_components, ref.shape[1], fit.shape[0] - 1))
    # only the top k directions are needed, and any basis that depends on the fit rows alone keeps
    # the tests valid: subspace iteration on the d×d scatter (LAPACK's subset eigh took ~2 s here,
    # sklearn's randomized_svd 0.1-0.3 s in its LU steps; this takes ~15 ms at 3,000×384)
    basis, eig = top_directions(centred.T @ centred, k, rng)
    explained = eig / max(float((centred**2).sum()), 1e-30)
    basis = basis.astype(np.float32)
    pr = (ref_test - mean.astype(np.float32)) @ basis
    pc = (cur - mean.astype(np.float32)) @ basis

    # scipy's "auto" picks the exact distribution up to 10k rows per side, which costs seconds
    # per component; the asymptotic one is accurate (slightly conservative) unless both sides are tiny
    method = "exact" if pr.shape[0] * pc.shape[0] <= 10_000 else "asymp"
    stats = np.empty(k)
    pvals = np.empty(k)
    if method == "exact":  # both sides tiny: scipy's exact distribution (imports scipy.stats, ~1 s)
        from scipy.stats import ks_2samp
    for j in range(k):
        if method == "exact":
            r = ks_2samp(pr[:, j], pc[:, j], method="exact")
            stats[j], pvals[j] = r.statistic, r.pvalue
        else:
            stats[j], pvals[j] = ks_2samp_asymp(pr[:, j], pc[:, j])
    p_global = combine_pvalues(pvals, config.correction)
    worst = int(np.argmax(stats))
    null_median = null_median_max_ks(k, pr.shape[0], pc.shape[0])
    effect = float(stats.max()) - null_median
    return DetectorResult(
        name="ks",
        statistic=float(stats.max()),
        p_value=p_global,
        effect=effect,
        effect_description=(
            f"largest KS distance {stats[worst]:.3f} on principal component {worst + 1} of {k}, "
            f"{effect:+.3f} beyond the {null_median:.3f} typical without drift (share of CDF mass moved)"
        ),
        n_reference=int(ref_test.shape[0]),
        n_current=int(cur.shape[0]),
        extra={
            "n_components": k,
            "correction": config.correction,
            "component_p_values": [float(x) for x in pvals],
            "component_statistics": [float(x) for x in stats],
            "explained_variance": float(explained.sum()),
            "n_fit": int(n_fit),
            "null_median_max_statistic": null_median,
        },
    )
