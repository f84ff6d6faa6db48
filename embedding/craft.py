"""Training craft as switches (TrainConfig fields, all off by default): feature-space augmentation
of a batch, an intra-class compactness regulariser, label smoothing, focal-style item weighting, a
margin warm-up and a curriculum (easy items first). ``benchmarks/continual.py --ablation`` measures
each one.

Label smoothing: none of pytorch-metric-learning's pair losses (multi-similarity, contrastive,
triplet, supcon, proxy-anchor) has soft targets, so for those the switch adds an auxiliary
classifier term over the batch's class centres (cosine softmax, detached centres) whose cross-entropy
targets are smoothed; ArcFace and CosFace already are softmax classifiers and smooth their own
targets instead (losses.build_loss). Focal weighting and the curriculum both score an item by how
well it sits in its class within the batch, from the same batch-centre cosines, and act by leaving
items out of the metric loss (like ``sample_weight`` in the trainer), so they work with every loss
without touching the library's reducers.

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


# Temperature of the batch-centre cosine softmax behind label smoothing and focal weighting.
CENTRE_TEMPERATURE = 0.1
# Share of each batch the curriculum leaves out in its first epoch.
CURRICULUM_START_DROP = 0.5


def batch_centres(emb: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit class centres of the batch, each item's row in them)."""
    classes, inverse = torch.unique(y, return_inverse=True)
    sums = torch.zeros(len(classes), emb.shape[1], dtype=emb.dtype, device=emb.device).index_add_(0, inverse, emb)
    return F.normalize(sums, dim=1), inverse


def compactness_loss(emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over items of 1 - cos(item, its class's mean embedding in the batch)."""
    centres, inverse = batch_centres(emb, y)
    return (1.0 - (emb * centres[inverse]).sum(dim=1)).mean()


def smoothed_centre_loss(emb: torch.Tensor, y: torch.Tensor, eps: float,
                         temperature: float = CENTRE_TEMPERATURE) -> torch.Tensor:
    """Cross-entropy with ``eps``-smoothed targets of a cosine classifier over the batch's (detached)
    class centres: a mislabelled item is pulled to its wrong class with a bounded, not unbounded, push."""
    centres, inverse = batch_centres(emb.detach(), y)
    if len(centres) < 2:
        return emb.sum() * 0.0
    return F.cross_entropy(emb @ centres.t() / temperature, inverse, label_smoothing=eps)


def focal_weights(emb: torch.Tensor, y: torch.Tensor, gamma: float,
                  temperature: float = CENTRE_TEMPERATURE) -> torch.Tensor:
    """Per-item (1 - p_correct)^gamma, p_correct = softmax over cosines to the batch's class centres
    at the item's own class (detached: weights steer, they are not trained)."""
    emb = emb.detach()
    centres, inverse = batch_centres(emb, y)
    p = torch.softmax(emb @ centres.t() / temperature, dim=1)
    p_correct = p.gather(1, inverse[:, None]).squeeze(1)
    return (1.0 - p_correct).clamp_min(0.0) ** gamma


def focal_keep(emb: torch.Tensor, y: torch.Tensor, gamma: float, gen: torch.Generator) -> torch.Tensor:
    """Bool mask: each item kept with probability min(1, weight / mean weight), i.e. the weights
    normalised to mean 1 as per-sample weights usually are (an item cannot count more than once, so
    the hardest items are capped at 1; normalising by the largest weight instead thinned batches to
    a few items and stalled training on the test blobs)."""
    w = focal_weights(emb, y, gamma)
    mean = w.mean()
    if float(mean) <= 0:
        return torch.ones(len(y), dtype=torch.bool, device=emb.device)
    return torch.rand(len(y), generator=gen).to(emb.device) < (w / mean).clamp_max(1.0)


def curriculum_share(epoch: int, epochs: int) -> float:
    """Share of each batch left out in ``epoch`` (1-based): CURRICULUM_START_DROP in epoch 1,
    shrinking linearly to 0 at epoch ``epochs`` + 1 and after."""
    if epochs <= 0 or epoch > epochs:
        return 0.0
    return CURRICULUM_START_DROP * (1.0 - (epoch - 1) / epochs)


def curriculum_keep(emb: torch.Tensor, y: torch.Tensor, share: float) -> torch.Tensor:
    """Bool mask leaving out, per class of the batch, the ``share`` of items farthest (lowest cosine)
    from their class centre; every class keeps at least two items so it still forms pairs."""
    keep = torch.ones(len(y), dtype=torch.bool, device=emb.device)
    if share <= 0:
        return keep
    emb = emb.detach()
    centres, inverse = batch_centres(emb, y)
    cos = (emb * centres[inverse]).sum(dim=1)
    for c in range(len(centres)):
        idx = torch.nonzero(inverse == c).flatten()
        n_drop = min(int(share * len(idx)), max(len(idx) - 2, 0))
        if n_drop:
            keep[idx[torch.argsort(cos[idx])[:n_drop]]] = False
    return keep


def metric_subset(emb: torch.Tensor, y: torch.Tensor, config: TrainConfig, epoch: int,
                  gen: torch.Generator) -> torch.Tensor | None:
    """Which items of a batch the metric loss sees under the curriculum and focal switches (None:
    all). Fewer than two items left: None, the whole batch (a batch is never skipped)."""
    if config.curriculum_epochs <= 0 and config.focal_gamma <= 0:
        return None
    keep = curriculum_keep(emb, y, curriculum_share(epoch, config.curriculum_epochs))
    if config.focal_gamma > 0:
        keep = keep & focal_keep(emb, y, config.focal_gamma, gen)
    return keep if int(keep.sum()) >= 2 else None


def warmup_factor(epoch: int, epochs: int) -> float:
    """Margin warm-up: 1/(epochs+1) of the configured margin in epoch 1, the full margin from epoch
    ``epochs`` + 1 (1-based epochs; ``epochs`` 0: always 1)."""
    if epochs <= 0:
        return 1.0
    return min(1.0, epoch / (epochs + 1))
