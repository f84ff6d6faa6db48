"""The held-out split and the stable evaluation set picked from it."""

from __future__ import annotations

import numpy as np

from embedding.holdout import evaluation_picks, holdout_mask


def test_holdout_is_stable_and_about_a_fifth():
    ids = np.array([f"x{i}" for i in range(5000)])
    m = holdout_mask(ids)
    assert 0.17 < m.mean() < 0.23
    assert (holdout_mask(ids[::-1]) == m[::-1]).all()


def test_evaluation_picks_are_held_out_capped_per_class_and_order_free():
    rng = np.random.default_rng(0)
    ids = np.array([f"i{i}" for i in range(3000)])
    labels = rng.choice(["a", "b", "c"], size=3000)
    picks = evaluation_picks(ids, labels, {}, per_class=40)
    chosen = np.array([i for i, _ in picks])
    assert holdout_mask(chosen).all()  # only items no version trains on
    assert {lab: sum(1 for _, l2 in picks if l2 == lab) for lab in "abc"} == {"a": 40, "b": 40, "c": 40}
    perm = rng.permutation(3000)
    assert sorted(evaluation_picks(ids[perm], labels[perm], {}, per_class=40)) == sorted(picks)  # arrival order


def test_full_classes_never_change_and_new_or_small_classes_top_up():
    ids = np.array([f"i{i}" for i in range(4000)])
    labels = np.array(["a"] * 2000 + ["b"] * 2000)
    first = evaluation_picks(ids[:2100], labels[:2100], {}, per_class=30)  # "a" full, "b" has few items so far
    counts = {lab: sum(1 for _, l2 in first if l2 == lab) for lab in "ab"}
    assert counts["a"] == 30 and 0 < counts["b"] < 30
    later = evaluation_picks(ids, labels, counts, per_class=30)
    assert {lab for _, lab in later} == {"b"}  # "a" is fixed once full
    assert counts["b"] + len(later) == 30
    assert not set(later) & set(first)
