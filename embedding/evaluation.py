"""Retrieval and clustering metrics, overall, for old/new classes and per class, plus forgetting
and cross-model compatibility.

Numbers come from pytorch-metric-learning's AccuracyCalculator (P@1, R-precision, MAP@R, NMI,
AMI) with two additions: Recall@K (share of queries with a correct item in their top K) and
``k`` set explicitly to at least the largest class size, without which MAP@R and R-precision are
silently wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_metric_learning.utils import accuracy_calculator as ac
from pytorch_metric_learning.utils.accuracy_calculator import (
    AccuracyCalculator,
    get_relevance_mask,
    maybe_get_avg_of_avgs,
)
from pytorch_metric_learning.utils.inference import FaissKMeans

from core.errors import ValidationError
from embedding.metrics import ClassMetrics, EvaluationReport, QueryScores, RetrievalMetrics, group_metrics

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
_BASE_METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def _recall_fn(k: int):
    def calculate(self, knn_labels, query_labels, not_lone_query_mask, label_counts, **kwargs):
        knn, q = knn_labels[not_lone_query_mask], query_labels[not_lone_query_mask]
        if len(q) == 0:
            return float("nan")
        hit = (knn[:, :k] == q[:, None]).any(dim=1).type(torch.float64)
        return maybe_get_avg_of_avgs(hit, q, self.avg_of_avgs, self.return_per_class)

    return calculate


def _per_query(values: torch.Tensor, not_lone_query_mask: torch.Tensor) -> np.ndarray:
    """Per-query values back in query order, NaN for lone queries (no other item of their class)."""
    out = np.full(len(not_lone_query_mask), np.nan)
    out[not_lone_query_mask.cpu().numpy()] = values.cpu().numpy()
    return out


class _Calculator(AccuracyCalculator):
    """AccuracyCalculator + recall_at_{1,5,10} and per-query AP@R and P@1 (library pattern:
    ``calculate_<name>`` methods). The per-query values are the library's own terms before it
    averages them (same kNN, relevance mask and label counts), so their mean is its MAP@R / P@1;
    the paired bootstrap of the promotion gate resamples them."""

    calculate_recall_at_1 = _recall_fn(1)
    calculate_recall_at_5 = _recall_fn(5)
    calculate_recall_at_10 = _recall_fn(10)

    def calculate_map_at_r_per_query(self, knn_labels, query_labels, not_lone_query_mask, ref_includes_query,
                                     label_counts, **kwargs):
        knn, q = knn_labels[not_lone_query_mask], query_labels[not_lone_query_mask][:, None]
        relevance, count_per_query = get_relevance_mask(knn.shape[:2], q, ref_includes_query, label_counts)
        correct = self.label_comparison_fn(q, knn) * relevance
        ranks = torch.arange(1, knn.shape[1] + 1, device=knn.device)
        precision = (torch.cumsum(correct, dim=1) * correct).type(torch.float64) / ranks
        return _per_query(torch.sum(precision * relevance, dim=1) / count_per_query, not_lone_query_mask)

    def calculate_p_at_1_per_query(self, knn_labels, query_labels, not_lone_query_mask, **kwargs):
        knn, q = knn_labels[not_lone_query_mask], query_labels[not_lone_query_mask][:, None]
        return _per_query(self.label_comparison_fn(q, knn[:, :1]).squeeze(1).type(torch.float64),
                          not_lone_query_mask)

    def requires_knn(self):
        return [*super().requires_knn(), "recall_at_1", "recall_at_5", "recall_at_10", "map_at_r_per_query",
                "p_at_1_per_query"]


def _kmeans(x: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Cluster labels for NMI/AMI. Small sets: scikit-learn with restarts (faiss with one restart
    lands in bad local optima there, and its OpenMP threads crawl on a busy CPU); large: faiss."""
    if len(x) <= 20_000:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=n_clusters, n_init=3, random_state=0).fit(x.cpu().numpy())
        return torch.as_tensor(km.labels_, dtype=torch.long)
    return FaissKMeans(niter=50, nredo=3, seed=1234, verbose=False)(x, n_clusters)


