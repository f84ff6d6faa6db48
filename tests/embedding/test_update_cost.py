"""The switches that bound the cost of a warm-started update (issue 12): a class-balanced rehearsal
draw with a per-class quota, the update's own patience, a cosine learning-rate schedule and
old-class prototype anchoring."""

import itertools

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from embedding.config import TrainConfig
from embedding.model import embed_array
from embedding.trainer import EpochPools, _Teacher, epoch_pool, lr_factor, train

# The update switches at their "off" values, so each test turns on only the one it is about.
CFG = TrainConfig(hidden_dims=(32,), out_dim=16, epochs=6, incremental_epochs=4, batch_size=64, val_fraction=0.2,
                  rehearsal_draw=None, incremental_patience=None, incremental_min_delta=0.0,
                  incremental_schedule="constant", incremental_lr=2e-3)


def test_balanced_draw_gives_every_rehearsal_class_its_quota_and_shares_the_rest_equally():
    # 10 new items; rehearsal: class a 200 items, class b 200, class c only 3.
    labels = np.array(["n"] * 10 + ["a"] * 200 + ["b"] * 200 + ["c"] * 3)
    reh = labels != "n"
    rng = np.random.default_rng(0)
    pool = epoch_pool(reh, 2.0, rng, labels, min_quota=4)  # draw 20 rehearsal items
    drawn = labels[pool][reh[pool]]
    counts = {c: int((drawn == c).sum()) for c in "abc"}
    assert set(range(10)) <= set(pool.tolist())  # every new item
    assert counts["c"] == 3  # all it has, below the quota
    assert counts["a"] + counts["b"] + counts["c"] == 20 and abs(counts["a"] - counts["b"]) <= 1
    # A draw smaller than classes x quota still represents every class (the quota wins).
    small = epoch_pool(reh, 0.1, rng, labels, min_quota=4)
    assert {c: int((labels[small] == c).sum()) for c in "abc"} == {"a": 4, "b": 4, "c": 3}
    # Fresh every epoch, and no item twice.
    again = epoch_pool(reh, 2.0, rng, labels, min_quota=4)
    assert set(again.tolist()) != set(pool.tolist()) and len(set(again.tolist())) == len(again)


def test_cosine_schedule_decays_from_the_base_rate_and_constant_stays():
    f = [lr_factor(e, 10, "cosine") for e in range(1, 11)]
    assert f[0] == 1.0 and all(a > b for a, b in itertools.pairwise(f)) and 0 < f[-1] < 0.05
    assert {lr_factor(e, 10, "constant") for e in range(1, 11)} == {1.0}


def test_new_switches_validated_and_round_trip():
    cfg = TrainConfig(incremental_patience=2, incremental_schedule="cosine", anchor_weight=0.5,
                      rehearsal_min_quota=2)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"incremental_schedule": "step"}, {"incremental_patience": 0}, {"rehearsal_min_quota": -1},
                {"anchor_weight": -1.0}, {"anchor_temperature": 0.0}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def _old_then_new(blobs):
    x, y = blobs
    old = np.isin(y, ["c0", "c1", "c2"])
    r1 = train(x[old], y[old], CFG, progress=False)
    reh_idx = np.concatenate([np.flatnonzero(y == c)[:10] for c in ["c0", "c1", "c2"]])
    xi, yi = np.concatenate([x[~old], x[reh_idx]]), np.concatenate([y[~old], y[reh_idx]])
    mask = np.r_[np.zeros((~old).sum(), bool), np.ones(len(reh_idx), bool)]
    return x, y, old, r1, xi, yi, mask


def test_update_patience_stops_an_update_sooner_but_leaves_full_training_alone(blobs):
    x, y, _, r1, xi, yi, mask = _old_then_new(blobs)
    kw = {"init_model": r1.model, "init_classes": r1.classes, "teacher": r1.model, "rehearsal_mask": mask,
          "progress": False}
    # A large rate makes validation MAP@R stall early; patience 1 then stops the update.
    cfg = CFG.replace(incremental_epochs=30, incremental_lr=5e-2, patience=30)
    patient, impatient = train(xi, yi, cfg, **kw), train(xi, yi, cfg.replace(incremental_patience=1), **kw)
    assert impatient.stopped_early and impatient.epochs_run < patient.epochs_run
    full = train(x, y, CFG.replace(epochs=8, patience=30, incremental_patience=1), progress=False)
    assert full.epochs_run == 8


