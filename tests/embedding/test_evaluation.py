import math

import numpy as np
import pytest

from embedding.evaluation import (
    EvaluationReport,
    compatibility,
    evaluate_embeddings,
    forgetting,
    per_class_metrics,
    retrieval_metrics,
)


def _brute_force(query, q_labels, ref, r_labels, exclude_self: bool):
    """Textbook definitions, one query at a time."""
    p1, rprec, mapr, rec5 = [], [], [], []
    for i, (q, lab) in enumerate(zip(query, q_labels)):
        sims = ref @ q
        order = np.argsort(-sims, kind="stable")
        if exclude_self:
            order = order[order != i]
        rel = (r_labels[order] == lab)
        r = int((r_labels == lab).sum()) - int(exclude_self)
        p1.append(float(rel[0]))
        rprec.append(rel[:r].sum() / r)
        prec_at = np.cumsum(rel[:r]) / np.arange(1, r + 1)
        mapr.append(float((prec_at * rel[:r]).sum() / r))
        rec5.append(float(rel[:5].any()))
    return np.mean(p1), np.mean(rprec), np.mean(mapr), np.mean(rec5)


def _data(seed=0, n=60, classes=4, dim=8, noise=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    centres = rng.normal(size=(classes, dim))
    emb = centres[labels] + noise * rng.normal(size=(n, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.astype(np.float32), np.array([f"k{v}" for v in labels])


def test_matches_brute_force_leave_one_out():
    emb, labels = _data()
    m = retrieval_metrics(emb, labels, ks=(1, 5), clustering=False)
    p1, rp, mapr, rec5 = _brute_force(emb, labels, emb, labels, exclude_self=True)
    assert m.precision_at_1 == pytest.approx(p1)
    assert m.r_precision == pytest.approx(rp)
    assert m.map_at_r == pytest.approx(mapr)
    assert m.recall_at_k[5] == pytest.approx(rec5)
    assert m.recall_at_k[1] == pytest.approx(p1)


def test_matches_brute_force_separate_gallery():
    q, ql = _data(seed=1, n=30)
    g, gl = _data(seed=1, n=70)  # same centres (same seed), different draws
    m = retrieval_metrics(q, ql, g, gl, ks=(1, 5), clustering=False)
    p1, rp, mapr, _ = _brute_force(q, ql, g, gl, exclude_self=False)
    assert (m.precision_at_1, m.r_precision, m.map_at_r) == pytest.approx((p1, rp, mapr))


def test_per_class_and_old_new_split():
    emb, labels = _data(n=80, noise=0.6)
    res = evaluate_embeddings(emb, labels, old_classes={"k0", "k1"})
    pc = per_class_metrics(emb, labels)
    assert set(pc) == set(np.unique(labels))
    # The mean of per-query values weighted by class size equals the overall value.
    counts = {c: int((labels == c).sum()) for c in pc}
    weighted = sum(pc[c].map_at_r * counts[c] for c in pc) / sum(counts.values())
    assert weighted == pytest.approx(res.overall.map_at_r)
    # Old-class queries: brute force with the full gallery.
    old = np.isin(labels, ["k0", "k1"])
    per_query = []
    for i in np.flatnonzero(old):
        order = [j for j in np.argsort(-(emb @ emb[i]), kind="stable") if j != i]
        rel = labels[order] == labels[i]
        r = int((labels == labels[i]).sum()) - 1
        per_query.append(float((np.cumsum(rel[:r]) / np.arange(1, r + 1) * rel[:r]).sum() / r))
    assert res.old.map_at_r == pytest.approx(np.mean(per_query))
    assert res.new.num_queries == int((~old).sum())
    assert 0 <= res.overall.nmi <= 1
    # The typed report survives its JSON round trip (it is stored with every model version).
    assert EvaluationReport.from_dict(res.to_dict()) == res


def test_perfect_embedding_scores_one():
    labels = np.repeat(["a", "b", "c"], 5)
    emb = np.eye(3, dtype=np.float32)[np.repeat([0, 1, 2], 5)]
    m = retrieval_metrics(emb, labels)
    assert m.map_at_r == pytest.approx(1.0) and m.precision_at_1 == 1.0 and m.nmi == pytest.approx(1.0)


def test_forgetting_is_drop_from_best_earlier_value():
    f = forgetting({"a": 0.7, "b": 0.9, "new": 0.5}, [{"a": 0.8}, {"a": 0.75, "b": 0.85}])
    assert f["a"] == pytest.approx(0.1) and f["b"] == pytest.approx(-0.05) and "new" not in f


def test_compatibility_same_model_equals_self_retrieval():
    emb, labels = _data(n=60, noise=0.5)
    c = compatibility(emb, emb, labels)
    assert c["comparable"] and c["new_vs_old_map_at_r"] == pytest.approx(c["old_vs_old_map_at_r"])
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))[0].astype(np.float32)
    c2 = compatibility(emb @ rot, emb, labels)
    # An unrelated (rotated) space cannot search the old gallery.
    assert c2["new_vs_old_map_at_r"] < c2["old_vs_old_map_at_r"] - 0.2
    assert not compatibility(emb[:, :4], emb, labels)["comparable"]
    assert not math.isnan(c2["new_vs_new_map_at_r"])


def test_small_set_map_at_r_equals_the_library_value():
    from embedding.evaluation import retrieval_metrics, small_set_map_at_r

    rng = np.random.default_rng(3)
    for n_classes, per_class in ((3, 5), (8, 40), (2, 2)):
        centres = rng.normal(size=(n_classes, 8))
        x = np.repeat(centres, per_class, axis=0) + rng.normal(scale=1.0, size=(n_classes * per_class, 8))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        y = np.repeat([f"c{i}" for i in range(n_classes)], per_class)
        expected = retrieval_metrics(x, y, ks=(1,), clustering=False).map_at_r
        assert small_set_map_at_r(x, y) == pytest.approx(expected, abs=1e-6)
    # A class with a single item: the library's value (fallback), not an error.
    y[-1] = "alone"
    assert small_set_map_at_r(x, y) == pytest.approx(retrieval_metrics(x, y, ks=(1,), clustering=False).map_at_r)


def test_small_set_scorer_built_once_scores_each_embedding_as_the_library_does():
    from embedding.evaluation import SmallSetMapAtR, retrieval_metrics

    rng = np.random.default_rng(4)
    y = np.repeat(["p", "q", "r"], 12)
    scorer = SmallSetMapAtR.of(y)
    for scale in (0.3, 3.0):  # two epochs' embeddings of the same validation items
        x = np.repeat(rng.normal(size=(3, 6)), 12, axis=0) + rng.normal(scale=scale, size=(36, 6))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        assert scorer(x) == pytest.approx(retrieval_metrics(x, y, ks=(1,), clustering=False).map_at_r, abs=1e-6)


def test_small_set_scorer_gives_each_class_and_query_its_own_map_at_r_beside_the_mean():
    from embedding.evaluation import SmallSetMapAtR, retrieval_metrics

    rng = np.random.default_rng(6)
    y = np.repeat(["p", "q", "r"], [10, 12, 14])
    x = rng.normal(size=(36, 6)).astype(np.float32)
    x[y == "q"] = x[y == "q"] * 0.1 + 3.0  # class q tight and apart: perfect; p and r mixed
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scorer = SmallSetMapAtR.of(y)
    mean, per_class = scorer.with_classes(x)
    assert mean == scorer(x)
    queries: dict[str, np.ndarray] = {}
    retrieval_metrics(x, y, ks=(1,), clustering=False, per_query=queries)
    expected = [queries["map_at_r"][y == c].mean() for c in ("p", "q", "r")]  # sorted label order
    assert per_class == pytest.approx(expected, abs=1e-9) and per_class[1] == pytest.approx(1.0)
    same_mean, per_query = scorer.with_queries(x)
    assert same_mean == mean and per_query == pytest.approx(queries["map_at_r"], abs=1e-9)
    # A singleton class sends the set through the fallback: the mean only.
    y[-1] = "alone"
    assert SmallSetMapAtR.of(y).with_classes(x)[1] is None and SmallSetMapAtR.of(y).with_queries(x)[1] is None


def test_small_set_scorer_with_its_cached_relevance_mask_is_the_librarys_map_at_r_to_the_last_bit():
    from pytorch_metric_learning.utils import accuracy_calculator as ac

    from embedding.evaluation import SmallSetMapAtR

    rng = np.random.default_rng(9)
    y = np.repeat(["a", "b", "c", "d"], [5, 9, 7, 12])
    scorer = SmallSetMapAtR.of(y)
    assert scorer.relevance.shape == (len(y), 11) and scorer.count_per_query.tolist() == [
        int((y == c).sum()) - 1 for c in y]
    for scale in (0.2, 1.0, 5.0):  # epochs' embeddings of the same items
        x = np.repeat(rng.normal(size=(4, 8)), [5, 9, 7, 12], axis=0) + rng.normal(scale=scale, size=(33, 8))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        knn = scorer._knn_labels(x)
        library = ac.mean_average_precision(knn, scorer.codes[:, None], True, scorer.label_counts, False, False,
                                            ac.EQUALITY, at_r=True)
        per_class = ac.mean_average_precision(knn, scorer.codes[:, None], True, scorer.label_counts, False, True,
                                              ac.EQUALITY, at_r=True)
        assert scorer(x) == library and scorer.with_queries(x)[0] == library
        mean, classes = scorer.with_classes(x)
        assert mean == library and classes.tolist() == per_class
