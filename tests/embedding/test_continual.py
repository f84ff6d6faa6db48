"""embedding.continual: weight-space interpolation of an update towards the previous version
(TrainConfig.interpolate_previous)."""

import numpy as np
import pytest
import torch

from core.errors import ConfigError, ValidationError
from embedding.config import TrainConfig
from embedding.continual import LabelledData, continual_step, interpolate_weights, validated_share
from embedding.model import HeadSpec, build_head

CFG = TrainConfig(hidden_dims=(16,), out_dim=8, epochs=3, incremental_epochs=2, batch_size=64)


def _two_steps(blobs, share: float):
    x, y = blobs
    ids = np.array([f"i{i}" for i in range(len(y))])
    first = np.isin(y, ["c0", "c1", "c2"])
    full = continual_step(LabelledData(ids[first], y[first], x[first]), CFG, full=True)
    upd = continual_step(LabelledData(ids[~first], y[~first], x[~first]), CFG.replace(interpolate_previous=share),
                         previous=full.candidate)
    return full.candidate.model, upd.candidate.model


def test_interpolated_update_is_the_weighted_average_of_the_plain_update_and_the_previous_model(blobs):
    previous, plain = _two_steps(blobs, 0.0)
    _, mixed = _two_steps(blobs, 0.4)  # same seed, same data: the same update before the average
    old = dict(previous.named_parameters())
    new = dict(plain.named_parameters())
    for name, p in mixed.named_parameters():
        assert torch.allclose(p, 0.6 * new[name] + 0.4 * old[name], atol=1e-6), name
    for name, b in mixed.named_buffers():  # the standardiser is the update's, not averaged
        assert torch.equal(b, dict(plain.named_buffers())[name])


def test_interpolation_refuses_other_architectures_and_bad_shares():
    a = build_head(HeadSpec(16, (16,), 8), 0)
    b = build_head(HeadSpec(16, (32,), 8), 0)
    with pytest.raises(ValidationError):
        interpolate_weights(a, b, 0.5)
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError):
            TrainConfig(interpolate_previous=bad)
    assert TrainConfig.from_dict(CFG.replace(interpolate_previous=0.3).to_dict()).interpolate_previous == 0.3


def test_validated_rule_keeps_the_share_with_the_best_validation_score(blobs, monkeypatch):
    from embedding.model import embed_array
    from embedding.trainer import stratified_split

    x, y = blobs
    previous, plain = _two_steps(blobs, 0.0)
    cfg = CFG.replace(interpolate_previous=0.4, interpolate_rule="validated")
    val = stratified_split(y, cfg.val_fraction, cfg.seed)  # the update's validation items
    x, y = x[val], y[val]
    assert validated_share(plain, previous, x, y, cfg) in (0.0, 0.2, 0.4)  # the grid
    # A stand-in for the validation MAP@R that scores distance from the plain update: rewarded, the whole
    # share wins; penalised, none.
    plain_emb = embed_array(plain, x)

    class Distance:
        sign = 1.0

        @classmethod
        def of(cls, labels):  # SmallSetMapAtR.of's signature
            return cls()

        def __call__(self, emb):
            return Distance.sign * float(np.abs(emb - plain_emb).sum())

    monkeypatch.setattr("embedding.evaluation.SmallSetMapAtR", Distance)
    assert validated_share(plain, previous, x, y, cfg) == 0.4
    Distance.sign = -1.0
    assert validated_share(plain, previous, x, y, cfg) == 0.0
    with pytest.raises(ConfigError):
        TrainConfig(interpolate_rule="best")