def test_anchor_prototypes_are_the_previous_models_old_class_means_and_hold_old_items(blobs):
    x, _, old, r1, xi, yi, mask = _old_then_new(blobs)
    cfg = CFG.replace(anchor_weight=1.0, distill_feature=0.0, distill_relational=0.0)
    t = _Teacher.of(r1.model, xi, yi, mask, cfg, "cpu", r1.classes)
    assert t.anchors.shape == (3, CFG.out_dim)
    e = embed_array(r1.model, xi[mask & (yi == "c1")]).mean(0)
    assert torch.allclose(t.anchors[1], torch.as_tensor(e / np.linalg.norm(e)), atol=1e-5)
    assert (t.anchor_targets.numpy()[~mask] == -1).all()  # new classes have no anchor

    def drift(c):
        m = train(xi, yi, c, init_model=r1.model, init_classes=r1.classes, teacher=r1.model,
                  rehearsal_mask=mask, progress=False).model
        return 1 - (embed_array(m, x[old]) * embed_array(r1.model, x[old])).sum(1).mean()

    assert drift(cfg.replace(anchor_weight=5.0)) < drift(cfg.replace(anchor_weight=0.0))


def test_update_batch_size_takes_fewer_larger_steps_and_leaves_full_training_alone(blobs):
    x, y, _, r1, xi, yi, mask = _old_then_new(blobs)
    kw = {"init_model": r1.model, "init_classes": r1.classes, "teacher": r1.model, "rehearsal_mask": mask,
          "progress": False}
    cfg = CFG.replace(batch_size=16, m_per_class=4, incremental_epochs=3, patience=30)
    small, large = train(xi, yi, cfg, **kw), train(xi, yi, cfg.replace(incremental_batch_size=64), **kw)
    assert large.steps < small.steps / 2
    full = train(x, y, cfg.replace(epochs=2), progress=False)
    assert full.steps == train(x, y, cfg.replace(epochs=2, incremental_batch_size=64), progress=False).steps
    with pytest.raises(ConfigError):
        TrainConfig(incremental_batch_size=4, m_per_class=4)


def test_min_delta_stops_an_update_whose_gains_are_small_but_keeps_its_best_epoch(blobs):
    _, _, _, r1, xi, yi, mask = _old_then_new(blobs)
    kw = {"init_model": r1.model, "init_classes": r1.classes, "teacher": r1.model, "rehearsal_mask": mask,
          "progress": False}
    cfg = CFG.replace(incremental_epochs=20, incremental_patience=2)
    any_gain, real_gain = train(xi, yi, cfg, **kw), train(xi, yi, cfg.replace(incremental_min_delta=0.5), **kw)
    # After the first epoch no epoch gains 0.5 MAP@R: the patience runs out 2 epochs later; the best is kept.
    assert real_gain.stopped_early and real_gain.epochs_run == 3 < any_gain.epochs_run
    vals = [h["val_map_at_r"] for h in real_gain.history]
    assert real_gain.best_val_map == max(vals) and real_gain.best_epoch == int(np.argmax(vals)) + 1
    with pytest.raises(ConfigError):
        TrainConfig(incremental_min_delta=1.0)


def test_epoch_pools_built_once_draw_what_epoch_pool_draws_every_epoch():
    labels = np.array(["n"] * 12 + ["a"] * 50 + ["b"] * 30 + ["c"] * 2)
    reh = labels != "n"
    pools = EpochPools.of(reh, 1.5, labels, min_quota=4)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):  # same generator state, same draw, epoch after epoch
        assert np.array_equal(pools.draw(a), epoch_pool(reh, 1.5, b, labels, min_quota=4))
    assert np.array_equal(EpochPools.of(reh, None).draw(a), np.arange(len(labels)))


