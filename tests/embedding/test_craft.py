import numpy as np
import pytest
import torch

from core.errors import ConfigError
from embedding.config import TrainConfig
from embedding.craft import (
    augment,
    augments,
    compactness_loss,
    curriculum_keep,
    curriculum_share,
    focal_keep,
    focal_weights,
    metric_subset,
    smoothed_centre_loss,
    warmup_factor,
)
from embedding.evaluation import retrieval_metrics
from embedding.losses import build_loss, set_warmup, warmup_bases
from embedding.model import embed_array
from embedding.trainer import epoch_pool, train

CFG = TrainConfig(hidden_dims=(32,), out_dim=16, epochs=6, incremental_epochs=4, batch_size=64, val_fraction=0.2)


def test_augment_perturbs_within_class_and_is_seeded():
    x = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    mean, scale = torch.zeros(4), torch.ones(4)
    assert not augments(TrainConfig())
    mix = TrainConfig(aug_mixup=0.99)
    out = augment(x, y, mix, mean, scale, torch.Generator().manual_seed(0))
    # Within-class mixup stays between items of the same class: class 0 rows stay in class 0's range.
    assert out[:3].max() <= x[:3].max() and out[3:].min() >= x[3:].min()
    noisy = TrainConfig(aug_noise=0.5, aug_dropout=0.5)
    a = augment(x, y, noisy, mean, scale, torch.Generator().manual_seed(1))
    b = augment(x, y, noisy, mean, scale, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert (a == 0).any()  # dropped features fall back to the mean (zero here)


def test_compactness_loss_is_zero_for_collapsed_classes_and_positive_otherwise():
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]]), dim=1)
    y = torch.tensor([0, 0, 1, 1])
    assert float(compactness_loss(e, y)) == pytest.approx(0.0, abs=1e-6)
    spread = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0, 1], [0, 1], [1, 0]]), dim=1)
    assert float(compactness_loss(spread, y)) > 0.2


def test_epoch_pool_draws_a_fresh_share_of_the_rehearsal_items():
    reh = np.r_[np.zeros(10, bool), np.ones(100, bool)]
    rng = np.random.default_rng(0)
    assert len(epoch_pool(reh, None, rng)) == 110
    a, b = epoch_pool(reh, 2.0, rng), epoch_pool(reh, 2.0, rng)
    assert len(a) == 30 and set(range(10)) <= set(a.tolist())  # every new item, 20 rehearsal items
    assert set(a.tolist()) != set(b.tolist())  # drawn afresh
    assert len(epoch_pool(reh, 50.0, rng)) == 110  # never more than the buffer


def test_buffer_sized_from_memory_and_switches_validated():
    cfg = TrainConfig()
    assert cfg.buffer_items(384) == 2730 and cfg.buffer_items(64) == 16384  # 4 MiB by default
    assert TrainConfig(buffer_mib=1.0).buffer_items(256) == 1024
    assert TrainConfig(buffer_budget=7).buffer_items(384) == 7  # an explicit count wins
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"rehearsal_draw": 0.0}, {"aug_dropout": 1.0}, {"head": "transformer"}, {"buffer_mib": -1.0},
                {"label_smoothing": 1.0}, {"label_smoothing": -0.1}, {"focal_gamma": -1.0},
                {"margin_warmup_epochs": -1}, {"curriculum_epochs": 1.5}, {"curriculum_epochs": True}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


@pytest.mark.parametrize("switch", [{"aug_noise": 0.2, "aug_dropout": 0.1, "aug_mixup": 0.5, "compact_weight": 0.5},
                                    {"label_smoothing": 0.1, "focal_gamma": 1.0, "margin_warmup_epochs": 3,
                                     "curriculum_epochs": 3},
                                    {"head": "residual"}, {"head": "blend"}])
def test_switches_train_a_useful_head(blobs, switch):
    from embedding.model import HeadSpec, build_head

    x, y = blobs
    cfg = CFG.replace(epochs=12, **switch)
    untrained = build_head(HeadSpec.from_config(x.shape[1], cfg), cfg.seed)
    untrained.fit_standardizer(x)
    r = train(x, y, cfg, progress=False)

    def score(m):
        return retrieval_metrics(embed_array(m, x), y, clustering=False).map_at_r

    assert score(r.model) > score(untrained) + 0.02  # training improves on where the head started


def test_adaptive_distillation_holds_old_items_closer(blobs):
    x, y = blobs
    old = np.isin(y, ["c0", "c1", "c2", "c3"])
    r1 = train(x[old], y[old], CFG, progress=False)
    reh_idx = np.concatenate([np.flatnonzero(y == c)[:10] for c in ["c0", "c1", "c2", "c3"]])
    xi, yi = np.concatenate([x[~old], x[reh_idx]]), np.concatenate([y[~old], y[reh_idx]])
    mask = np.r_[np.zeros((~old).sum(), bool), np.ones(len(reh_idx), bool)]
    e_old = embed_array(r1.model, x[old])

    def drift(cfg):
        m = train(xi, yi, cfg, init_model=r1.model, init_classes=r1.classes, teacher=r1.model,
                  rehearsal_mask=mask, progress=False).model
        return 1 - (embed_array(m, x[old]) * e_old).sum(1).mean()

    # 4 old classes, 1 new: the weight grows by sqrt(4) = 2.
    assert drift(CFG.replace(distill_adaptive=True)) < drift(CFG)


