"""Training craft as switches (TrainConfig fields, all off by default): feature-space augmentation
of a batch and an intra-class compactness regulariser. ``benchmarks/continual.py --ablation``
measures each one.

Augmentation acts on the head's raw inputs, in units of the head's input scale (its standardiser),
so one setting means the same on digits' pixels and on text embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from embedding.config import TrainConfig


def augments(config: TrainConfig) -> bool:
    return config.aug_noise > 0 or config.aug_dropout > 0 or config.aug_mixup > 0


def augment(x: torch.Tensor, y: torch.Tensor, config: TrainConfig, mean: torch.Tensor, scale: torch.Tensor,
            gen: torch.Generator) -> torch.Tensor:
    """A perturbed copy of the batch ``x`` (labels ``y`` unchanged). ``mean``/``scale``: the head's
    input standardiser."""
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(x.device)

    out = x
    if config.aug_mixup > 0:
        # Within-class mixup: a share of items moves part of the way towards another item of its
        # class in the batch (the label stays right, so any metric loss applies unchanged).
        n = len(y)
        partner = torch.arange(n, device=x.device)
        for c in torch.unique(y):
            idx = torch.nonzero(y == c).flatten()
            partner[idx] = idx[torch.randperm(len(idx), generator=gen).to(x.device)]
        lam = rand(n, 1) * 0.5  # 0..0.5 of the way to the partner
        chosen = (rand(n, 1) < config.aug_mixup).float()
        out = out + chosen * lam * (x[partner] - x)
    if config.aug_noise > 0:
        out = out + torch.randn(out.shape, generator=gen).to(x.device) * config.aug_noise * scale
    if config.aug_dropout > 0:
        keep = (rand(*out.shape) >= config.aug_dropout).float()
        # Dropped features fall back to the mean input (zero after standardisation), not to zero.
        out = out * keep + (1 - keep) * mean
    return out


def compactness_loss(emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over items of 1 - cos(item, its class's mean embedding in the batch)."""
    classes, inverse = torch.unique(y, return_inverse=True)
    sums = torch.zeros(len(classes), emb.shape[1], dtype=emb.dtype).index_add_(0, inverse, emb)
    centres = F.normalize(sums, dim=1)
    return (1.0 - (emb * centres[inverse]).sum(dim=1)).mean()
