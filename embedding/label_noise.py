"""Suspect labels: items whose label disagrees with most of their nearest neighbours (pure).

Under a trained embedding, an item sits among items of its own class; one whose k nearest
neighbours (itself excluded) mostly carry another label is likely mislabelled (the k-NN
label-agreement filter of the noisy-label literature). The check only *flags*: a person reads the
list (``steward labels suspect``) and training may give the flagged items a smaller weight
(``TrainConfig.suspect_weight``). Neighbours come from faiss' exact inner-product search on
L2-normalised rows (cosine, as the index serves).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from storage.workspace import Workspace

SCHEMA_VERSION = 1
DEFAULT_K = 10
# "Most of its neighbours disagree": fewer than half share the item's label.
DEFAULT_MIN_AGREEMENT = 0.5


@dataclass(frozen=True)
class SuspectLabel:
    item_id: str
    label: str
    majority_label: str  # the most common label among its k neighbours
    agreement: float  # share of its k neighbours that carry its own label
    batch_seq: int | None = None


@dataclass(frozen=True)
class SuspectReport:
    """The flagged items of one check: which items were checked, against how many, and with what k."""

    k: int
    min_agreement: float
    checked: int  # items whose label was checked
    reference: int  # labelled items their neighbours were drawn from
    suspects: tuple[SuspectLabel, ...] = ()
    model_version: int | None = None  # the version whose embeddings were used (None: raw features)
    collection: str | None = None
    batch: int | None = None  # the batch checked (None: every batch)

    @property
    def rate(self) -> float:
        return len(self.suspects) / self.checked if self.checked else 0.0

    def item_ids(self) -> list[str]:
        return [s.item_id for s in self.suspects]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "collection": self.collection, "batch": self.batch,
                "k": self.k, "min_agreement": self.min_agreement, "checked": self.checked,
                "reference": self.reference, "flagged": len(self.suspects), "rate": self.rate,
                "model_version": self.model_version, "suspects": [asdict(s) for s in self.suspects]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SuspectReport:
        return cls(k=int(d["k"]), min_agreement=float(d["min_agreement"]), checked=int(d["checked"]),
                   reference=int(d["reference"]), model_version=d.get("model_version"),
                   collection=d.get("collection"), batch=d.get("batch"),
                   suspects=tuple(SuspectLabel(**s) for s in d.get("suspects") or ()))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def neighbour_labels(embeddings: np.ndarray, labels: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Labels (n_query, k) of the k nearest reference rows of each query row index, itself excluded.

    ``query``: row indices into ``embeddings`` (the items checked); the reference is every row.
    """
    import faiss

    emb = _normalise(embeddings)
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    k_search = min(k + 1, len(emb))
    _, nn = index.search(emb[query], k_search)
    out = np.empty((len(query), k_search - 1), dtype=labels.dtype)
    for row, (q, hits) in enumerate(zip(query, nn, strict=True)):
        # Drop the item itself; with exact duplicates it may not come first, so drop it by index
        # (and the last hit when it was not among them at all).
        others = hits[hits != q]
        out[row] = labels[others[: k_search - 1]]
    return out


def find_suspects(embeddings: np.ndarray, labels: Sequence[str] | np.ndarray, item_ids: Sequence[str] | np.ndarray,
                  *, check: np.ndarray | None = None, k: int = DEFAULT_K,
                  min_agreement: float = DEFAULT_MIN_AGREEMENT, batch_seqs: np.ndarray | None = None,
                  model_version: int | None = None) -> SuspectReport:
    """Flag the items (of ``check``, a boolean mask; default all) whose label fewer than
    ``min_agreement`` of their k nearest neighbours share, when another label is the majority.

    Neighbours are drawn from every row of ``embeddings`` (the labelled items known so far).
    """
    labels = np.asarray(labels).astype(str)
    item_ids = np.asarray(item_ids).astype(str)
    if embeddings.ndim != 2 or not len(embeddings) == len(labels) == len(item_ids):
        raise ValidationError(f"embeddings {embeddings.shape}, {len(labels)} labels and {len(item_ids)} item ids "
                              "do not line up")
    if k < 1:
        raise ValidationError(f"k must be at least 1, got {k}")
    if not 0 < min_agreement <= 1:
        raise ValidationError(f"min_agreement must be in (0, 1], got {min_agreement}")
    check = np.ones(len(labels), bool) if check is None else np.asarray(check, bool)
    query = np.flatnonzero(check)
    if len(query) == 0 or len(labels) < 2:
        return SuspectReport(k, min_agreement, len(query), len(labels), (), model_version)
    nn = neighbour_labels(embeddings, labels, query, k)
    suspects = []
    for q, row in zip(query, nn, strict=True):
        agree = float(np.mean(row == labels[q])) if len(row) else 1.0
        if agree >= min_agreement:
            continue
        majority, _ = Counter(row.tolist()).most_common(1)[0]
        if majority == labels[q]:  # a tie with its own label: not a disagreement
            continue
        suspects.append(SuspectLabel(str(item_ids[q]), str(labels[q]), str(majority), round(agree, 4),
                                     None if batch_seqs is None else int(batch_seqs[q])))
    suspects.sort(key=lambda s: (s.agreement, s.item_id))
    return SuspectReport(k, min_agreement, len(query), len(labels), tuple(suspects), model_version)


