import numpy as np

from embedding.sampling import class_probabilities, make_batches


def test_m_per_class_batches_hold_m_items_of_each_chosen_class():
    labels = np.repeat(np.arange(20), [50] * 10 + [3] * 10)
    batches = make_batches(labels, sampler="m_per_class", m=4, batch_size=32, rng=np.random.default_rng(0))
    for b in batches:
        _, counts = np.unique(labels[b], return_counts=True)
        assert len(counts) == 8 and (counts == 4).all()
    # Rare classes are drawn as often as frequent ones.
    drawn = np.concatenate([np.unique(labels[b]) for b in make_batches(
        labels, sampler="m_per_class", m=4, batch_size=32, rng=np.random.default_rng(1), num_samples=32 * 400)])
    assert abs((drawn >= 10).mean() - 0.5) < 0.05


def test_long_tail_interpolates_between_balanced_and_proportional():
    labels = np.repeat([0, 1], [90, 10])
    assert np.allclose(class_probabilities(labels, "m_per_class"), [0.5, 0.5])
    assert np.allclose(class_probabilities(labels, "random"), [0.9, 0.1])
    p = class_probabilities(labels, "long_tail", long_tail_power=0.5)
    assert np.allclose(p, [0.75, 0.25])


def test_deterministic_per_generator_seed():
    labels = np.repeat(np.arange(5), 20)
    a = make_batches(labels, sampler="m_per_class", m=4, batch_size=20, rng=np.random.default_rng(3))
    b = make_batches(labels, sampler="m_per_class", m=4, batch_size=20, rng=np.random.default_rng(3))
    assert all((x == y).all() for x, y in zip(a, b))
