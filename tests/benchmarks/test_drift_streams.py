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


def test_production_head_serves_what_the_trained_model_embeds():
    from benchmarks.drift_streams import production_head
    from embedding.config import TrainConfig
    from embedding.numpy_head import NumpyHead

    x, labels, _ = corpus(n_labels=4, per_label=40)
    head = production_head(x, labels, seed=0, config=TrainConfig(epochs=2, hidden_dims=(16,), out_dim=8,
                                                                  batch_size=32, seed=0))
    assert isinstance(head, NumpyHead)  # the torch-free path steward drift embeds with
    z = head(x[:10])
    assert z.shape == (10, 8) and np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_model_space_checks_use_only_reference_items_the_model_never_trained_on(monkeypatch):
    from types import SimpleNamespace

    import benchmarks.drift_streams as streams
    from benchmarks.drift import real_checks
    from embedding.holdout import holdout_mask
    from monitoring.config import DriftConfig

    x, labels, groups = corpus(n_labels=6, per_label=60)
    ids = np.array([f"item{i}" for i in range(len(labels))])
    seen: list[np.ndarray] = []

    def fake_head(features, y, *, seed, config=None):  # record what it trains on; identity head
        seen.append(features)
        return lambda a: np.asarray(a, np.float32)

    monkeypatch.setattr(streams, "production_head", fake_head)
    c = SimpleNamespace(embeddings=x, labels=labels, groups=groups, item_ids=ids)
    args = SimpleNamespace(real_streams=1, real_random_streams=0, real_batch=100, real_reference_batches=2,
                           real_new_labels=1)
    recs = real_checks(c, args, DriftConfig(), None, space="model")
    held = holdout_mask(ids)
    stream = streams.make_stream(labels, groups, kind="contiguous", seed=0, batch_size=100, n_new=1)
    window = np.concatenate(stream.batches[:2])
    assert len(seen) == len(stream.batches) - 2  # retrained for every check
    assert np.array_equal(seen[0], x[window[~held[window]]])  # the window's items outside the held-out split
    first = [r for r in recs if r["t"] == 2]
    assert all(r["n_reference"] == int(held[window].sum()) for r in first)
    new = [r for r in first if r["scenario"].startswith("new_class")]
    assert new and all(0.0 <= r["separation"]["new_rows"] <= 1.0 for r in new)


def test_a_kept_model_is_trained_once_and_later_batches_join_the_reference_whole(monkeypatch):
    from types import SimpleNamespace

    import benchmarks.drift_streams as streams
    from benchmarks.drift import real_checks
    from embedding.holdout import holdout_mask
    from monitoring.config import DriftConfig

    x, labels, groups = corpus(n_labels=6, per_label=80)
    ids = np.array([f"item{i}" for i in range(len(labels))])
    trainings: list[int] = []

    def fake_head(features, y, *, seed, config=None):
        trainings.append(len(features))
        return lambda a: np.asarray(a, np.float32)

    monkeypatch.setattr(streams, "production_head", fake_head)
    c = SimpleNamespace(embeddings=x, labels=labels, groups=groups, item_ids=ids)
    args = SimpleNamespace(real_streams=1, real_random_streams=0, real_batch=100, real_reference_batches=2,
                           real_new_labels=1, real_model_refit="first")
    recs = real_checks(c, args, DriftConfig(detectors=("novelty",)), None, space="model")
    stream = streams.make_stream(labels, groups, kind="contiguous", seed=0, batch_size=100, n_new=1)
    held = holdout_mask(ids)
    assert len(stream.batches) >= 4 and len(trainings) == 1  # batches 0-1 trained, checks at t = 2, 3
    b1, b2 = stream.batches[1], stream.batches[2]
    at3 = {r["n_reference"] for r in recs if r["t"] == 3}
    assert at3 == {int(held[b1].sum()) + len(b2)}  # batch 1: its held-out split; batch 2: never trained on


def test_share_scenarios_and_curve_find_the_smallest_share_caught():
    import pytest

    from benchmarks.drift import share_curve, share_scenarios

    assert share_scenarios("0.05, 0.2") == ("null", "new_class_5", "new_class_20")
    with pytest.raises(ValueError, match="1.5"):
        share_scenarios("0.05,1.5")

    def check(kind, seed, t, scen, p, effect):
        return {"kind": kind, "seed": seed, "t": t, "scenario": scen,
                "results": {"neighbourhood": DetectorResult("neighbourhood", 0.0, p, effect, "", 100, 50),
                            "novelty": DetectorResult("novelty", 0.0, 0.5, 0.0, "", 100, 50)}}

    # neighbourhood alone: the null never significant; 5% significant but small in half the checks; 20% always large
    recs = []
    for t in range(10):
        recs.append(check("random", 0, t, "null", 0.5, 0.0))
        recs.append(check("random", 0, t, "new_class_5", 1e-4, 0.1 if t % 2 else 0.001))
        recs.append(check("random", 0, t, "new_class_20", 1e-4, 0.2))
    rows, summary = share_curve(recs, SeverityConfig())
    alone = {r["new_share"]: r for r in rows if r["view"] == "neighbourhood alone" and r["alpha"] == 0.05}
    assert alone[0.05]["caught"] == 0.5 and alone[0.2]["caught"] == 1.0
    top = next(s for s in summary if s["view"] == "neighbourhood alone" and s["alpha"] == 0.05)
    assert top["min_share_caught_90"] == 0.2 and top["false_alarms_within_alpha"] is True
    assert top["null_significant"].startswith("0/10") and top["reading"] == "20%"
    novelty = next(s for s in summary if s["view"] == "novelty alone" and s["alpha"] == 0.05)
    assert novelty["min_share_caught_90"] is None


def test_share_reading_counts_a_share_only_where_the_null_holds():
    from benchmarks.drift import share_reading, share_verdict

    assert share_verdict("contiguous", False, "80/80 = 1.000", 0.05) == "none: the null acts (80/80 = 1.000)"
    assert share_verdict("random", False, "9/100 = 0.090", 0.05) == "none: false alarms above α (9/100 = 0.090)"
    assert share_verdict("random", True, "1/100 = 0.010", 0.2) == "20%"
    assert share_verdict("contiguous", True, "2/80 = 0.025", None) == "none up to the largest share"
    summary = [{"alpha": 0.05, "view": "v", "kind": "contiguous", "reading": "none: the null acts (80/80 = 1.000)"},
               {"alpha": 0.05, "view": "v", "kind": "random", "reading": "20%"},
               {"alpha": 0.01, "view": "v", "kind": "random", "reading": "30%"}]
    rows = share_reading(summary)
    assert rows[0] == {"alpha": 0.05, "view": "v", "contiguous_min_share_caught_90": "none: the null acts (80/80 = 1.000)",
                       "random_min_share_caught_90": "20%"}
    assert rows[1] == {"alpha": 0.01, "view": "v", "random_min_share_caught_90": "30%"}
