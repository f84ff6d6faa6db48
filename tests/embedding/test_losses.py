import numpy as np
import pytest
import torch

from embedding.config import LOSSES, TrainConfig
from embedding.evaluation import retrieval_metrics
from embedding.losses import build_loss, class_weights, grow_loss
from embedding.model import HeadSpec, build_head, embed_array
from embedding.trainer import train


def _split(x, y, seed=0):
    test = np.random.default_rng(seed).random(len(y)) < 0.3
    return x[~test], y[~test], x[test], y[test]


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_beats_the_untrained_head(loss, digits_small):
    x_tr, y_tr, x_te, y_te = _split(*digits_small)
    cfg = TrainConfig(loss=loss, hidden_dims=(64,), out_dim=32, epochs=6, patience=10, val_fraction=0.0,
                      batch_size=64)
    untrained = build_head(HeadSpec.from_config(x_tr.shape[1], cfg), cfg.seed)
    untrained.fit_standardizer(x_tr)
    base = retrieval_metrics(embed_array(untrained, x_te), y_te, clustering=False).map_at_r
    result = train(x_tr, y_tr, cfg, progress=False)
    trained = retrieval_metrics(embed_array(result.model, x_te), y_te, clustering=False).map_at_r
    assert trained > base + 0.1, (loss, base, trained)


@pytest.mark.parametrize("loss", ["proxy_anchor", "arcface", "cosface"])
def test_growing_keeps_old_rows_and_seeds_new_rows_from_prototypes(loss):
    cfg = TrainConfig(loss=loss, out_dim=8)
    old = build_loss(cfg, 3, 8)
    old_rows = class_weights(old.loss).clone()
    new_rows = torch.randn(2, 8)
    grown = grow_loss(old, cfg, 5, new_rows)
    rows = class_weights(grown.loss)
    assert rows.shape == (5, 8)
    assert torch.allclose(rows[:3], old_rows)
    cos = torch.nn.functional.cosine_similarity(rows[3:], new_rows, dim=1)
    assert torch.allclose(cos, torch.ones(2), atol=1e-5)
    # The grown loss still runs on labels of all five classes.
    emb = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
    assert torch.isfinite(grown(emb, torch.arange(10) % 5))


def test_shrinking_a_parametric_loss_is_refused():
    from core.errors import ConfigError

    cfg = TrainConfig(loss="proxy_anchor", out_dim=8)
    with pytest.raises(ConfigError, match="cannot shrink"):
        grow_loss(build_loss(cfg, 4, 8), cfg, 2)


def test_incremental_training_grows_proxies_and_keeps_old_ones(digits_small):
    x, y = digits_small
    first = np.isin(y, ["0", "1", "2"])
    cfg = TrainConfig(loss="proxy_anchor", hidden_dims=(64,), out_dim=16, epochs=3, incremental_epochs=1,
                      val_fraction=0.0, batch_size=64)
    r1 = train(x[first], y[first], cfg, progress=False)
    assert r1.classes == ("0", "1", "2") and r1.loss_state["proxies"].shape == (3, 16)
    r2 = train(x[~first], y[~first], cfg, init_model=r1.model, init_classes=r1.classes,
               init_loss_state=r1.loss_state, progress=False, lr=1e-12)
    assert r2.classes[:3] == r1.classes and set(r2.classes[3:]) == {"3", "4", "5"}
    # lr ~ 0 for the head; the old proxies move only by their own (separate) optimizer.
    assert r2.loss_state["proxies"].shape == (6, 16)


def test_unknown_loss_is_a_config_error():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown loss"):
        TrainConfig(loss="nope")
