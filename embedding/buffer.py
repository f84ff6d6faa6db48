"""The rehearsal buffer: a fixed budget of past training items replayed in every update.

Policies (TrainConfig.buffer_policy):
- ``balanced_reservoir`` (default): equal slots per class (water-filled: a class with fewer items
  than its share gives its spare slots to the others); within a class, reservoir sampling
  (Algorithm R) over that class's stream, so every item seen has the same chance to be kept.
- ``reservoir``: slots proportional to how many items of each class the stream brought (what one
  global reservoir gives in expectation), with ``min_quota`` slots guaranteed per class so rare
  classes survive.
- ``herding``: equal slots per class; within a class, greedily pick the items whose running mean
  embedding stays closest to the class mean (iCaRL), recomputed under the newest model.
Every policy guarantees each class min(min_quota, items available). Deterministic for a seed.
The buffer holds raw input features (what the head consumes), not embeddings, so it stays valid
when the model changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError

EmbedFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RehearsalBuffer:
    item_ids: np.ndarray  # str (n,)
    labels: np.ndarray  # str (n,)
    features: np.ndarray  # float32 (n, dim)
    seen_labels: np.ndarray  # str (c,): every class the stream brought
    seen_counts: np.ndarray  # int64 (c,): items of that class seen so far
    budget: int
    policy: str
    min_quota: int
    seed: int
    updates: int  # how many updates built this buffer (feeds the RNG)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def class_counts(self) -> dict[str, int]:
        labels, counts = np.unique(self.labels, return_counts=True)
        return {str(label): int(c) for label, c in zip(labels, counts, strict=True)}

    def select(self, mask: np.ndarray) -> RehearsalBuffer:
        """The buffer holding only the items where ``mask`` is True (the stream counts are kept)."""
        import dataclasses

        return dataclasses.replace(self, item_ids=self.item_ids[mask], labels=self.labels[mask],
                                   features=self.features[mask])

    def to_bytes(self) -> bytes:
        from storage.serialization import arrays_to_bytes

        meta = np.array([self.budget, self.min_quota, self.seed, self.updates], dtype=np.int64)
        return arrays_to_bytes(
            item_ids=self.item_ids.astype(str), labels=self.labels.astype(str),
            features=self.features.astype(np.float32), seen_labels=self.seen_labels.astype(str),
            seen_counts=self.seen_counts.astype(np.int64), meta=meta, policy=np.array(self.policy),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RehearsalBuffer:
        from storage.serialization import arrays_from_bytes

        a = arrays_from_bytes(data)
        budget, min_quota, seed, updates = (int(v) for v in a["meta"])
        return cls(a["item_ids"], a["labels"], a["features"], a["seen_labels"], a["seen_counts"],
                   budget, str(a["policy"]), min_quota, seed, updates)


def empty_buffer(dim: int, *, budget: int, policy: str = "balanced_reservoir", min_quota: int = 5,
                 seed: int = 0) -> RehearsalBuffer:
    return RehearsalBuffer(
        np.array([], dtype=str), np.array([], dtype=str), np.zeros((0, dim), dtype=np.float32),
        np.array([], dtype=str), np.array([], dtype=np.int64), budget, policy, min_quota, seed, 0,
    )


def allocate(weights: dict[str, float], available: dict[str, int], budget: int, min_quota: int) -> dict[str, int]:
    """Slots per class: each gets min(min_quota, available), the rest shared by weight, capped by
    what is available; spare slots flow to classes that still have items."""
    labels = sorted(available)
    alloc = {c: min(min_quota, available[c]) for c in labels}
    if sum(alloc.values()) > budget:
        raise ConfigError(
            f"buffer budget {budget} cannot give {len(labels)} classes their minimum quota of {min_quota} "
            f"items; raise buffer_budget to at least {sum(alloc.values())} or lower buffer_min_quota"
        )
    remaining = budget - sum(alloc.values())
    while remaining > 0:
        active = [c for c in labels if alloc[c] < available[c]]
        if not active:
            break
        total_w = sum(max(weights.get(c, 0.0), 0.0) for c in active) or float(len(active))
        given = 0
        for c in active:
            w = max(weights.get(c, 0.0), 0.0) if total_w else 1.0
            share = int(remaining * w / total_w)
            take = min(share, available[c] - alloc[c])
            alloc[c] += take
            given += take
        remaining -= given
        if given == 0:
            # Rounding left fewer slots than active classes: one each, heaviest first, ties by label.
            for c in sorted(active, key=lambda c: (-weights.get(c, 0.0), c))[:remaining]:
                alloc[c] += 1
            remaining = 0
    return alloc


def herding_select(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` items whose running mean best approximates the mean (iCaRL herding)."""
    n = len(embeddings)
    if k >= n:
        return np.arange(n)
    mu = embeddings.mean(axis=0)
    chosen: list[int] = []
    running = np.zeros_like(mu)
    available = np.ones(n, dtype=bool)
    for t in range(1, k + 1):
        # Pick the item that moves the running mean closest to the class mean.
        candidate_means = (running * (t - 1) + embeddings) / t
        dist = np.linalg.norm(candidate_means - mu, axis=1)
        dist[~available] = np.inf
        i = int(np.argmin(dist))
        chosen.append(i)
        available[i] = False
        running = candidate_means[i]
    return np.array(chosen, dtype=np.int64)