def test_sign_rule_counts_a_new_best_as_a_gain_only_when_more_classes_improved():
    from embedding.trainer import _more_gained

    best = np.array([0.5, 0.5, 0.5, 0.5])
    assert _more_gained(np.array([0.9, 0.5, 0.49, 0.5]), best) is False  # one up, one down
    assert _more_gained(np.array([0.9, 0.6, 0.49, 0.5]), best) is True  # two up, one down
    assert _more_gained(np.array([0.51, 0.51, 0.51, 0.4]), best) is True  # small but shared
    assert _more_gained(np.array([0.9, 0.5]), None) is True  # nothing to pair with yet


def test_classes_gain_rule_stops_sooner_and_keeps_the_best_epoch(blobs):
    _, _, _, r1, xi, yi, mask = _old_then_new(blobs)
    kw = {"init_model": r1.model, "init_classes": r1.classes, "teacher": r1.model, "rehearsal_mask": mask,
          "progress": False}
    cfg = CFG.replace(incremental_epochs=20, incremental_patience=2, incremental_lr=2e-2)
    mean_rule, sign_rule = train(xi, yi, cfg, **kw), train(xi, yi, cfg.replace(incremental_gain_rule="classes"), **kw)
    # Same seed, same epochs until one of them stops: the sign rule only withholds patience resets (here
    # epochs whose gain is carried by fewer classes than lost ground stop the update 5 epochs sooner).
    assert sign_rule.epochs_run < mean_rule.epochs_run
    assert sign_rule.history == mean_rule.history[:sign_rule.epochs_run]
    vals = [h["val_map_at_r"] for h in sign_rule.history]
    assert sign_rule.best_val_map == max(vals) and sign_rule.best_epoch == int(np.argmax(vals)) + 1
    by_queries = train(xi, yi, cfg.replace(incremental_gain_rule="queries"), **kw)
    assert by_queries.history == mean_rule.history[:by_queries.epochs_run]
    full = train(xi, yi, cfg.replace(epochs=6, patience=30, incremental_gain_rule="classes"), progress=False)
    assert full.epochs_run == 6  # a full training ignores the rule
    with pytest.raises(ConfigError):
        TrainConfig(incremental_gain_rule="median")


def test_a_continual_steps_embedding_passes_run_under_the_training_thread_limit(blobs, monkeypatch):
    from embedding import continual

    x, y = blobs
    seen: list[int] = []

    def recording(embed_fn, features, labels):
        seen.append(torch.get_num_threads())
        return refresh(embed_fn, features, labels)

    refresh = continual.refresh_prototypes
    monkeypatch.setattr(continual, "refresh_prototypes", recording)
    data = continual.LabelledData(np.array([f"i{i}" for i in range(len(y))]), y, x)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        continual.continual_step(data, CFG.replace(cpu_threads=1, epochs=1), full=True)
        assert seen == [1] and torch.get_num_threads() == 2  # limited inside, restored after
    finally:
        torch.set_num_threads(before)


def test_teacher_embeds_only_the_rehearsed_rows_it_reads_unless_bct_needs_every_row(blobs):
    x, y = blobs
    teacher = train(x, y, CFG, progress=False).model
    rehearsal = np.isin(y, ["c0", "c1", "c2"])
    every = embed_array(teacher, x)
    lean = _Teacher.of(teacher, x, y, rehearsal, CFG, "cpu", ("c0", "c1", "c2"))
    assert np.allclose(lean.embeddings.numpy()[rehearsal], every[rehearsal], atol=1e-6)
    assert not lean.embeddings.numpy()[~rehearsal].any()
    bct = _Teacher.of(teacher, x, y, rehearsal, CFG.replace(bct_weight=1.0), "cpu", ("c0", "c1", "c2"))
    assert np.allclose(bct.embeddings.numpy(), every, atol=1e-6)
    none = _Teacher.of(teacher, x, y, np.zeros(len(y), bool), CFG, "cpu")
    assert none.embeddings.shape == every.shape and not none.embeddings.numpy().any()
