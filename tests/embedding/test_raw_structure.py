"""Issue 12's switches that keep what the raw input features know: the raw-structure loss and a
blend head trained on its own output."""

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from embedding.config import TrainConfig
from embedding.distillation import raw_structure_loss
from embedding.model import HeadOnly, embed_array
from embedding.trainer import train

CFG = TrainConfig(hidden_dims=(32,), out_dim=8, epochs=8, batch_size=64, val_fraction=0.0)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of the rank correlation of two cosine matrices (diagonal left out)."""
    n, out = len(a), []
    for i in range(n):
        keep = np.arange(n) != i
        ra, rb = np.argsort(np.argsort(a[i, keep])), np.argsort(np.argsort(b[i, keep]))
        out.append(np.corrcoef(ra, rb)[0, 1])
    return float(np.mean(out))


def test_raw_structure_loss_is_zero_for_the_raw_geometry_and_ignores_scale_and_offset():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(12, 6, generator=g) * 3 + 1
    r = torch.nn.functional.normalize(raw, dim=1)
    assert float(raw_structure_loss(r, raw)) == pytest.approx(0.0, abs=1e-6)
    # A head whose cosines are an increasing affine map of the raw ones keeps every ranking: still 0.
    stretched = torch.nn.functional.normalize(torch.cat([r, torch.ones(12, 1) * 2.0], dim=1), dim=1)
    assert float(raw_structure_loss(stretched, raw)) == pytest.approx(0.0, abs=1e-5)
    scrambled = torch.nn.functional.normalize(torch.randn(12, 6, generator=g), dim=1)
    assert float(raw_structure_loss(scrambled, raw)) > 0.5
    assert float(raw_structure_loss(r[:2], raw[:2])) == 0.0  # too few items for a ranking


def test_raw_structure_weight_keeps_the_raw_ranking_of_items_it_did_not_train_on(blobs):
    x, y = blobs
    # Trained on half the items of two classes, scored on the other half. (On the blobs' other classes
    # the loss did not help, as on the real text stream: benchmarks/RESULTS.md, issue 12.)
    seen = np.flatnonzero(np.isin(y, ["c0", "c1"]))
    fit, held = seen[::2], seen[1::2]
    raw = x[held] / np.linalg.norm(x[held], axis=1, keepdims=True)
    agreement = {}
    for w in (0.0, 1.0):
        e = embed_array(train(x[fit], y[fit], CFG.replace(raw_structure_weight=w), progress=False).model, x[held])
        agreement[w] = _spearman_rows(e @ e.T, raw @ raw.T)
    assert agreement[1.0] > agreement[0.0] + 0.05


def test_blend_head_loss_trains_the_head_alone_and_serves_the_blend(blobs):
    x, y = blobs
    cfg = CFG.replace(head="blend", skip_weight=0.6, blend_head_loss=True, loss="proxy_anchor")
    r = train(x, y, cfg, progress=False)
    # the parametric loss holds one proxy per class in the head's own dimension, not the blend's
    assert tuple(r.loss_state["proxies"].shape) == (5, cfg.out_dim)
    e, h = embed_array(r.model, x), embed_array(HeadOnly(r.model), x)
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert e.shape[1] == x.shape[1] + cfg.out_dim and h.shape[1] == cfg.out_dim
    np.testing.assert_allclose(e @ e.T, 0.6 * raw @ raw.T + 0.4 * h @ h.T, atol=1e-5)
    # a warm-started update keeps working on the head's own output (teacher targets included)
    again = train(x, y, cfg, init_model=r.model, init_classes=r.classes, init_loss_state=r.loss_state,
                  teacher=r.model, rehearsal_mask=np.arange(len(y)) % 2 == 0, epochs=2, progress=False)
    assert tuple(again.loss_state["proxies"].shape) == (5, cfg.out_dim)


def test_raw_structure_weight_must_not_be_negative():
    with pytest.raises(ConfigError, match="raw_structure_weight"):
        TrainConfig(raw_structure_weight=-1.0)


def test_whitened_skip_damps_within_class_spread_and_is_centring_at_full_shrinkage(blobs):
    from embedding.model import whitened_skip

    x, y = blobs
    r = x / np.linalg.norm(x, axis=1, keepdims=True)

    def within_eigs(z: np.ndarray) -> np.ndarray:
        c = np.concatenate([z[y == k] - z[y == k].mean(0) for k in np.unique(y)])
        return np.linalg.eigvalsh(c.T @ c / len(c))

    mean, matrix = whitened_skip(x, y, 0.0)
    e = within_eigs((r - mean) @ matrix)
    np.testing.assert_allclose(e[e > 1e-6], 1.0, atol=1e-3)  # fully whitened: isotropic within classes
    mean, matrix = whitened_skip(x, y, 1.0)
    np.testing.assert_allclose(mean, r.mean(0), atol=1e-6)
    np.testing.assert_allclose(matrix / matrix[0, 0], np.eye(x.shape[1]), atol=1e-4)  # centring only


def test_whitened_blend_is_refitted_by_training_and_round_trips_its_spec(blobs):
    from embedding.model import HeadSpec, SkipOnly

    x, y = blobs
    cfg = CFG.replace(head="blend", blend_skip="whitened", skip_weight=0.7, epochs=2)
    r = train(x, y, cfg, progress=False)
    assert r.model.spec.skip == "whitened" and HeadSpec.from_dict(r.model.spec.to_dict()) == r.model.spec
    assert not torch.equal(r.model.skip_matrix, torch.eye(x.shape[1]))
    e, h, s = embed_array(r.model, x), embed_array(HeadOnly(r.model), x), embed_array(SkipOnly(r.model), x)
    np.testing.assert_allclose(e @ e.T, 0.7 * s @ s.T + 0.3 * h @ h.T, atol=1e-5)
    # a warm-started update refits the raw path on its own items
    part = np.isin(y, ["c0", "c1", "c2"])
    again = train(x[part], y[part], cfg, init_model=r.model, init_classes=r.classes, epochs=1, progress=False)
    assert not torch.allclose(again.model.skip_matrix, r.model.skip_matrix)
    with pytest.raises(ConfigError, match="blend_skip"):
        TrainConfig(blend_skip="pca")
