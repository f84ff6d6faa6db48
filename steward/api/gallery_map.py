"""A 2-D map of a model version's gallery: where the classes sit, where the newest batch landed, and
which items the novelty detector named.

The vectors are the ones the version's newest index holds (reconstructed from the index, so no
model is loaded and nothing is embedded again); at most ``max_points`` of them, the newest batch's
and the novel items first. PCA by default (numpy, deterministic); UMAP when ``umap-learn`` is
importable and asked for. Projection and sampling are pure; :func:`build_map` does the reading.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import NotFoundError
from embedding.report import ModelReport
from steward.api.charts import ScatterPoint, colour, scatter_svg

MAX_POINTS = 2000
METHODS = ("pca", "umap")
UNLABELLED = "(no label)"


def umap_available() -> bool:
    return importlib.util.find_spec("umap") is not None


def sample_positions(n: int, max_points: int, priority: Sequence[int], seed: int) -> np.ndarray:
    """Sorted positions of at most ``max_points`` of ``n`` items: the ``priority`` ones first (in their
    order, up to the cap), the rest a seeded uniform sample of the others."""
    if max_points <= 0 or n <= 0:
        return np.empty(0, dtype=np.int64)
    chosen = list(dict.fromkeys(int(p) for p in priority if 0 <= int(p) < n))[:max_points]
    room = min(max_points, n) - len(chosen)
    if room > 0:
        rest = np.setdiff1d(np.arange(n), np.asarray(chosen, dtype=np.int64))
        chosen += np.random.default_rng(seed).choice(rest, size=room, replace=False).tolist()
    return np.sort(np.asarray(chosen, dtype=np.int64))


def project(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """``(n, 2)`` coordinates and a sentence saying how they were made."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        return np.zeros((0, 2)), "no vectors"
    if method == "umap" and len(x) > 16:
        import umap  # optional: only when installed and asked for

        xy = umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
        return np.asarray(xy, dtype=np.float64), "UMAP (cosine geometry kept locally; distances between clusters mean little)"
    centred = x - x.mean(axis=0)
    if len(x) == 1 or not np.any(centred):
        return np.zeros((len(x), 2)), "PCA (all points coincide)"
    # Top two components by subspace iteration (a few thin matrix products) rather than a full SVD or
    # eigendecomposition: those took seconds for 2,000 x 384 on a busy 2-core machine (LAPACK threads),
    # this takes milliseconds, and a map needs no more precision than this gives.
    n, d = centred.shape
    k = min(6, d, n)
    q = np.random.default_rng(seed).normal(size=(d, k))
    for _ in range(12):
        q, _ = np.linalg.qr(centred.T @ (centred @ q))
    b = centred @ q
    w, v = np.linalg.eigh(b.T @ b)  # k x k
    order = np.argsort(w)[::-1][:2]
    comps = (q @ v[:, order]).T
    top = np.clip(w[order], 0.0, None)
    # Sign convention: the largest loading of each component is positive, so a map is reproducible.
    comps = comps * np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    xy = centred @ comps.T
    if xy.shape[1] == 1:
        xy = np.hstack([xy, np.zeros((len(xy), 1))])
    total = float((centred**2).sum())
    share = float(top.sum()) / total if total > 0 else 0.0
    return xy, f"PCA: the two directions of largest variance, {share:.0%} of the variance"


@dataclass(frozen=True)
class GallerySample:
    item_ids: tuple[str, ...]
    vectors: np.ndarray  # (len(item_ids), dim)
    total: int  # items in the index


GalleryReader = Callable[[Any, Any, int, Sequence[str], int], GallerySample]


def read_index_sample(workspace: Any, index: Any, max_points: int, priority_ids: Sequence[str],
                      seed: int) -> GallerySample:
    """The sampled items' vectors as the registered index stores them (checksum-verified artifact)."""
    from embedding.index.service import load_index

    ann = load_index(workspace, index.id)
    ids = ann.item_ids()
    where = {item: k for k, item in enumerate(ids)}
    pos = sample_positions(len(ids), max_points, [where[i] for i in priority_ids if i in where], seed)
    chosen = [ids[p] for p in pos]
    vectors = ann.vectors_of_labels(np.array([ann.label_of(i) for i in chosen], dtype=np.int64))
    return GallerySample(tuple(chosen), vectors, len(ids))


@dataclass(frozen=True)
class MapPoint:
    item_id: str
    label: str
    x: float
    y: float
    new: bool  # stored by the newest batch the index holds
    novel: bool  # named by a drift check's novelty detector


@dataclass(frozen=True)
class ClassKey:
    label: str
    colour: str
    count: int  # points of this class on the map
    new_class: bool  # new to this model version (not among its parent's classes)