# Two classes on the unit circle: class 0 around (1, 0) with one straggler pointing at class 1.
_E = torch.nn.functional.normalize(torch.tensor(
    [[1.0, 0.0], [1.0, 0.1], [1.0, -0.1], [0.2, 1.0], [0.0, 1.0], [0.1, 1.0], [-0.1, 1.0]]), dim=1)
_Y = torch.tensor([0, 0, 0, 0, 1, 1, 1])


def test_label_smoothing_softens_the_centre_classifier_and_arcface_targets():
    hard, soft = smoothed_centre_loss(_E, _Y, 0.0), smoothed_centre_loss(_E, _Y, 0.2)
    assert float(soft) > float(hard) + 0.05  # confident right answers now cost something
    # A single class cannot be classified: no term (and no error).
    assert float(smoothed_centre_loss(_E[:3], _Y[:3], 0.2)) == 0.0
    cfg = TrainConfig(loss="arcface")
    plain, smoothed = build_loss(cfg, 2, 2), build_loss(cfg.replace(label_smoothing=0.2), 2, 2)
    assert smoothed.loss.cross_entropy.label_smoothing == pytest.approx(0.2)
    smoothed.loss.load_state_dict(plain.loss.state_dict())
    assert float(smoothed(_E, _Y).detach()) != pytest.approx(float(plain(_E, _Y).detach()))


def test_focal_weights_favour_items_far_from_their_class():
    w = focal_weights(_E, _Y, 2.0)
    assert not torch.allclose(w, torch.full_like(w, float(w.mean())))  # not uniform
    assert int(torch.argmax(w)) == 3  # the straggler weighs most
    assert float(w[3]) > 10 * float(w[0])
    assert torch.allclose(focal_weights(_E, _Y, 0.0), torch.ones(7))  # gamma 0: uniform
    kept = torch.stack([focal_keep(_E, _Y, 2.0, torch.Generator().manual_seed(s)) for s in range(20)])
    assert bool(kept[:, 3].all())  # the hardest item always stays
    assert float(kept[:, [0, 4]].float().mean()) < 0.3  # well-placed items mostly leave the metric loss


def test_margin_warmup_ramps_to_the_configured_value():
    assert [warmup_factor(e, 3) for e in range(1, 6)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert warmup_factor(1, 0) == 1.0
    cfg = TrainConfig(margin_warmup_epochs=3)
    bundle = build_loss(cfg, 2, 2)
    bases = warmup_bases(bundle, cfg)
    assert bases == {"alpha": 2.0, "beta": 50.0}  # multi-similarity: its scales ramp
    set_warmup(bundle, cfg, bases, 0.25)
    assert (bundle.loss.alpha, bundle.loss.beta) == (0.5, 12.5)
    sup = TrainConfig(loss="supcon")
    b2 = build_loss(sup, 2, 2)
    set_warmup(b2, sup, warmup_bases(b2, sup), 0.5)
    assert b2.loss.temperature == pytest.approx(0.2)  # a temperature starts high


def test_margin_warmup_runs_in_the_training_loop_and_restores_the_loss(blobs, monkeypatch):
    from embedding import trainer

    seen, real = [], trainer._epoch

    def spy(model, bundle, *args, **kwargs):
        seen.append((bundle.loss.alpha, bundle))
        return real(model, bundle, *args, **kwargs)

    monkeypatch.setattr(trainer, "_epoch", spy)
    x, y = blobs
    train(x, y, CFG.replace(epochs=4, patience=10, margin_warmup_epochs=2), progress=False)
    assert [a for a, _ in seen] == pytest.approx([2.0 / 3, 4.0 / 3, 2.0, 2.0])
    assert seen[-1][1].loss.alpha == 2.0 and seen[-1][1].loss.beta == 50.0


def test_curriculum_drops_the_hardest_share_first_and_ramps_to_all():
    assert [curriculum_share(e, 4) for e in range(1, 7)] == [0.5, 0.375, 0.25, 0.125, 0.0, 0.0]
    assert curriculum_share(1, 0) == 0.0
    keep = curriculum_keep(_E, _Y, 0.5)
    assert not bool(keep[3])  # the straggler goes first
    assert int(keep[:4].sum()) == 2 and int(keep[4:].sum()) == 2  # half of each class, at least two left
    assert bool(curriculum_keep(_E, _Y, 0.0).all())
    cfg = TrainConfig(curriculum_epochs=2)
    gen = torch.Generator().manual_seed(0)
    assert int(metric_subset(_E, _Y, cfg, 1, gen).sum()) == 4
    assert metric_subset(_E, _Y, cfg, 3, gen).all()  # after the curriculum: everything
    assert metric_subset(_E, _Y, TrainConfig(), 1, gen) is None  # off: the whole batch


@pytest.mark.parametrize("switch", [{"label_smoothing": 0.2}, {"focal_gamma": 2.0}, {"margin_warmup_epochs": 3},
                                    {"curriculum_epochs": 3}])
def test_each_new_switch_changes_training(blobs, switch):
    x, y = blobs
    cfg = CFG.replace(epochs=2, val_fraction=0.0)
    base = embed_array(train(x, y, cfg, progress=False).model, x)
    other = embed_array(train(x, y, cfg.replace(**switch), progress=False).model, x)
    assert not np.allclose(base, other, atol=1e-5)
