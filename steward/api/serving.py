"""What the search service serves, and how it follows the production alias without downtime.

One :class:`ServingPair` (a model and the index built with it) per collection is in service at a
time. The whole mapping collection -> pair is an immutable object held by one attribute of
:class:`ServingState`; a swap replaces that attribute in a single assignment, so a request that
reads it once at its start keeps a consistent pair for its whole life, even while a newer pair
is swapped in behind it. Readers never take a lock; only writers (the watcher thread and the
promote/rollback endpoints) serialise on one.

Loading happens off the request path: the watcher polls the registry's ``production`` alias,
loads the new pair (the loaders verify artifact checksums), and only then swaps. A failed load
leaves the old pair in service and is reported through :attr:`ServingState.failures` and the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from core.errors import NotFoundError
from core.periodic import Periodic

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ServingPair:
    """A model and its index, loaded, verified and ready to answer queries together."""

    collection: str
    model_version: int
    index_version: int
    embedder: Any  # embedding.inference.Embedder (or a test double with the same methods)
    index: Any  # embedding.index.ann.AnnIndex (or a test double)
    input_dim: int | None = None  # raw feature dimension the embedder takes (None: text model)
    input_kind: str = "features"  # "features" or "text"
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_seconds: float = 0.0

    @property
    def key(self) -> tuple[int, int]:
        return (self.model_version, self.index_version)

    def describe(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "index_version": self.index_version,
            "input_kind": self.input_kind,
            "input_dim": self.input_dim,
            "loaded_at": self.loaded_at.isoformat(),
            "load_seconds": round(self.load_seconds, 4),
        }


@dataclass(frozen=True)
class LoadFailure:
    """The last load that failed for a collection; the previous pair stays in service."""

    collection: str
    model_version: int
    index_version: int | None
    error: str
    at: datetime

    def describe(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "index_version": self.index_version,
            "error": self.error,
            "at": self.at.isoformat(),
        }


# (workspace, collection, model_version, index_version) -> a verified pair; raises on failure.
PairLoader = Callable[[Any, str, int, int], ServingPair]


def load_serving_pair(workspace: Any, collection: str, model_version: int, index_version: int) -> ServingPair:
    """The production loader: the registered model and index, checksums verified by their loaders."""
    from embedding.index.service import load_index
    from embedding.inference import load_embedder

    workspace.production.check_pair(collection, model_version, index_version)
    started = time.perf_counter()
    embedder = load_embedder(
        workspace, collection, model_version=model_version, device=workspace.settings.device
    )
    index = load_index(workspace, index_version)
    out_dim = getattr(embedder, "output_dim", None)
    if out_dim is not None and getattr(index, "dim", out_dim) != out_dim:
        raise NotFoundError(
            f"index version {index_version} has dim {index.dim} but model v{model_version} outputs "
            f"{out_dim}; rebuild the index for this model"
        )
    coll = workspace.registry.catalog.get_collection(collection)
    input_kind = getattr(embedder, "input_kind", None) or coll.kind
    return ServingPair(
        collection=collection,
        model_version=model_version,
        index_version=index_version,
        embedder=embedder,
        index=index,
        input_dim=(getattr(embedder, "input_dim", None) or coll.dim) if input_kind == "features" else None,
        input_kind=input_kind,
        load_seconds=time.perf_counter() - started,
    )


class ServingState:
    """The pairs in service, the watcher that keeps them in step with the registry, and a small cache.

    The cache keeps the last ``cache_size`` pairs per collection loaded, so a rollback to the
    pair that was just replaced swaps at once instead of reloading.
    """

    def __init__(
        self,
        workspace: Any,
        loader: PairLoader = load_serving_pair,
        *,
        cache_size: int = 2,
        retry_seconds: float = 30.0,
    ) -> None:
        self.workspace = workspace
        self.loader = loader
        self.cache_size = max(1, cache_size)
        self.retry_seconds = retry_seconds
        self._pairs: Mapping[str, ServingPair] = MappingProxyType({})
        self._write_lock = threading.RLock()  # writers only; readers never block
        self._cache: dict[str, OrderedDict[tuple[int, int], ServingPair]] = {}
        self.failures: dict[str, LoadFailure] = {}
        self.swaps: list[dict[str, Any]] = []  # recent swap log, newest last (bounded)
        self.last_poll_at: datetime | None = None
        self.last_poll_error: str | None = None
        self.poll_seconds: float | None = None
        self._watcher = Periodic("steward-api-watcher")

    # ---- readers (lock-free) -------------------------------------------------------------
    def snapshot(self) -> Mapping[str, ServingPair]:
        """The mapping in service right now; it never changes after it is returned."""
        return self._pairs

    def current(self, collection: str) -> ServingPair | None:
        return self._pairs.get(collection)

    # ---- writers -------------------------------------------------------------------------
    def _swap(self, pair: ServingPair, reason: str) -> None:
        with self._write_lock:
            old = self._pairs.get(pair.collection)
            if old is not None and old.key == pair.key:
                return
            self._pairs = MappingProxyType({**self._pairs, pair.collection: pair})
            self.failures.pop(pair.collection, None)
            self.swaps.append(
                {
                    "collection": pair.collection,
                    "from": None if old is None else list(old.key),
                    "to": list(pair.key),
                    "reason": reason,
                    "at": datetime.now(UTC).isoformat(),
                }
            )
            del self.swaps[:-50]
        log.info(
            "serving %s: model v%s + index %s (was %s; %s)",
            pair.collection,
            pair.model_version,
            pair.index_version,
            "nothing" if old is None else f"v{old.model_version} + index {old.index_version}",
            reason,
        )

    def load(self, collection: str, model_version: int, index_version: int | None) -> ServingPair:
        """Load (or take from the cache) a pair without putting it in service. Raises on failure."""
        with self._write_lock:
            index_version = self.workspace.production.index(
                collection, index_version=index_version, model_version=model_version
            ).id
            key = (model_version, index_version)
            cache = self._cache.setdefault(collection, OrderedDict())
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
            current = self._pairs.get(collection)
            if current is not None and current.key == key:
                return current
            self.workspace.production.check_pair(collection, model_version, index_version)
            pair = self.loader(self.workspace, collection, model_version, index_version)
            if pair.key != key or pair.collection != collection:
                raise NotFoundError(
                    f"loader returned {pair.collection!r} {pair.key} when asked for {collection!r} {key}"
                )
            cache[key] = pair
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
            return pair

    def refresh(self, collection: str | None = None, *, force: bool = False) -> dict[str, str]:
        """Bring the served pairs in step with the production alias; returns what happened per collection.

        ``force`` retries a target whose last load failed without waiting ``retry_seconds``.
        """
        names = [collection] if collection else [c.name for c in self.workspace.registry.catalog.list_collections()]
        outcome: dict[str, str] = {}
        for name in names:
            outcome[name] = self._refresh_one(name, force=force)
        self.last_poll_at = datetime.now(UTC)
        return outcome

    def _refresh_one(self, collection: str, *, force: bool) -> str:
        with self._write_lock:
            target = self.workspace.production.target(collection)
            if target is None:
                return "no production alias"
            current = self._pairs.get(collection)
            if (
                current is not None
                and current.model_version == target.model_version
                and (target.index_version is None or current.index_version == target.index_version)
            ):
                return "unchanged"
            failed = self.failures.get(collection)
            if (
                not force
                and failed is not None
                and (failed.model_version, failed.index_version)
                == (target.model_version, target.index_version)
                and (datetime.now(UTC) - failed.at).total_seconds() < self.retry_seconds
            ):
                return "load failed recently; waiting to retry"
            try:
                pair = self.load(collection, target.model_version, target.index_version)
            except Exception as e:  # any load failure must keep the old pair serving
                failure = LoadFailure(
                    collection=collection,
                    model_version=target.model_version,
                    index_version=target.index_version,
                    error=f"{type(e).__name__}: {e}",
                    at=datetime.now(UTC),
                )
                self.failures[collection] = failure
                log.error(
                    "could not load %s model v%s + index %s; still serving %s: %s",
                    collection,
                    target.model_version,
                    target.index_version,
                    "nothing"
                    if current is None
                    else f"v{current.model_version} + index {current.index_version}",
                    failure.error,
                    exc_info=not isinstance(e, NotFoundError),
                )
                return f"load failed: {failure.error}"
            self._swap(pair, reason="production alias changed")
            return "swapped"

    # ---- the watcher thread --------------------------------------------------------------
    def start(self, poll_seconds: float) -> None:
        if self._watcher.running:
            return
        self.poll_seconds = poll_seconds
        self._watcher.start(self.poll_once, poll_seconds)

    def stop(self, timeout: float = 10.0) -> None:
        self._watcher.stop(timeout)

    def poll_once(self) -> None:
        """One watcher step; never raises, so the thread survives a registry outage."""
        try:
            self.refresh()
            self.last_poll_error = None
        except Exception as e:  # a registry hiccup must not kill the watcher
            self.last_poll_error = f"{type(e).__name__}: {e}"
            self.last_poll_at = datetime.now(UTC)
            log.exception("polling the registry for the production alias failed; will retry")