def _encode_labels(*label_arrays: np.ndarray) -> list[np.ndarray]:
    allowed = np.unique(np.concatenate([np.asarray(a).astype(str) for a in label_arrays]))
    return [np.searchsorted(allowed, np.asarray(a).astype(str)) for a in label_arrays]


EXACT_MAP_MAX_ITEMS = 2048  # above this, small_set_map_at_r falls back to retrieval_metrics (n x n similarities)


def small_set_map_at_r(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out MAP@R of L2-normalised ``embeddings`` (cosine): the value ``retrieval_metrics``
    reports, at a fraction of its cost on small sets.

    Training validates after every epoch on a few hundred items, where the default path's fixed cost
    (a faiss index per call, Recall@K, per-query scores) dominates. The metric is still the library's
    (``mean_average_precision`` at R); only the neighbour search is one dense inner-product top-k.
    """
    return SmallSetMapAtR.of(labels)(embeddings)


@dataclass(frozen=True)
class SmallSetMapAtR:
    """:func:`small_set_map_at_r` for one fixed set of labels: training scores the same validation
    items after every epoch, so their codes, per-class counts and the library's relevance mask (which
    of each query's k neighbours count towards its AP@R: the first R, R = its class size - 1) are
    worked out once. Only the neighbours' labels change between epochs."""

    labels: np.ndarray  # str (n,)
    codes: torch.Tensor | None  # int64 (n,); None: the set is scored through retrieval_metrics
    label_counts: tuple[torch.Tensor, torch.Tensor] | None  # the library's (labels, counts) pair
    k: int  # neighbours per query: the largest class size minus the query itself
    relevance: torch.Tensor | None = None  # bool (n, k): ac.get_relevance_mask's, for these labels
    count_per_query: torch.Tensor | None = None  # int64 (n,): R per query

    @classmethod
    def of(cls, labels: np.ndarray) -> SmallSetMapAtR:
        labels = np.asarray(labels).astype(str)
        _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if len(labels) > EXACT_MAP_MAX_ITEMS or counts.min() < 2:
            return cls(labels, None, None, 0)
        lab = torch.from_numpy(codes.astype(np.int64))
        label_counts = ac.get_label_match_counts(lab, lab, ac.EQUALITY)
        k = int(counts.max()) - 1
        relevance, count_per_query = ac.get_relevance_mask((len(lab), k), lab[:, None], True, label_counts)
        return cls(labels, lab, label_counts, k, relevance, count_per_query)

    def __call__(self, embeddings: np.ndarray) -> float:
        if self.codes is None:
            return retrieval_metrics(embeddings, self.labels, ks=(1,), clustering=False).map_at_r
        return self._mean(self._average_precisions(self._knn_labels(embeddings)))

    def with_classes(self, embeddings: np.ndarray) -> tuple[float, np.ndarray | None]:
        """The MAP@R and each class's own (sorted label order; None where the set is scored through
        retrieval_metrics), from one neighbour search."""
        if self.codes is None:
            return self(embeddings), None
        ap = self._average_precisions(self._knn_labels(embeddings))
        per_class = ac.maybe_get_avg_of_avgs(ap, self.codes[:, None], False, True)
        return self._mean(ap), np.asarray(per_class, dtype=np.float64)

    def with_queries(self, embeddings: np.ndarray) -> tuple[float, np.ndarray | None]:
        """The MAP@R and each query's AP@R (query order; None where the set is scored through
        retrieval_metrics), from one neighbour search: the terms the library averages."""
        if self.codes is None:
            return self(embeddings), None
        ap = self._average_precisions(self._knn_labels(embeddings))
        return self._mean(ap), ap.numpy()

    def _knn_labels(self, embeddings: np.ndarray) -> torch.Tensor:
        e = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        sim = e @ e.T
        sim.fill_diagonal_(-float("inf"))  # leave-one-out: an item is not its own neighbour
        return self.codes[torch.topk(sim, self.k, dim=1).indices]

    def _average_precisions(self, knn_labels: torch.Tensor) -> torch.Tensor:
        """Each query's AP@R, float64: ac.mean_average_precision's per-query terms (at_r) with the cached
        relevance mask, in its operations and order, so their mean is its MAP@R to the last bit."""
        correct = ac.EQUALITY(self.codes[:, None], knn_labels) * self.relevance
        ranks = torch.arange(1, knn_labels.shape[1] + 1).repeat(len(knn_labels), 1)
        precision = (torch.cumsum(correct, dim=1) * correct).type(torch.float64) / ranks
        return torch.sum(precision * self.relevance, dim=1) / self.count_per_query

    @staticmethod
    def _mean(average_precisions: torch.Tensor) -> float:
        return float(torch.mean(average_precisions).item())


def retrieval_metrics(query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray | None = None,
                      reference_labels: np.ndarray | None = None, *, ks: Sequence[int] = DEFAULT_KS,
                      clustering: bool = True, ref_includes_query: bool | None = None,
                      per_query: dict[str, np.ndarray] | None = None) -> RetrievalMetrics:
    """Metrics for ``query`` searching ``reference`` (default: the query set itself, leave-one-out).

    With ``ref_includes_query`` the first len(query) rows of ``reference`` must be the queries
    (each query's own row is not counted as a hit).
    """
    unsupported = sorted(set(ks) - {1, 5, 10})
    if unsupported:
        raise ValidationError(f"Recall@K is available for K in (1, 5, 10), not {unsupported}")
    if reference is None:
        reference, reference_labels, ref_includes_query = query, query_labels, True
    ref_includes_query = bool(ref_includes_query)
    if len(query) == 0 or len(reference) == 0:
        raise ValidationError("cannot evaluate retrieval on an empty query or reference set")
    q_lab, r_lab = _encode_labels(query_labels, reference_labels)
    self_count = int(ref_includes_query)
    max_bin = int(np.bincount(r_lab).max())
    k_needed = max(max_bin - self_count, max(ks))
    k_needed = min(k_needed, len(reference) - self_count)
    if k_needed < 1:
        raise ValidationError("need at least two reference items to evaluate retrieval")
    include = [*_BASE_METRICS, *(f"recall_at_{kk}" for kk in ks)]
    if per_query is not None:  # filled with "map_at_r" and "precision_at_1" arrays, in query order
        include += ["map_at_r_per_query", "p_at_1_per_query"]
    n_classes = len(np.unique(q_lab))
    do_cluster = clustering and 1 < n_classes < len(query)
    if do_cluster:
        include += ["NMI", "AMI"]
    # "max_bin_count" = largest class minus the query itself; the library warns (wrongly, under
    # ref_includes_query) if an int equal to it is passed, so only pass an int when K needs more.
    k: int | str = "max_bin_count" if k_needed == max_bin - self_count else k_needed
    calc = _Calculator(include=tuple(include), k=k, device=torch.device("cpu"), kmeans_func=_kmeans)
    res = calc.get_accuracy(np.asarray(query, np.float32), q_lab, np.asarray(reference, np.float32), r_lab,
                            ref_includes_query=ref_includes_query)
    if per_query is not None:
        per_query.update(map_at_r=res["map_at_r_per_query"], precision_at_1=res["p_at_1_per_query"])
    return RetrievalMetrics(
        precision_at_1=float(res["precision_at_1"]),
        r_precision=float(res["r_precision"]),
        map_at_r=float(res["mean_average_precision_at_r"]),
        recall_at_k={kk: float(res[f"recall_at_{kk}"]) for kk in ks},
        nmi=float(res["NMI"]) if do_cluster else None,
        ami=float(res["AMI"]) if do_cluster else None,
        num_queries=len(query),
    )


def per_class_metrics(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, ClassMetrics]:
    """MAP@R and P@1 per class, leave-one-out over ``embeddings`` (classes of one item are skipped)."""
    labels = np.asarray(labels).astype(str)
    (codes,) = _encode_labels(labels)
    classes = np.unique(labels)
    counts = np.bincount(codes, minlength=len(classes))
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                              return_per_class=True, device=torch.device("cpu"))
    res = calc.get_accuracy(np.asarray(embeddings, np.float32), codes)
    # The library reports classes of the non-lone queries, in sorted code order.
    kept = [str(classes[c]) for c in range(len(classes)) if counts[c] >= 2]
    return {c: ClassMetrics(float(m), float(p))
            for c, m, p in zip(kept, res["mean_average_precision_at_r"], res["precision_at_1"], strict=True)}


