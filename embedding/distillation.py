"""Terms that tie a new model to the previous one (all on L2-normalised embeddings).

- feature distillation: 1 - cos(new, old) per rehearsal sample, averaged;
- relational distillation: mean squared difference of the two batch similarity matrices
  (keeps the geometry among old items even if the space rotates);
- raw-structure preservation: 1 - the mean row-wise Pearson correlation between the batch's
  cosine matrix under the head and under the raw input features (diagonal left out). It asks the
  head to keep each item's *ranking* of its neighbours as the input features rank them, whatever
  the scale and offset of the two cosine ranges, so classes the head never trained on are less
  scrambled (issue 12);
- BCT-style compatibility (Shen et al., CVPR 2020): the old model's prototypes act as a frozen
  cosine classifier scored on new embeddings, so new queries stay searchable against an old gallery.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_distillation(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    if len(new) == 0:
        return new.new_zeros(())
    return (1.0 - (new * old).sum(dim=1)).mean()


def relational_distillation(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    if len(new) < 2:
        return new.new_zeros(())
    return F.mse_loss(new @ new.t(), old @ old.t())


def raw_structure_loss(emb: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """1 - mean over rows of corr(emb_i . emb_j, raw_i . raw_j), j != i; ``raw`` need not be normalised."""
    n = len(emb)
    if n < 3:
        return emb.new_zeros(())
    r = F.normalize(raw, dim=1)
    off = ~torch.eye(n, dtype=torch.bool, device=emb.device)
    a = (emb @ emb.t())[off].view(n, n - 1)
    b = (r @ r.t())[off].view(n, n - 1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    corr = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-8)
    return 1.0 - corr.mean()


def bct_loss(new: torch.Tensor, targets: torch.Tensor, old_prototypes: torch.Tensor,
             temperature: float = 0.05) -> torch.Tensor:
    """Cross-entropy of new embeddings against the old prototypes (rows = classes).

    ``targets`` index rows of ``old_prototypes``; rows < 0 (class unknown to the old model) are skipped.
    """
    mask = targets >= 0
    if not bool(mask.any()):
        return new.new_zeros(())
    logits = new[mask] @ old_prototypes.t() / temperature
    return F.cross_entropy(logits, targets[mask])