def suspect_weights(item_ids: Sequence[str] | np.ndarray, suspects: SuspectReport, weight: float) -> np.ndarray:
    """Per-item training weights: ``weight`` for the flagged items, 1 for the others."""
    flagged = set(suspects.item_ids())
    return np.array([weight if i in flagged else 1.0 for i in np.asarray(item_ids).astype(str)], dtype=np.float32)


def flip_labels(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` with ``fraction`` of them changed to another class at random; and the flipped mask.
    (For benchmarks and tests: the noise the check is measured against.)"""
    labels = np.asarray(labels).astype(str)
    classes = np.unique(labels)
    flipped = np.zeros(len(labels), bool)
    n = round(fraction * len(labels))
    idx = rng.choice(len(labels), size=n, replace=False)
    out = labels.copy()
    for i in idx:
        out[i] = rng.choice(classes[classes != labels[i]])
    flipped[idx] = True
    return out, flipped


def check_collection(workspace: Workspace, collection: str, *, batch: int | None = None, model: int | None = None,
                     k: int = DEFAULT_K, min_agreement: float = DEFAULT_MIN_AGREEMENT,
                     device: str = "cpu") -> SuspectReport:
    """The suspect labels of a collection's batch ``batch`` (default: every batch), each with the batch
    that brought it, under model version ``model`` (default: production; the raw input features when
    there is none). Neighbours: every labelled item as of that batch that training may use (excluded
    batches left out). I/O wrapper around :func:`find_suspects`.
    """
    from embedding.retrain import load_labelled

    registry = workspace.registry
    coll = registry.catalog.get_collection(collection)
    batches = [b for b in registry.catalog.list_batches(collection) if batch is None or b.seq <= batch]
    if not batches:
        raise ValidationError(f"collection {collection!r} has no batches{'' if batch is None else f' up to {batch}'}; "
                              "ingest data first")
    if batch is not None:
        registry.catalog.get_batch(collection, batch)  # NotFoundError names the batch
        if next(b for b in batches if b.seq == batch).excluded:
            raise ValidationError(f"batch {batch} of {collection!r} is excluded from training; include it "
                                  "(`steward batches include`) to check its labels")
    as_of = batches[-1].seq
    data = load_labelled(workspace, collection, as_of, coll.kind, device)
    seq_of: dict[str, int] = {}
    for b in batches:  # a later batch that re-sends an item owns it
        if not b.excluded:
            ids = workspace.store.read_batch(collection, b.seq, columns=[]).column("item_id").to_pylist()
            seq_of.update(dict.fromkeys(ids, b.seq))
    seqs = np.array([seq_of.get(i, -1) for i in data.item_ids], dtype=np.int64)
    target = workspace.production.target(collection) if model is None else None
    version = model if model is not None else (target.model_version if target is not None else None)
    if version is not None:
        from embedding.inference import load_embedder

        emb = load_embedder(workspace, collection, version, device=device).embed_features(data.features)
    else:
        emb = data.features
    check = None if batch is None else seqs == batch
    report = find_suspects(emb, data.labels, data.item_ids, check=check, k=k, min_agreement=min_agreement,
                           batch_seqs=seqs, model_version=version)
    return dataclasses.replace(report, collection=collection, batch=batch)