@dataclass(frozen=True)
class GalleryMap:
    collection: str
    model_version: int
    index_version: int
    as_of_batch: int | None
    method: str
    note: str
    total: int
    points: tuple[MapPoint, ...]
    classes: tuple[ClassKey, ...]
    svg: str

    @property
    def new_count(self) -> int:
        return sum(p.new for p in self.points)

    @property
    def novel_count(self) -> int:
        return sum(p.novel for p in self.points)


def _labels(workspace: Any, collection: str, as_of: int | None, ids: Sequence[str]) -> dict[str, str]:
    import pyarrow.compute as pc

    try:
        table = workspace.store.read(collection, as_of=as_of, columns=["label"])
    except NotFoundError:
        return {}
    if "label" not in table.column_names:
        return {}
    table = table.filter(pc.is_in(table["item_id"], value_set=_string_array(ids)))
    return {i: (lab if lab is not None else UNLABELLED)
            for i, lab in zip(table["item_id"].to_pylist(), table["label"].to_pylist(), strict=True)}


def _string_array(values: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.array(list(values), pa.string())


def _new_ids(workspace: Any, collection: str, as_of: int | None) -> list[str]:
    if as_of is None:
        return []
    try:
        return workspace.store.read(collection, as_of=as_of, columns=["item_id"], partition={as_of})[
            "item_id"].to_pylist()
    except NotFoundError:
        return []


def _novel_ids(workspace: Any, collection: str, as_of: int | None) -> list[str]:
    from monitoring.summary import DriftSummary

    out: list[str] = []
    for r in workspace.registry.monitoring.list_drift_reports(collection, limit=200):
        if as_of is not None and r.batch_seq is not None and r.batch_seq > as_of:
            continue
        out += [str(n["item_id"]) for n in DriftSummary.from_dict(r.summary or {}).novel_items if n.get("item_id")]
    return list(dict.fromkeys(out))


def build_map(workspace: Any, collection: str, model_version: int, *, method: str = "pca",
              max_points: int = MAX_POINTS, seed: int = 0, reader: GalleryReader = read_index_sample) -> GalleryMap:
    registry = workspace.registry.models
    model = registry.get_model(collection, model_version)  # NotFoundError -> 404
    indexes = registry.list_indexes(collection, model_version)
    if not indexes:
        raise NotFoundError(f"model v{model_version} of {collection!r} has no index yet, so there is nothing to "
                            "map; build one with `steward index build`")
    index = max(indexes, key=lambda i: i.id)
    as_of = index.as_of_batch
    novel, new = _novel_ids(workspace, collection, as_of), _new_ids(workspace, collection, as_of)
    # The newest batch fills at most half the map, so the older gallery stays visible around it.
    priority = novel[:max_points] + new[: max_points // 2]
    sample = reader(workspace, index, max_points, priority, seed)
    labels = _labels(workspace, collection, as_of, sample.item_ids)
    used = method if method == "pca" or umap_available() else "pca"
    xy, note = project(sample.vectors, used, seed)
    if method == "umap" and used != "umap":
        note = "UMAP is not installed (pip install umap-learn); showing " + note
    ev = ModelReport.from_dict(model.metrics or {}).evaluation
    old = set(ev.old_classes) if ev is not None else set()
    novel_set, new_set = set(novel), set(new)
    points = tuple(MapPoint(i, labels.get(i, UNLABELLED), float(x), float(y), i in new_set, i in novel_set)
                   for i, (x, y) in zip(sample.item_ids, xy, strict=True))
    counts: dict[str, int] = {}
    for p in points:
        counts[p.label] = counts.get(p.label, 0) + 1
    classes = tuple(ClassKey(c, colour(k), counts[c], bool(old) and c not in old and c != UNLABELLED)
                    for k, c in enumerate(sorted(counts)))
    colours = {c.label: c.colour for c in classes}
    svg = scatter_svg(
        [ScatterPoint(p.x, p.y, p.label, f"{p.item_id} ({p.label})" + (", new" if p.new else "")
                      + (", novel" if p.novel else ""), ring=p.new, cross=p.novel) for p in points],
        colours, title=f"model v{model_version}, index {index.id}: {len(points)} of {sample.total} items")
    return GalleryMap(collection, model_version, index.id, as_of, used, note, sample.total, points, classes, svg)


class MapCache:
    """Maps by (collection, index id, method, size): an index never changes once registered, so a map
    of it never goes stale. Bounded, thread-safe (the dashboard serves requests on a thread pool)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._maps: OrderedDict[tuple, GalleryMap] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, workspace: Any, collection: str, model_version: int, *, method: str = "pca",
            max_points: int = MAX_POINTS, reader: GalleryReader = read_index_sample) -> GalleryMap:
        indexes = workspace.registry.models.list_indexes(collection, model_version)
        key = (collection, max((i.id for i in indexes), default=None), model_version, method, max_points)
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
        made = build_map(workspace, collection, model_version, method=method, max_points=max_points, reader=reader)
        with self._lock:
            self._maps[key] = made
            while len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return made
