"""The embedding head evaluated with numpy alone: what drift checks, search and ``steward embed``
use, so serving a model needs no torch import (the artifact carries its weights as arrays).

It mirrors :class:`embedding.model.EmbeddingHead` in eval mode for every head kind (dropout is the
identity; GELU is the exact, erf-based one torch uses by default). ``tests/embedding/
test_numpy_head.py`` checks both paths agree and that this module imports no torch.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from scipy.special import erf

from core.errors import ArtifactIntegrityError

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default
_SPEC_KEY = "__spec__"  # the HeadSpec as JSON, stored beside the weights


def _normalise(z: np.ndarray) -> np.ndarray:
    # torch.nn.functional.normalize: z / max(||z||, eps)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def _gelu(z: np.ndarray) -> np.ndarray:
    return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))


class NumpyHead:
    """A head's forward pass on plain arrays (the keys of its state_dict)."""

    def __init__(self, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.spec = dict(spec)
        self.kind = str(spec.get("kind", "mlp"))
        self.in_dim = int(spec["in_dim"])
        self.skip_weight = float(spec.get("skip_weight", 0.5))
        # the served dimension (HeadSpec.embedding_dim): "blend" puts the input beside the head
        self.out_dim = int(spec["out_dim"]) + (self.in_dim if self.kind == "blend" else 0)
        self.hidden_dims = tuple(int(h) for h in spec["hidden_dims"])
        try:
            self.mean = np.asarray(arrays["input_mean"], np.float32)
            self.std = np.asarray(arrays["input_std"], np.float32)
            self.layers = self._layers(arrays, bool(float(spec.get("dropout", 0.0)) > 0))
            self.skip = np.asarray(arrays["skip"], np.float32) if self.kind == "residual" else None
            self.whitened = self.kind == "blend" and spec.get("skip", "raw") == "whitened"
            if self.whitened:
                self.skip_mean = np.asarray(arrays["skip_mean"], np.float32)
                self.skip_matrix = np.asarray(arrays["skip_matrix"], np.float32)
        except KeyError as e:
            raise ArtifactIntegrityError(f"head arrays lack {e} for a {self.kind!r} head; re-save the model") from e

    def _layers(self, arrays: dict[str, np.ndarray], dropout: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(op, weight, bias) in order, following EmbeddingHead's nn.Sequential layout."""
        out, i = [], 0
        for _ in self.hidden_dims:
            out.append(("linear", arrays[f"net.{i}.weight"], arrays[f"net.{i}.bias"]))
            out.append(("layer_norm", arrays[f"net.{i + 1}.weight"], arrays[f"net.{i + 1}.bias"]))
            i += 3 + (1 if dropout else 0)  # Linear, LayerNorm, GELU[, Dropout]
        out.append(("linear", arrays[f"net.{i}.weight"], arrays[f"net.{i}.bias"]))
        return [(op, np.asarray(w, np.float32), np.asarray(b, np.float32)) for op, w, b in out]

    def __call__(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, self.out_dim), np.float32)
        return np.concatenate([self._forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def _forward(self, x: np.ndarray) -> np.ndarray:
        xs = (x - self.mean) / self.std
        z = xs
        for op, w, b in self.layers:
            if op == "linear":
                z = z @ w.T + b
            else:  # layer norm, then GELU (every hidden block)
                mu = z.mean(axis=1, keepdims=True)
                var = z.var(axis=1, keepdims=True)
                z = _gelu((z - mu) / np.sqrt(var + LAYER_NORM_EPS) * w + b)
        if self.kind == "residual":
            z = xs @ self.skip + z
        elif self.kind == "blend":
            w = self.skip_weight
            r = _normalise(x)
            if self.whitened:
                r = _normalise((r - self.skip_mean) @ self.skip_matrix)
            return np.concatenate([np.sqrt(w) * r, np.sqrt(1 - w) * _normalise(z)],
                                  axis=1).astype(np.float32)
        return _normalise(z).astype(np.float32)

    # ------------------------------------------------------------------ serialisation (npz, no pickle)

    @classmethod
    def from_bytes(cls, data: bytes) -> NumpyHead:
        from storage.serialization import arrays_from_bytes

        arrays = arrays_from_bytes(data)
        if _SPEC_KEY not in arrays:
            raise ArtifactIntegrityError("head arrays artifact has no architecture; re-save the model")
        spec = json.loads(str(arrays.pop(_SPEC_KEY)))
        return cls(spec, arrays)


def arrays_to_head_bytes(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The npz artifact of a head: its weights as arrays plus its spec (JSON), no pickle."""
    from storage.serialization import arrays_to_bytes

    return arrays_to_bytes(**arrays, **{_SPEC_KEY: np.array(json.dumps(spec, sort_keys=True))})
