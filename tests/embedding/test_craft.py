import numpy as np
import pytest
import torch

from core.errors import ConfigError
from embedding.config import TrainConfig
from embedding.craft import augment, augments, compactness_loss
from embedding.evaluation import retrieval_metrics
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
    for bad in ({"rehearsal_draw": 0.0}, {"aug_dropout": 1.0}, {"head": "transformer"}, {"buffer_mib": -1.0}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


@pytest.mark.parametrize("switch", [{"aug_noise": 0.2, "aug_dropout": 0.1, "aug_mixup": 0.5, "compact_weight": 0.5},
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
