"""Losses and miners from pytorch-metric-learning, chosen by name in the TrainConfig.

Proxy-anchor, ArcFace and CosFace own a per-class parameter matrix sized at construction. The
library has no way to add classes, so ``grow_loss`` builds a larger loss, copies the old rows and
initialises the new rows from refreshed prototypes (unit vectors in the embedding space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from pytorch_metric_learning import losses, miners

from core.errors import ConfigError
from embedding.config import TrainConfig

_LOSS_DEFAULTS: dict[str, dict[str, Any]] = {
    "contrastive": {"pos_margin": 0.0, "neg_margin": 0.5},
    "triplet": {"margin": 0.1},
    "multi_similarity": {"alpha": 2.0, "beta": 50.0, "base": 0.5},
    "proxy_anchor": {"margin": 0.1, "alpha": 32.0},
    "arcface": {"margin": 28.6, "scale": 64.0},
    "cosface": {"margin": 0.35, "scale": 64.0},
    "supcon": {"temperature": 0.1},
}
# Margin warm-up (TrainConfig.margin_warmup_epochs): the attributes scaled by the warm-up factor,
# and whether they are temperatures (divided, so a soft start is a high temperature) rather than
# margins / inverse temperatures (multiplied). Multi-similarity has no margin: its scales alpha and
# beta (inverse temperatures) ramp instead.
WARMUP_ATTRS: dict[str, tuple[tuple[str, ...], bool]] = {
    "contrastive": (("neg_margin",), False),
    "triplet": (("margin",), False),
    "multi_similarity": (("alpha", "beta"), False),
    "proxy_anchor": (("margin",), False),
    "arcface": (("margin",), False),
    "cosface": (("margin",), False),
    "supcon": (("temperature",), True),
}
# Losses whose own cross-entropy takes TrainConfig.label_smoothing (the others get craft.py's term).
SMOOTHED_NATIVELY: frozenset[str] = frozenset({"arcface", "cosface"})
# The loss's natural companion when config.miner == "default".
_DEFAULT_MINER: dict[str, str] = {
    "contrastive": "none",
    "triplet": "semihard",
    "multi_similarity": "multi_similarity",
    "proxy_anchor": "none",
    "arcface": "none",
    "cosface": "none",
    "supcon": "none",
}


@dataclass
class LossBundle:
    """The loss module, its miner (or None) and whether it owns trainable class weights."""

    loss: torch.nn.Module
    miner: torch.nn.Module | None
    num_classes: int
    embedding_dim: int
    parametric: bool

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.miner is not None:
            tuples = self.miner(embeddings, labels)
            return self.loss(embeddings, labels, tuples)
        return self.loss(embeddings, labels)


def _split_params(config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    params = dict(config.loss_params)
    miner_params = dict(params.pop("miner_params", {}) or {})
    return {**_LOSS_DEFAULTS[config.loss], **params}, miner_params


def build_miner(config: TrainConfig) -> torch.nn.Module | None:
    name = _DEFAULT_MINER[config.loss] if config.miner == "default" else config.miner
    _, miner_params = _split_params(config)
    if name == "none":
        return None
    if name in ("hard", "semihard", "all"):
        margin = miner_params.pop("margin", _LOSS_DEFAULTS["triplet"]["margin"])
        return miners.TripletMarginMiner(margin=margin, type_of_triplets=name, **miner_params)
    if name == "multi_similarity":
        return miners.MultiSimilarityMiner(**{"epsilon": 0.1, **miner_params})
    if name == "batch_hard":
        return miners.BatchHardMiner(**miner_params)
    raise ConfigError(f"unknown miner {name!r}")  # unreachable: TrainConfig validates


def build_loss(config: TrainConfig, num_classes: int, embedding_dim: int) -> LossBundle:
    """Build the configured loss (+ miner); ``num_classes`` matters for parametric losses only."""
    params, _ = _split_params(config)
    name = config.loss
    try:
        if name == "contrastive":
            loss = losses.ContrastiveLoss(**params)
        elif name == "triplet":
            loss = losses.TripletMarginLoss(**params)
        elif name == "multi_similarity":
            loss = losses.MultiSimilarityLoss(**params)
        elif name == "supcon":
            loss = losses.SupConLoss(**params)
        elif name == "proxy_anchor":
            loss = losses.ProxyAnchorLoss(num_classes=num_classes, embedding_size=embedding_dim, **params)
        elif name == "arcface":
            loss = losses.ArcFaceLoss(num_classes=num_classes, embedding_size=embedding_dim, **params)
        elif name == "cosface":
            loss = losses.CosFaceLoss(num_classes=num_classes, embedding_size=embedding_dim, **params)
        else:  # unreachable: TrainConfig validates
            raise ConfigError(f"unknown loss {name!r}")
    except TypeError as e:
        raise ConfigError(f"bad loss_params {config.loss_params!r} for loss {name!r}: {e}") from e
    if config.label_smoothing > 0 and name in SMOOTHED_NATIVELY:
        # The library builds a plain CrossEntropyLoss(reduction="none"); same, with soft targets.
        loss.cross_entropy = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=config.label_smoothing)
    return LossBundle(loss, build_miner(config), num_classes, embedding_dim, config.parametric)


def warmup_bases(bundle: LossBundle, config: TrainConfig) -> dict[str, float]:
    """The configured values of the attributes the margin warm-up scales."""
    attrs, _ = WARMUP_ATTRS[config.loss]
    return {a: float(getattr(bundle.loss, a)) for a in attrs}


def set_warmup(bundle: LossBundle, config: TrainConfig, bases: dict[str, float], factor: float) -> None:
    """Scale the loss's margin (or temperature) to ``factor`` of its configured value (1 = as built)."""
    _, is_temperature = WARMUP_ATTRS[config.loss]
    for attr, base in bases.items():
        setattr(bundle.loss, attr, base / factor if is_temperature else base * factor)


