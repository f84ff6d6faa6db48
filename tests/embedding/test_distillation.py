"""The teacher's distillation terms: computed on the rehearsed rows of a batch only, as the two terms'
own definitions give them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedding.config import TrainConfig
from embedding.distillation import feature_distillation, relational_distillation
from embedding.model import embed_array
from embedding.trainer import _Teacher, train


def test_teacher_loss_is_the_weighted_terms_on_the_rehearsed_items_only(blobs):
    x, y = blobs
    cfg = TrainConfig(hidden_dims=(32,), out_dim=16, distill_feature=0.5, distill_relational=2.0)
    teacher = train(x, y, cfg.replace(epochs=2), progress=False).model
    rehearsal = np.isin(y, ["c0", "c1"])
    rows = np.array([0, 1, 50, 150, 2, 160, 90])  # mixed rehearsed (c0, c1) and new items
    emb = torch.as_tensor(embed_array(teacher, x[rows])) * 0.9 + 0.1  # a student somewhat off its teacher
    emb = F.normalize(emb, dim=1).requires_grad_()
    batch = torch.as_tensor(rows)
    guide = _Teacher.of(teacher, x, y, rehearsal, cfg, "cpu", ("c0", "c1"))
    loss = guide.loss(emb, batch, rows)
    grad = torch.autograd.grad(loss, emb)[0]
    reh = rehearsal[rows]
    t_emb = torch.as_tensor(embed_array(teacher, x[rows[reh]]))
    expected = (0.5 * feature_distillation(emb[torch.as_tensor(reh)], t_emb)
                + 2.0 * relational_distillation(emb[torch.as_tensor(reh)], t_emb))
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert torch.count_nonzero(grad[torch.as_tensor(~reh)]) == 0  # new items are not pulled
    assert torch.count_nonzero(grad[torch.as_tensor(reh)]) > 0