def update_buffer(buffer: RehearsalBuffer, item_ids: np.ndarray, labels: np.ndarray, features: np.ndarray,
                  *, embed_fn: EmbedFn | None = None) -> RehearsalBuffer:
    """The buffer after the stream brought these (labelled) items. Pure: ``buffer`` is unchanged.

    ``embed_fn`` (features -> embeddings under the newest model) is required for ``herding``.
    """
    item_ids = np.asarray(item_ids).astype(str)
    labels = np.asarray(labels).astype(str)
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or (len(buffer) and features.shape[1] != buffer.dim) or len(features) != len(labels):
        raise ConfigError(f"features of shape {features.shape} do not fit a buffer of dim {buffer.dim} "
                          f"and {len(labels)} labels")
    if buffer.policy == "herding" and embed_fn is None:
        raise ConfigError("the herding buffer policy needs embed_fn (the newest model's embedding function)")
    rng = np.random.default_rng([buffer.seed, buffer.updates])

    # Items re-sent by the stream replace their stored copy (the new version of the item wins).
    keep = ~np.isin(buffer.item_ids, item_ids)
    old_ids, old_labels, old_feats = buffer.item_ids[keep], buffer.labels[keep], buffer.features[keep]

    seen = dict(zip(buffer.seen_labels.tolist(), buffer.seen_counts.tolist(), strict=True))
    new_by_class: dict[str, np.ndarray] = {}
    for c in np.unique(labels):
        new_by_class[str(c)] = np.flatnonzero(labels == c)
    old_by_class = {str(c): np.flatnonzero(old_labels == c) for c in np.unique(old_labels)}
    classes = sorted(set(seen) | set(new_by_class) | set(old_by_class))
    available = {c: len(old_by_class.get(c, ())) + len(new_by_class.get(c, ())) for c in classes}
    weights = ({c: float(seen.get(c, 0) + len(new_by_class.get(c, ()))) for c in classes}
               if buffer.policy == "reservoir" else {c: 1.0 for c in classes})
    alloc = allocate(weights, available, buffer.budget, buffer.min_quota)

    out_ids, out_labels, out_feats = [], [], []
    for c in classes:
        cap = alloc[c]
        o_idx = old_by_class.get(c, np.array([], dtype=np.int64))
        n_idx = new_by_class.get(c, np.array([], dtype=np.int64))
        ids = np.concatenate([old_ids[o_idx], item_ids[n_idx]])
        feats = np.concatenate([old_feats[o_idx], features[n_idx]]) if len(ids) else np.zeros((0, features.shape[1]), np.float32)
        if buffer.policy == "herding":
            emb = embed_fn(feats) if len(feats) else feats  # type: ignore[misc]
            chosen = herding_select(np.asarray(emb, dtype=np.float64), cap)
        else:
            chosen = _reservoir(len(o_idx), len(n_idx), seen.get(c, 0), cap, rng)
        out_ids.append(ids[chosen])
        out_labels.append(np.full(len(chosen), c, dtype=object))
        out_feats.append(feats[chosen])
        seen[c] = seen.get(c, 0) + len(n_idx)

    seen_labels = sorted(seen)
    dim = features.shape[1] if features.size or not len(buffer) else buffer.dim
    return RehearsalBuffer(
        np.concatenate(out_ids).astype(str) if out_ids else np.array([], dtype=str),
        np.concatenate(out_labels).astype(str) if out_labels else np.array([], dtype=str),
        np.concatenate(out_feats).astype(np.float32) if out_feats else np.zeros((0, dim), np.float32),
        np.array(seen_labels, dtype=str), np.array([seen[c] for c in seen_labels], dtype=np.int64),
        buffer.budget, buffer.policy, buffer.min_quota, buffer.seed, buffer.updates + 1,
    )


def _reservoir(n_old: int, n_new: int, seen_before: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Algorithm R continued: indices (old first, then new) kept in a reservoir of size ``cap``.

    The stored items are a uniform sample of the ``seen_before`` items; a uniform subset of them is
    still uniform, so a smaller cap (more classes now share the budget) just subsamples.
    """
    slots = list(range(n_old))
    if len(slots) > cap:
        slots = sorted(rng.choice(n_old, size=cap, replace=False).tolist())
    n = max(seen_before, n_old)
    for j in range(n_new):
        n += 1
        idx = n_old + j
        if len(slots) < cap:
            slots.append(idx)
        else:
            r = int(rng.integers(n))
            if r < cap:
                slots[r] = idx
    return np.array(slots, dtype=np.int64)
