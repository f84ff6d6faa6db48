"""The distillation terms, and their fused form (TrainConfig.distill_fused): the same loss and gradient
as the two terms' own graphs, on the rehearsed rows only."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedding.config import TrainConfig
from embedding.distillation import feature_distillation, fused_distillation, relational_distillation
from embedding.model import embed_array
from embedding.trainer import _Teacher, train


def _unit(n: int, d: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


@pytest.mark.parametrize("n_rows", [1, 2, 7])
def test_fused_distillation_is_the_weighted_sum_of_both_terms_with_their_gradient(n_rows):
    emb = _unit(10).requires_grad_()
    rows = torch.randperm(10, generator=torch.Generator().manual_seed(n_rows))[:n_rows]
    old = _unit(n_rows, seed=1)
    fused = fused_distillation(emb, rows, old, 0.7, 1.3)
    separate = 0.7 * feature_distillation(emb[rows], old) + 1.3 * relational_distillation(emb[rows], old)
    (g_fused,) = torch.autograd.grad(fused, emb)
    (g_separate,) = torch.autograd.grad(separate, emb)
    assert float(fused.detach()) == pytest.approx(float(separate.detach()), abs=1e-12)
    assert torch.allclose(g_fused, g_separate, atol=1e-12)
    untouched = torch.ones(10, dtype=torch.bool)
    untouched[rows] = False
    assert torch.count_nonzero(g_fused[untouched]) == 0  # only the rehearsed rows are pulled
    assert torch.autograd.gradcheck(lambda e: fused_distillation(e, rows, old, 0.7, 1.3), (emb,))


def test_fused_distillation_with_one_term_off_and_no_rows():
    emb = _unit(6).requires_grad_()
    rows, old = torch.tensor([0, 3, 4]), _unit(3, seed=2)
    assert float(fused_distillation(emb, rows, old, 1.0, 0.0)) == pytest.approx(
        float(feature_distillation(emb[rows], old)), abs=1e-12)
    assert float(fused_distillation(emb, rows, old, 0.0, 1.0)) == pytest.approx(
        float(relational_distillation(emb[rows], old)), abs=1e-12)
    empty = fused_distillation(emb, torch.tensor([], dtype=torch.long), old[:0], 1.0, 1.0)
    assert float(empty) == 0.0


def test_teacher_loss_is_the_same_fused_or_not_and_distils_only_rehearsed_items(blobs):
    x, y = blobs
    cfg = TrainConfig(hidden_dims=(32,), out_dim=16, distill_feature=0.5, distill_relational=2.0)
    teacher = train(x, y, cfg.replace(epochs=2), progress=False).model
    rehearsal = np.isin(y, ["c0", "c1"])
    rows = np.array([0, 1, 50, 150, 2, 160, 90])  # mixed rehearsed (c0, c1) and new items
    emb = torch.as_tensor(embed_array(teacher, x[rows])) * 0.9 + 0.1  # a student somewhat off its teacher
    emb = F.normalize(emb, dim=1).requires_grad_()
    batch = torch.as_tensor(rows)
    losses, grads = [], []
    for fused in (False, True):
        guide = _Teacher.of(teacher, x, y, rehearsal, cfg.replace(distill_fused=fused), "cpu", ("c0", "c1"))
        loss = guide.loss(emb, batch, rows)
        losses.append(float(loss.detach()))
        grads.append(torch.autograd.grad(loss, emb)[0])
    reh = rehearsal[rows]
    t_emb = guide.embeddings[batch[torch.as_tensor(np.flatnonzero(reh))]]
    expected = (0.5 * feature_distillation(emb[torch.as_tensor(reh)], t_emb)
                + 2.0 * relational_distillation(emb[torch.as_tensor(reh)], t_emb))
    assert losses[0] == pytest.approx(float(expected), rel=1e-6) and losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert torch.count_nonzero(grads[1][torch.as_tensor(~reh)]) == 0


def test_an_update_with_fused_distillation_trains_as_the_separate_terms_do(blobs):
    x, y = blobs
    cfg = TrainConfig(hidden_dims=(32,), out_dim=16, epochs=4, incremental_epochs=3, batch_size=64, val_fraction=0.2)
    old = np.isin(y, ["c0", "c1", "c2"])
    first = train(x[old], y[old], cfg, progress=False)
    reh = np.isin(y, ["c0", "c1", "c2"])
    runs = [train(x, y, cfg.replace(distill_fused=fused), init_model=first.model, init_classes=first.classes,
                  teacher=first.model, rehearsal_mask=reh, progress=False) for fused in (False, True)]
    assert runs[0].epochs_run == runs[1].epochs_run and runs[0].steps == runs[1].steps
    a, b = (embed_array(r.model, x) for r in runs)
    assert np.abs(a - b).max() < 1e-4  # float rounding only


def test_distill_fused_round_trips_in_the_config():
    cfg = TrainConfig(distill_fused=True)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and not TrainConfig().distill_fused
