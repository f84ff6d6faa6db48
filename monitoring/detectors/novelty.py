"""Novelty without labels: are some current rows farther from the reference than reference rows are?

A new class that is a few percent of a batch barely moves the mean, the covariance or a kernel
statistic, but its rows sit far from every reference row. The test is conformal, row by row:

1. the reference is split at random into a *fit* part and a *calibration* part;
2. each calibration row and each current row gets a score: the mean cosine distance to its ``k``
   nearest fit rows (no row is scored against itself, so under "no drift" calibration and current
   scores are exchangeable);
3. a current row's conformal p-value is p_i = (1 + #{calibration scores ≥ s_i}) / (n_cal + 1).

The batch-level test scans a grid of tail shares q: with t_q the ⌈q·n_cal⌉-th largest calibration
score, the number of current rows beyond t_q is, without drift, *exactly* beta-binomial(n_cur, k_q,
n_cal − k_q + 1) (the threshold's own error is in the beta). The p-value is the smallest tail
probability over the grid times the grid size (Bonferroni), a Berk–Jones-style scan.

Why not Higher Criticism on the p_i: the p_i share one calibration set (dependent) and are discrete
(steps of 1/(n_cal + 1)), so HC calibrated under independent uniforms has no fixed level. Simulated
under the exact conformal null at a nominal 5% it rejected 2.3% (n_cal 1,000, n_cur 500), 1.6%
(5,000, 500) and 5.8% (1,500, 2,000): conservative when calibration outnumbers the batch, over the
level when the batch outnumbers calibration. The scan above is exact at any sizes, needs no
simulation and no cache.

Effect (one scale): the estimated share of novel rows, (f − q̂)/(1 − q̂) where f is the share of
current rows beyond the calibration's ``effect_share`` tail and q̂ its no-drift expectation; about
0 without drift, about the new class's share when its rows all lie beyond that tail.

Which rows: Benjamini–Hochberg on the p_i at ``fdr`` (valid for conformal p-values, Bates et al.
2023), most novel first, at most ``max_rows_reported`` of them.

Limits (measured, ``benchmarks/drift.py --real``): on MiniLM embeddings of package docstrings the
rows of a package the stream has never seen are hardly farther from the reference than rows of
known packages: 18% of them lie beyond the reference's 5% distance tail, against 5% of ordinary rows
and 8.5% of rows from unseen sub-modules of known packages. So a new package replacing 5% of a
500-row batch is not found without labels (as many contiguous batches act as without it; none of
200 random-arrival ones); zeroed or noise-drowned rows are (all of 280 batches, effect ≈ 0.1). The
effect is the share of rows beyond a distance tail, so it sees classes that sit apart, not ones that
blend in; labels (``label_shift``) see those.

The production model's space does not help (``benchmarks/drift.py --real --real-spaces
raw,raw_heldout,model``, sections ``drift_real_model`` and ``drift_real_model_kept``: a head trained
by ``continual_step`` on each reference window, or once and kept, the reference being the items it
never trained on, as ``monitoring.check`` picks them):
a metric head trained on the known packages maps a new package's rows *into* the known clusters, so
10-17% of them lie beyond the reference's 5% tail against 5-8% of ordinary rows (raw: 15-22% against
5-9%), and a 5% new class acts about as often as the contiguous null does. A count of tail rows needs
about three quarters of 25 new rows beyond the 5% tail to reach 90% power in a 500-row batch, so
no row-wise score gets there on this corpus. Tried offline (16 checks, raw and model space):
LOF-style density ratios, distance to the nearest class prototype and k from 1 to 20 moved the new
class's share beyond the 5% tail by at most 3 points over the mean 5-NN distance; an emerging-cluster
statistic (each current row's 10 nearest current rows averaged, that centroid's distance to the
reference, top 20) exceeded all four leave-one-batch-out reference nulls in 50% / 31% of checks
with a new class (contiguous / random) against 31% / 25% without one.

A relative-density test instead of a distance (:mod:`monitoring.detectors.neighbourhood`: how many of
each current row's nearest pooled rows are current, calibrated by permuting membership over the
fixed graph) catches a class that crowds together: on random-arrival batches a 20% new class acts
in 100% of checks, 5% in 26-51% (this detector, at 20%: 3% and 16%), but unseen sub-populations of
contiguous batches crowd just as much, so it is opt-in (``drift_real_shares``,
``drift_real_debian_shares``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitoring.detectors.base import DetectorResult, check_pair, l2_normalise
from monitoring.detectors.stats import betabinom_sf


@dataclass(frozen=True)
class NoveltyConfig:
    # k, calibration share and grid chosen on synthetic and digits new-class trials (1,000 vs 200
    # rows): k = 5 and half the reference for calibration found a 2% new class in 30/30 synthetic
    # trials where k = 10 with 30% found 10/30; four thresholds lose less to Bonferroni than seven
    k: int = 5  # neighbours averaged into a row's score
    calibration_fraction: float = 0.5  # of the (capped) reference, held out to calibrate
    max_fit: int = 4000  # reference rows the scores are measured against (cost: rows × this × dims)
    max_calibration: int = 1500
    max_current: int | None = 4000
    tail_shares: tuple[float, ...] = (0.002, 0.01, 0.05, 0.2)
    effect_share: float = 0.01
    fdr: float = 0.1
    max_rows_reported: int = 20
    chunk: int = 1024  # query rows per similarity block (bounds memory)


def knn_distance(queries: np.ndarray, base: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Mean cosine distance from each (L2-normalised) query row to its ``k`` nearest base rows."""
    k = max(1, min(k, base.shape[0]))
    out = np.empty(queries.shape[0], dtype=np.float64)
    for start in range(0, queries.shape[0], chunk):
        sims = queries[start : start + chunk] @ base.T
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[start : start + chunk] = 1.0 - top.mean(1, dtype=np.float64)
    return out


