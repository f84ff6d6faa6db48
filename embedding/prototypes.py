"""Per-class prototypes: the L2-normalised mean embedding of each class under one model version.

Recomputed ("refreshed") under every new model from the rehearsal buffer plus the new data, so
they never mix embeddings from two models. Used to initialise new proxies, for nearest-class-mean
classification, novelty scores (monitoring) and backward-compatible training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import ValidationError


@dataclass(frozen=True)
class Prototypes:
    labels: tuple[str, ...]
    vectors: np.ndarray  # (c, d) L2-normalised
    counts: np.ndarray  # (c,) items behind each prototype

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index_of(self, label: str) -> int:
        return self.labels.index(label)

    def to_bytes(self) -> bytes:
        from storage.serialization import arrays_to_bytes

        return arrays_to_bytes(labels=np.array(self.labels, dtype=str),
                               vectors=self.vectors.astype(np.float32), counts=self.counts.astype(np.int64))

    @classmethod
    def from_bytes(cls, data: bytes) -> Prototypes:
        from storage.serialization import arrays_from_bytes

        a = arrays_from_bytes(data)
        return cls(tuple(str(x) for x in a["labels"]), a["vectors"], a["counts"])


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


def compute_prototypes(embeddings: np.ndarray, labels: np.ndarray) -> Prototypes:
    labels = np.asarray(labels).astype(str)
    if len(embeddings) != len(labels):
        raise ValidationError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    # Per-class sums as one weighted bincount over (class, dimension) cells: the same float64 additions
    # in item order as np.add.at, several times faster (an update refreshes every class's prototype).
    d = embeddings.shape[1]
    cells = (inverse[:, None] * d + np.arange(d)).ravel()
    sums = np.bincount(cells, weights=np.asarray(embeddings).ravel(), minlength=len(classes) * d).reshape(-1, d)
    return Prototypes(tuple(str(c) for c in classes), _normalise(sums / counts[:, None]), counts.astype(np.int64))


def refresh_prototypes(embed_fn, features: np.ndarray, labels: np.ndarray) -> Prototypes:
    """Prototypes under the model behind ``embed_fn`` (typically buffer + new data features)."""
    return compute_prototypes(np.asarray(embed_fn(features)), labels)


def nearest_class_mean(prototypes: Prototypes, embeddings: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Predicted label and cosine similarity to the closest prototype, per row."""
    sims = embeddings @ prototypes.vectors.T
    best = sims.argmax(axis=1)
    return [prototypes.labels[i] for i in best], sims[np.arange(len(best)), best]


def novelty_scores(prototypes: Prototypes, embeddings: np.ndarray) -> np.ndarray:
    """1 - max cosine to any prototype: high for items unlike every known class."""
    return 1.0 - (embeddings @ prototypes.vectors.T).max(axis=1)