def _subset_metrics(emb: np.ndarray, labels: np.ndarray, mask: np.ndarray, ks: Sequence[int]) -> RetrievalMetrics | None:
    """Queries = the masked items, gallery = every item (old-class queries still face new classes).

    No clustering: NMI/AMI of a part's queries alone is read nowhere, and its k-means was two thirds of
    an evaluation's time (three evaluations per update: candidate, production, raw features).
    """
    if mask.sum() < 2:
        return None
    order = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    ref, ref_labels = emb[order], labels[order]
    n = int(mask.sum())
    return retrieval_metrics(ref[:n], ref_labels[:n], ref, ref_labels, ks=ks, ref_includes_query=True,
                             clustering=False)


def evaluate_embeddings(embeddings: np.ndarray, labels: np.ndarray, *, old_classes: Iterable[str] | None = None,
                        ks: Sequence[int] = DEFAULT_KS, per_class: bool = True, groups: np.ndarray | None = None,
                        group_column: str | None = None) -> EvaluationReport:
    """The full evaluation of one model on a labelled held-out set (with its per-query scores).

    ``old_classes``: classes the previous version knew; "old" and "new" are reported when given.
    ``groups``: each item's group (values of ``group_column``): MAP@R and P@1 are then reported per group.
    """
    labels = np.asarray(labels).astype(str)
    old = new = None
    if old_classes is not None:
        old_mask = np.isin(labels, np.array(sorted(set(old_classes)), dtype=str))
        old = _subset_metrics(embeddings, labels, old_mask, ks)
        new = _subset_metrics(embeddings, labels, ~old_mask, ks)
    queries: dict[str, np.ndarray] = {}
    overall = retrieval_metrics(embeddings, labels, ks=ks, per_query=queries)
    group_of = None
    if groups is not None:
        # Rows without a group value form their own group, so no item silently drops out.
        group_of = np.array(["" if g is None else str(g) for g in groups], dtype=object).astype(str)
        group_of[group_of == ""] = "(none)"
        if len(group_of) != len(labels):
            raise ValidationError(f"{len(group_of)} group values for {len(labels)} items")
    scores = QueryScores(labels, queries["map_at_r"], queries["precision_at_1"], group_of)
    return EvaluationReport(
        num_items=len(labels), num_classes=len(np.unique(labels)), overall=overall, old=old, new=new,
        per_class=per_class_metrics(embeddings, labels) if per_class else {},
        old_classes=tuple(sorted(set(old_classes))) if old_classes is not None else (),
        per_group=group_metrics(scores, group_of) if group_of is not None else {},
        group_column=group_column if group_of is not None else None,
        queries=scores,
    )