def conformal_p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """p_i = (1 + #{calibration ≥ s_i}) / (n_cal + 1): small when s_i is larger than most."""
    cal = np.sort(calibration)
    at_least = cal.size - np.searchsorted(cal, scores, side="left")
    return (1.0 + at_least) / (cal.size + 1.0)


def benjamini_hochberg(p: np.ndarray, fdr: float) -> np.ndarray:
    """Indices rejected by BH at level ``fdr``."""
    n = p.size
    if n == 0:
        return np.zeros(0, dtype=int)
    order = np.argsort(p, kind="stable")
    ok = p[order] <= fdr * np.arange(1, n + 1) / n
    if not ok.any():
        return np.zeros(0, dtype=int)
    last = int(np.flatnonzero(ok).max())
    return order[: last + 1]


def tail_scan(p: np.ndarray, n_cal: int, shares: tuple[float, ...]) -> tuple[float, list[dict]]:
    """Bonferroni-combined exact beta-binomial tail tests of the counts beyond several thresholds."""
    n_cur = p.size
    ks = sorted({max(1, min(n_cal, math.ceil(q * n_cal))) for q in shares})
    rows = []
    for k in ks:
        count = int((p <= k / (n_cal + 1.0) + 1e-12).sum())
        tail = betabinom_sf(count - 1, n_cur, k, n_cal - k + 1) if count > 0 else 1.0
        rows.append({"share": k / (n_cal + 1.0), "count": count, "expected": n_cur * k / (n_cal + 1.0),
                     "p_value": min(1.0, tail)})
    p_scan = min(1.0, len(ks) * min(r["p_value"] for r in rows)) if rows else 1.0
    return p_scan, rows


def novelty_test(
    reference: np.ndarray, current: np.ndarray, config: NoveltyConfig = NoveltyConfig(), seed: int = 0
) -> DetectorResult:
    rng = np.random.default_rng(seed)
    ref, cur = check_pair(reference, current, min_rows=4)
    ref, cur = l2_normalise(ref), l2_normalise(cur)
    cur_rows = np.arange(cur.shape[0])
    if config.max_current is not None and cur.shape[0] > config.max_current:
        cur_rows = np.sort(rng.choice(cur.shape[0], config.max_current, replace=False))
        cur = cur[cur_rows]

    idx = rng.permutation(ref.shape[0])
    n_cal = min(config.max_calibration, max(2, round(config.calibration_fraction * ref.shape[0])))
    n_cal = min(n_cal, ref.shape[0] - 2)
    n_fit = min(config.max_fit, ref.shape[0] - n_cal)
    calib, fit = ref[idx[:n_cal]], ref[idx[n_cal : n_cal + n_fit]]

    scores = knn_distance(np.concatenate([calib, cur]), fit, config.k, config.chunk)
    s_cal, s_cur = scores[:n_cal], scores[n_cal:]
    p_rows = conformal_p_values(s_cal, s_cur)
    p_value, scan = tail_scan(p_rows, n_cal, config.tail_shares)

    k_e = max(1, min(n_cal, math.ceil(config.effect_share * n_cal)))
    expected = k_e / (n_cal + 1.0)
    share = float((p_rows <= expected + 1e-12).mean())
    effect = (share - expected) / (1.0 - expected)

    chosen = benjamini_hochberg(p_rows, config.fdr)
    chosen = chosen[np.argsort(-s_cur[chosen], kind="stable")]  # most novel first
    shown = chosen[: config.max_rows_reported]
    best = min(scan, key=lambda r: r["p_value"]) if scan else {}
    return DetectorResult(
        name="novelty",
        statistic=share,
        p_value=p_value,
        effect=effect,
        effect_description=(
            f"about {100 * effect:.1f}% of current items look novel: {100 * share:.1f}% lie farther from "
            f"their {config.k} nearest reference items than {100 * (1 - expected):.0f}% of held-out "
            f"reference items do (expected {100 * expected:.1f}%); {len(chosen)} named at FDR {config.fdr}"
        ),
        n_reference=int(n_fit + n_cal),
        n_current=int(cur.shape[0]),
        extra={
            "n_fit": int(n_fit),
            "n_calibration": int(n_cal),
            "k": config.k,
            "share_beyond_threshold": share,
            "expected_share": expected,
            "scan": scan,
            "most_significant_share": best.get("share"),
            "n_novel_rows": len(chosen),
            # indices into the current rows as passed in, most novel first
            "novel_rows": [int(cur_rows[i]) for i in shown],
            "novel_row_p_values": [float(p_rows[i]) for i in shown],
            "novel_row_scores": [float(s_cur[i]) for i in shown],
        },
    )
