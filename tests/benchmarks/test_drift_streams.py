"""The real-text drift streams: batch composition, scenarios, and the production-like replay."""

from __future__ import annotations

import numpy as np

from benchmarks.drift_streams import apply_scenario, make_stream, replay
from monitoring.decision import SeverityConfig
from monitoring.detectors.base import DetectorResult


def corpus(n_labels: int = 5, per_label: int = 60, groups: int = 6):
    labels = np.repeat([f"L{i}" for i in range(n_labels)], per_label)
    grp = np.array([f"{lab}.g{j % groups}" for j, lab in enumerate(labels)])
    x = np.random.default_rng(0).standard_normal((len(labels), 8)).astype(np.float32)
    return x, labels, grp


def test_contiguous_batches_keep_the_label_mix_and_slice_sub_populations():
    _, labels, groups = corpus()
    s = make_stream(labels, groups, kind="contiguous", seed=1, batch_size=40, n_new=1)
    assert len(s.new_labels) == 1 and not np.isin(labels[np.concatenate(s.batches)], s.new_labels).any()
    for b in s.batches:
        counts = {lab: int((labels[b] == lab).sum()) for lab in set(labels[b])}
        assert len(counts) == 4 and max(counts.values()) - min(counts.values()) <= 1  # same mix
    # each label's sub-populations arrive as runs: a group spans at most two consecutive batches
    where = {}
    for t, b in enumerate(s.batches):
        for g in set(groups[b]):
            where.setdefault(g, []).append(t)
    assert all(max(ts) - min(ts) <= 1 for ts in where.values())
    rand = make_stream(labels, groups, kind="random", seed=1, batch_size=40, n_new=1)
    assert sorted(np.concatenate(rand.batches)) == sorted(np.concatenate(s.batches))


def test_scenarios_change_the_stated_share_of_rows():
    x, labels, _ = corpus()
    cur, y = x[:100], labels[:100]
    rng = np.random.default_rng(2)
    _, ny = apply_scenario("new_class_5", cur, y, embeddings=x, labels=labels, new_labels=["L4"], rng=rng)
    assert (ny == "L4").sum() == 5 and (cur == x[:100]).all()  # the input is not changed
    zx, _ = apply_scenario("fault_zero", cur, y, embeddings=x, labels=labels, new_labels=["L4"], rng=rng)
    assert (np.abs(zx).sum(1) == 0).sum() == 10
    cx, _ = apply_scenario("fault_constant", cur, y, embeddings=x, labels=labels, new_labels=["L4"], rng=rng)
    assert max(np.unique(cx, axis=0, return_counts=True)[1]) >= 10


def _res(p: float, effect: float) -> dict:
    return {"mmd": DetectorResult("mmd", 0.0, p, effect, "", 10, 10)}


def test_replay_learns_only_from_null_checks_that_did_not_act():
    sev = SeverityConfig(floors={"mmd": 0.5}, k=3.0, min_history=2)
    # null stream: significant every time; effects 0.1, 0.1, 0.9 (acts: above the floor), 0.1
    null = [_res(1e-6, 0.1), _res(1e-6, 0.1), _res(1e-6, 0.9), _res(1e-6, 0.1), _res(1e-6, 0.1)]
    out = replay(null, null, alpha=0.05, detectors=None, severity=sev)
    assert [d.drifted for d, _ in out] == [False, False, True, False, False]
    assert [n for _, n in out] == [0, 1, 2, 2, 3]  # the acting check never enters the history
    # a scenario at check 4 is judged against the null stream's history, not its own past
    scen = null[:4] + [_res(1e-6, 0.6)]
    assert replay(null, scen, alpha=0.05, detectors=None, severity=sev)[-1][0].drifted
