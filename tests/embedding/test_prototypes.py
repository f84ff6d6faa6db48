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
