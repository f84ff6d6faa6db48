import numpy as np

from embedding.prototypes import Prototypes, compute_prototypes, nearest_class_mean, novelty_scores


def test_prototypes_are_normalised_class_means():
    emb = np.array([[1, 0], [0.8, 0.6], [0, 1], [0, 1]], dtype=np.float32)
    p = compute_prototypes(emb, np.array(["a", "a", "b", "b"]))
    assert p.labels == ("a", "b") and p.counts.tolist() == [2, 2]
    expected = np.array([0.9, 0.3]) / np.linalg.norm([0.9, 0.3])
    np.testing.assert_allclose(p.vectors[0], expected, rtol=1e-6)
    np.testing.assert_allclose(p.vectors[1], [0, 1])


def test_nearest_class_mean_and_novelty():
    p = Prototypes(("a", "b"), np.array([[1, 0], [0, 1]], np.float32), np.array([3, 3]))
    labels, sims = nearest_class_mean(p, np.array([[0.9, 0.1], [0.2, 0.98]], np.float32))
    assert labels == ["a", "b"] and sims[0] > 0.89
    nov = novelty_scores(p, np.array([[1, 0], [0.7071, -0.7071]], np.float32))
    assert nov[0] < 1e-6 and nov[1] > 0.25


def test_round_trip():
    p = compute_prototypes(np.random.default_rng(0).normal(size=(10, 4)), np.array(list("aabbbccccc")))
    q = Prototypes.from_bytes(p.to_bytes())
    assert q.labels == p.labels and np.array_equal(q.vectors, p.vectors) and np.array_equal(q.counts, p.counts)


def test_prototypes_sum_each_class_in_item_order_as_add_at_does():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(300, 7)).astype(np.float32)
    labels = rng.choice(["x", "y", "z"], size=300)
    classes, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((3, 7))
    np.add.at(sums, inverse, emb)
    expected = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    p = compute_prototypes(emb, labels)
    assert p.labels == tuple(classes) and np.array_equal(p.vectors, expected.astype(np.float32))
