"""Emerging clusters without labels: do current rows crowd together where the reference is thin?

A local two-sample test by neighbour composition (Schilling 1986; Henze 1988), aimed at the rows it
flags rather than the batch as a whole. It measures *relative density*, not distance: a class the
reference never saw may sit close to known classes (on MiniLM text embeddings it does; see
:mod:`monitoring.detectors.novelty`), but its rows' nearest neighbours are its own class-mates, all
of them current rows.

1. The reference is subsampled to at most ``reference_ratio`` times the current rows, so a row's
   expected share of current neighbours is fixed whatever the reference size.
2. The cosine kNN graph of the pooled rows is built once (``k`` neighbours, self excluded).
3. Each current row counts how many of its ``k`` neighbours are current rows; without drift the
   count is about ``k · n_cur / (N − 1)``.
4. Batch statistic: for each threshold ``t`` in ``thresholds`` (shares of ``k``), the number of
   current rows whose count is ≥ t, standardised by its permutation mean and standard deviation;
   the largest standardised count over the thresholds is the scan statistic.
5. p-value: the ref/current membership is permuted over the *fixed* graph (under "no drift" the
   rows are exchangeable and the graph is a symmetric function of the pool, so this is an exact
   permutation test; only the recount is repeated). The number of permutations is sized from the
   level the decision needs (:func:`permutations_for`), so the smallest attainable p-value is ten
   times below α over the number of detectors and Holm can fire at α = 0.01.

Effect (one scale): the estimated share of current rows sitting in current-only neighbourhoods, the
share whose count is ≥ ``effect_threshold · k`` minus its permutation mean; about 0 without drift,
about the new class's share when its rows are each other's neighbours.

Which rows: per-row p-values from the hypergeometric law of one row's count under relabelling
(P(count ≥ c) drawing ``k`` of the other N − 1 rows, n_cur − 1 of them current), Benjamini–Hochberg
at ``fdr``, most current-crowded first. Rows of a cluster are dependent, so these name examples
rather than certify each one.

Measured (``benchmarks/drift.py --real --real-new-shares 0.05,0.1,0.2,0.3``, raw MiniLM space,
500-row batches against the 2,000 rows before them; sections ``drift_real_shares`` and
``drift_real_debian_shares``). Random-arrival batches: a new class is caught (acts, alone, α = 0.05)
in 26% / 68% / 100% / 100% of checks at a 5 / 10 / 20 / 30% share on the docstrings (160 checks each)
and 51% / 86% / 100% / 100% on the Debian descriptions (97), against 0 / 1 / 21 / 71% and 1 / 6 / 34 /
86% for the shipped unlabelled decision and at most 19% for ``novelty``; random-split nulls are
significant in 3/160 and 2/97 checks (α = 0.05). So the smallest share caught in ≥ 90% of random
batches is 20% on both corpora (the shipped decision: none up to 30%). A 5% class is missed mostly
because its rows do not crowd: its median effect is 0.001-0.005, i.e. most of the class's rows have
reference rows among their 10 nearest.

Limits: sub-populations the reference has not seen yet (a new sub-module of a known package, a new
source package) are current-only neighbourhoods too. On contiguous-slice batches the effect is
0.06-0.08 (median; q90 0.12-0.14) *without* a new class, as large as with a 5% or 10% one, so at a
floor below that every such batch acts (80/80 and 50/50 checks) and, since only accepted checks feed
the :class:`monitoring.decision.EffectBaseline`, the baseline never learns the stream. A floor above
the contiguous spread does not help either (offline, 3 streams per corpus: floor 0.15 → contiguous
nulls act 4-7%, a 5% class 4-7%, a 20% class 29-64%, random 5-10% never). Hence the detector is
opt-in (``DriftConfig.detectors``), for streams whose batches are random draws of the traffic.
k from 3 to 20, reference ratios 1, 2 and 4 and a finer threshold grid moved random-arrival 5% power
between 17% and 29% (p ≤ 0.002, 24 checks): no setting reaches 90%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError
from monitoring.detectors.base import DetectorResult, check_pair, l2_normalise, subsample
from monitoring.detectors.novelty import benjamini_hochberg


@dataclass(frozen=True)
class NeighbourhoodConfig:
    k: int = 10  # neighbours per row in the pooled graph
    reference_ratio: float = 4.0  # reference rows kept per current row (fixes the null share)
    # graph cost grows with (1 + ratio)² · this² · dims; at 500 the 10k×384 vs 2k×384 check takes
    # 0.22 s on one loaded core with 1,399 permutations (1,000 took 1.2 s)
    max_current: int = 500
    thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)  # count thresholds as shares of k, scanned
    effect_threshold: float = 0.7  # "current-only neighbourhood": at least this share of k current
    permutations: int | None = None  # None: sized from α and the number of detectors
    max_permutations: int = 20_000
    fdr: float = 0.1
    max_rows_reported: int = 20
    chunk: int = 1024  # rows per similarity block (bounds memory)
    permutation_chunk: int = 500  # permutations recounted at once (bounds memory: N · k · this bytes)


def permutations_for(alpha: float, n_tests: int) -> int:
    """Permutations whose smallest p-value, 1/(B + 1), is ten times below α / n_tests."""
    if not 0.0 < alpha < 1.0 or n_tests < 1:
        raise ConfigError(f"alpha={alpha} must lie in (0, 1) and n_tests={n_tests} be ≥ 1")
    return math.ceil(10.0 * n_tests / alpha) - 1


def knn_graph(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Indices of each (L2-normalised) row's ``k`` most cosine-similar other rows (N × k)."""
    n = x.shape[0]
    k = max(1, min(k, n - 1))
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        sims = x[start : start + chunk] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # a row is not its own neighbour
        out[start : start + chunk] = np.argpartition(sims, n - k, axis=1)[:, -k:]
    return out