def forgetting(current: Mapping[str, float], history: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per class: best earlier value minus the current one (Avalanche's definition; > 0 = forgot).

    Only classes present both now and in some earlier entry are reported.
    """
    out = {}
    for c, now in current.items():
        earlier = [h[c] for h in history if c in h and not math.isnan(h[c])]
        if earlier and not math.isnan(now):
            out[c] = float(max(earlier) - now)
    return out


def compatibility(new_embeddings: np.ndarray, old_embeddings: np.ndarray, labels: np.ndarray,
                  *, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Cross-model retrieval: queries embedded by the new model search a gallery embedded by the old.

    The items split alternately into query and gallery halves (per class), so no item finds
    itself; reported next to old-vs-old and new-vs-new on the same split (BCT's protocol: success
    means new-vs-old beats old-vs-old).
    """
    labels = np.asarray(labels).astype(str)
    if new_embeddings.shape[1] != old_embeddings.shape[1]:
        return {"comparable": False}
    is_query = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        is_query[idx[::2]] = True
    q, g = is_query, ~is_query
    if q.sum() == 0 or g.sum() == 0:
        return {"comparable": False}

    def _map(qe, ge):
        return retrieval_metrics(qe[q], labels[q], ge[g], labels[g], ks=ks, clustering=False,
                                 ref_includes_query=False).map_at_r

    return {
        "comparable": True,
        "new_vs_old_map_at_r": _map(new_embeddings, old_embeddings),
        "old_vs_old_map_at_r": _map(old_embeddings, old_embeddings),
        "new_vs_new_map_at_r": _map(new_embeddings, new_embeddings),
    }
