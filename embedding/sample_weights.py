"""Per-sample weights inside a pytorch-metric-learning loss (e.g. smaller for suspect labels).

The library's losses hand their unreduced terms to a reducer: per element (anchor), per pair or
per triplet, with the batch indices of each term. :class:`WeightedReducer` wraps the loss's own
reducer and scales every term by the weights of the items in it (the product over a pair or
triplet) before that reducer averages them, so the loss keeps its usual reduction and an item
with weight w contributes w times as much. Terms the loss has already reduced (proxy-anchor) are
left as they are.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.reducers import BaseReducer


class WeightedReducer(BaseReducer):
    """Scales the loss terms by per-item weights (set :attr:`weights` to the batch's before each call)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.weights: torch.Tensor | None = None

    def forward(self, loss_dict, embeddings, labels):
        if self.weights is None:
            return self.inner(loss_dict, embeddings, labels)
        return self.inner({name: self._scaled(info) for name, info in loss_dict.items()}, embeddings, labels)

    def _scaled(self, info):
        losses, indices, kind = info["losses"], info["indices"], info["reduction_type"]
        if not torch.is_tensor(losses) or losses.ndim == 0 or kind == "already_reduced":
            return info
        w = self.weights.to(losses.device, losses.dtype)
        if kind == "element":
            scale = w[indices]
        else:  # pos_pair / neg_pair / triplet: a tuple of index tensors
            scale = torch.ones_like(losses)
            for part in indices:
                scale = scale * w[part]
        return {**info, "losses": losses * scale}


def attach(loss: torch.nn.Module) -> WeightedReducer | None:
    """Wrap ``loss``'s reducer (once) and return the wrapper; None when the loss has no reducer."""
    reducer = getattr(loss, "reducer", None)
    if reducer is None:
        return None
    if isinstance(reducer, WeightedReducer):
        return reducer
    wrapped = WeightedReducer(reducer)
    loss.reducer = wrapped
    return wrapped


def detach(loss: torch.nn.Module) -> None:
    """Put back the loss's own reducer (so a saved loss state has its usual keys)."""
    reducer = getattr(loss, "reducer", None)
    if isinstance(reducer, WeightedReducer):
        loss.reducer = reducer.inner
