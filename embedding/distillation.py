"""Terms that tie a new model to the previous one (all on L2-normalised embeddings).

- feature distillation: 1 - cos(new, old) per rehearsal sample, averaged;
- relational distillation: mean squared difference of the two batch similarity matrices
  (keeps the geometry among old items even if the space rotates);
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