def class_weights(loss: torch.nn.Module) -> torch.Tensor:
    """The per-class matrix as (num_classes, dim), whatever the library's layout."""
    if isinstance(loss, losses.ProxyAnchorLoss):
        return loss.proxies.data
    if hasattr(loss, "W"):  # ArcFace / CosFace / LargeMargin: W is (dim, num_classes)
        return loss.W.data.t()
    raise ConfigError(f"loss {type(loss).__name__} has no per-class weights")


def set_class_weights(loss: torch.nn.Module, rows: torch.Tensor) -> None:
    if isinstance(loss, losses.ProxyAnchorLoss):
        loss.proxies.data.copy_(rows)
    else:
        loss.W.data.copy_(rows.t())


def grow_loss(bundle: LossBundle, config: TrainConfig, new_num_classes: int,
              new_rows: torch.Tensor | None = None) -> LossBundle:
    """A loss for ``new_num_classes`` classes keeping the first ``bundle.num_classes`` rows.

    ``new_rows`` (new_num_classes - old, dim) initialise the added classes; pass the refreshed
    prototypes of those classes. Without it the library's own random init is kept.
    """
    if not bundle.parametric:
        return LossBundle(bundle.loss, bundle.miner, new_num_classes, bundle.embedding_dim, False)
    if new_num_classes < bundle.num_classes:
        raise ConfigError(
            f"cannot shrink a {bundle.loss.__class__.__name__} from {bundle.num_classes} "
            f"to {new_num_classes} classes; classes are never removed"
        )
    grown = build_loss(config, new_num_classes, bundle.embedding_dim)
    rows = class_weights(grown.loss).clone()
    rows[: bundle.num_classes] = class_weights(bundle.loss)
    added = new_num_classes - bundle.num_classes
    if new_rows is not None and added:
        if tuple(new_rows.shape) != (added, bundle.embedding_dim):
            raise ConfigError(f"new_rows has shape {tuple(new_rows.shape)}, expected ({added}, {bundle.embedding_dim})")
        # Scale to the norm of existing rows: ArcFace-style losses normalise anyway, proxy-anchor
        # compares cosines, so only the direction matters; matching the norm keeps updates even.
        scale = class_weights(bundle.loss).norm(dim=1).mean() if bundle.num_classes else 1.0
        rows[bundle.num_classes:] = torch.nn.functional.normalize(new_rows.to(rows), dim=1) * scale
    set_class_weights(grown.loss, rows)
    return grown