def current_neighbour_counts(graph: np.ndarray, member: np.ndarray) -> np.ndarray:
    """For membership columns ``member`` (N × B, 1 = current), each row's current neighbours (N × B)."""
    counts = np.zeros(member.shape, dtype=np.int16)
    for j in range(graph.shape[1]):  # k gathers of contiguous rows: cheaper than one N × k × B array
        counts += member[graph[:, j]]
    return counts


def crowded_counts(graph: np.ndarray, member: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Per membership column, how many current rows have ≥ each cut current neighbours (len(cuts) × B)."""
    counts = current_neighbour_counts(graph, member)
    return np.stack([((counts >= c) & (member > 0)).sum(0) for c in cuts])


def hypergeom_sf_table(population: int, successes: int, draws: int) -> np.ndarray:
    """P(X ≥ c) for c = 0..draws, X the successes among ``draws`` taken from ``population``."""
    total = math.comb(population, draws)
    pmf = np.array([math.comb(successes, c) * math.comb(population - successes, draws - c) / total
                    for c in range(draws + 1)], dtype=np.float64)
    return np.clip(np.cumsum(pmf[::-1])[::-1], 0.0, 1.0)


def neighbourhood_test(
    reference: np.ndarray,
    current: np.ndarray,
    config: NeighbourhoodConfig = NeighbourhoodConfig(),
    seed: int = 0,
    *,
    alpha: float = 0.05,
    n_tests: int = 1,
) -> DetectorResult:
    """``alpha`` and ``n_tests`` (the decision's level and number of detectors) size the permutations
    when ``config.permutations`` is None."""
    rng = np.random.default_rng(seed)
    ref, cur = check_pair(reference, current, min_rows=4)
    cur_rows = np.arange(cur.shape[0])
    if cur.shape[0] > config.max_current:
        cur_rows = np.sort(rng.choice(cur.shape[0], config.max_current, replace=False))
        cur = cur[cur_rows]
    ref = subsample(ref, max(2, round(config.reference_ratio * cur.shape[0])), rng)
    m, n = ref.shape[0], cur.shape[0]
    total = m + n
    graph = knn_graph(l2_normalise(np.concatenate([ref, cur])), config.k, config.chunk)
    k = graph.shape[1]
    cuts = np.array(sorted({max(1, math.ceil(s * k - 1e-9)) for s in config.thresholds}), dtype=np.int16)
    effect_cut = max(1, math.ceil(config.effect_threshold * k - 1e-9))
    all_cuts = np.unique(np.append(cuts, effect_cut))

    member = np.zeros((total, 1), dtype=np.uint8)
    member[m:] = 1
    observed = crowded_counts(graph, member, all_cuts)[:, 0].astype(np.float64)

    n_perm = config.permutations or min(config.max_permutations, permutations_for(alpha, n_tests))
    null = np.empty((len(all_cuts), n_perm), dtype=np.float64)
    for start in range(0, n_perm, config.permutation_chunk):
        b = min(config.permutation_chunk, n_perm - start)
        # b random memberships with exactly n current rows (independent shuffles of the observed one)
        perm = rng.permuted(np.broadcast_to(member[:, 0], (b, total)), axis=1)
        null[:, start : start + b] = crowded_counts(graph, np.ascontiguousarray(perm.T), all_cuts)

    mean, std = null.mean(1), null.std(1)
    scan = np.isin(all_cuts, cuts)
    safe = np.where(std > 0, std, 1.0)
    z_obs = np.where(std[scan] > 0, (observed[scan] - mean[scan]) / safe[scan], 0.0)
    z_null = np.where((std[scan] > 0)[:, None], (null[scan] - mean[scan, None]) / safe[scan, None], 0.0)
    statistic = float(z_obs.max())
    p_value = float((1 + int((z_null.max(0) >= statistic - 1e-12).sum())) / (n_perm + 1))

    e = int(np.flatnonzero(all_cuts == effect_cut)[0])
    effect = float((observed[e] - mean[e]) / n)

    counts = current_neighbour_counts(graph, member)[m:, 0].astype(int)
    sf = hypergeom_sf_table(total - 1, n - 1, k)
    p_rows = sf[counts]
    chosen = benjamini_hochberg(p_rows, config.fdr)
    chosen = chosen[np.argsort(-counts[chosen], kind="stable")]  # most current-crowded first
    shown = chosen[: config.max_rows_reported]
    expected = k * (n - 1) / (total - 1)
    return DetectorResult(
        name="neighbourhood",
        statistic=statistic,
        p_value=p_value,
        effect=effect,
        effect_description=(
            f"about {100 * effect:.1f}% of current items sit in current-only neighbourhoods: "
            f"{int(observed[e])} of {n} have ≥ {effect_cut} of their {k} nearest items from the current batch "
            f"(expected without drift {mean[e]:.1f}; a typical item has {expected:.1f}); "
            f"{len(chosen)} named at FDR {config.fdr}"
        ),
        n_reference=m,
        n_current=n,
        extra={
            "k": k,
            "permutations": n_perm,
            "expected_current_neighbours": expected,
            "scan": [{"at_least": int(c), "count": int(o), "null_mean": float(mu), "null_std": float(sd)}
                     for c, o, mu, sd in zip(all_cuts, observed, mean, std, strict=True)],
            "n_novel_rows": len(chosen),
            # indices into the current rows as passed in, most current-crowded first
            "novel_rows": [int(cur_rows[i]) for i in shown],
            "novel_row_p_values": [float(p_rows[i]) for i in shown],
            "novel_row_scores": [float(counts[i] / k) for i in shown],
        },
    )
