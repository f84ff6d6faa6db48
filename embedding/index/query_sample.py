"""Recent query vectors for index tuning: sampled by the search service, read by index builds and updates.

The search service offers every query it answers to a :class:`QueryRecorder` (after the answer is
computed, outside ``AnnIndex.search``). The recorder keeps one :class:`QueryReservoir` per collection
and model version in memory and writes changed ones to the workspace's
:class:`~storage.query_samples.QuerySampleStore` at most every ``index.query_sample_flush_seconds``
(from a background thread, and on shutdown): a query costs no disk write.

Reservoir: the first ``size`` queries fill the sample; after that, query number ``n`` replaces a
random slot with probability ``size / min(n, horizon)``. Up to ``horizon`` queries this is Algorithm
R, a uniform sample of every query seen; past it each query enters with probability
``size / horizon``, so a query's chance of still being in the sample decays as
``(1 - 1/horizon) ** age``: the sample spreads over about the last ``horizon`` queries, and old
traffic fades out instead of outweighing today's.

:func:`recent_queries` gives a build or update the sample for its model version; for a model
version the service has not served yet (a freshly trained candidate) it embeds the raw feature
queries recorded under an earlier version, when the model takes feature vectors.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.periodic import Periodic

log = logging.getLogger(__name__)


class QueryReservoir:
    """A bounded, recency-weighted sample of query vectors (and their raw inputs, when given)."""

    def __init__(self, size: int, horizon: int, *, seed: int | None = None) -> None:
        if size < 1 or horizon < size:
            raise ValueError(f"reservoir needs size >= 1 and horizon >= size, got size={size}, horizon={horizon}")
        self.size = size
        self.horizon = horizon
        self._vectors: np.ndarray | None = None
        self._inputs: np.ndarray | None = None
        self._keep_inputs = True  # dropped for good once an offer comes without inputs (rows must align)
        self._filled = 0
        self.seen = 0
        self._lock = threading.Lock()
        self._rand = random.Random(seed)

    def offer(self, vectors: np.ndarray, inputs: np.ndarray | None = None) -> None:
        """Consider each row of ``vectors`` (n, d) (with the row of ``inputs`` it was embedded from)."""
        with self._lock:
            if self._vectors is None:
                self._vectors = np.empty((self.size, vectors.shape[1]), np.float32)
                if inputs is not None:
                    self._inputs = np.empty((self.size, inputs.shape[1]), np.float32)
            if vectors.shape[1] != self._vectors.shape[1]:
                return  # not this model's space: nothing to learn from it
            if self._inputs is not None and (inputs is None or inputs.shape[1] != self._inputs.shape[1]):
                self._inputs, self._keep_inputs = None, False
            for i in range(vectors.shape[0]):
                self.seen += 1
                if self._filled < self.size:
                    slot = self._filled
                    self._filled += 1
                else:
                    slot = self._rand.randrange(min(self.seen, self.horizon))
                    if slot >= self.size:
                        continue
                self._vectors[slot] = vectors[i]
                if self._inputs is not None:
                    self._inputs[slot] = inputs[i]  # type: ignore[index]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray | None, int]:
        """(vectors, inputs or None, queries seen): copies of the filled rows."""
        with self._lock:
            if self._vectors is None:
                return np.zeros((0, 0), np.float32), None, self.seen
            inputs = None if self._inputs is None else self._inputs[: self._filled].copy()
            return self._vectors[: self._filled].copy(), inputs, self.seen


class QueryRecorder:
    """The search service's reservoirs, one per (collection, model version), written at a bounded rate.

    ``store``: a :class:`~storage.query_samples.QuerySampleStore` (None: nothing is recorded).
    ``settings``: ``core.settings.IndexSettings``.
    """

    def __init__(self, store: Any, settings: Any, *, writer: str | None = None, seed: int | None = None) -> None:
        self.store = store
        self.size = int(settings.query_sample_size)
        self.horizon = int(settings.query_sample_horizon)
        self.flush_seconds = float(settings.query_sample_flush_seconds)
        self.max_age_seconds = float(settings.query_sample_max_age_hours) * 3600
        host = socket.gethostname().replace("-", "_")[:40]
        self.writer = writer or f"{host}-{uuid.uuid4().hex[:12]}"  # this process's own file name
        self._seed = seed
        self._reservoirs: dict[tuple[str, int], QueryReservoir] = {}
        self._written: dict[tuple[str, int], tuple[int, float]] = {}  # key -> (seen, when) at the last write
        self._lock = threading.Lock()
        self._flusher = Periodic("steward-query-sample")
        self.write_errors = 0

    @property
    def enabled(self) -> bool:
        return self.store is not None and self.size > 0

    def offer(self, collection: str, model_version: int, vectors: np.ndarray, inputs: np.ndarray | None = None
              ) -> None:
        """Record query embeddings (n, d) answered under ``model_version``; constant time per row, no I/O."""
        if not self.enabled or len(vectors) == 0:
            return
        key = (collection, int(model_version))
        res = self._reservoirs.get(key)
        if res is None:
            with self._lock:
                res = self._reservoirs.setdefault(key, QueryReservoir(self.size, self.horizon, seed=self._seed))
        res.offer(vectors, inputs)

    def flush(self, *, force: bool = False, now: float | None = None) -> int:
        """Write every sample that took new queries since its last write, when that write is older than
        ``flush_seconds`` (any age with ``force``). Returns how many were written; never raises (a
        sample is a hint for tuning: a failed write is logged and retried at the next flush)."""
        if not self.enabled:
            return 0
        from storage.query_samples import QuerySample

        now = time.time() if now is None else now
        written = 0
        for key, res in list(self._reservoirs.items()):
            seen_then, when = self._written.get(key, (0, float("-inf")))
            if res.seen == seen_then or (not force and now - when < self.flush_seconds):
                continue
            vectors, inputs, seen = res.snapshot()
            try:
                self.store.write(key[0], key[1], self.writer,
                                 QuerySample(vectors=vectors, seen=seen, written_at=now, inputs=inputs))
                if key not in self._written:  # first write for this collection in this process
                    self.store.prune(key[0], max_age_seconds=self.max_age_seconds, now=now)
            except Exception as e:  # noqa: BLE001 - a storage outage must not reach serving; retried later
                self.write_errors += 1
                log.warning("could not write the query sample of %s model v%d: %s", key[0], key[1], e)
                continue
            self._written[key] = (seen, now)
            written += 1
        return written

    def start(self, interval: float | None = None) -> None:
        """Flush from a daemon thread every ``interval`` seconds (default: the flush period, at most 5 s)."""
        if self.enabled:
            self._flusher.start(self.flush, interval if interval is not None else min(self.flush_seconds, 5.0))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what changed since the last write."""
        self._flusher.stop(timeout)
        self.flush(force=True)


@dataclass(frozen=True)
class RecentQueries:
    """What a build or update tunes on besides its held-out items."""

    vectors: np.ndarray  # (m, d) unit query embeddings under the index's model version
    from_model_version: int  # the model version the sample was recorded under
    embedded_from_inputs: bool  # True: raw feature queries recorded under another version, embedded now
    queries_seen: int  # how many queries the samples were drawn from

    def describe(self) -> dict[str, Any]:
        return {"n": len(self.vectors), "from_model_version": self.from_model_version,
                "embedded_from_inputs": self.embedded_from_inputs, "queries_seen": self.queries_seen}


def _cap(x: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """At most ``size`` usable rows (finite, non-zero: tuning refuses the others), a seeded random subset."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1) if len(x) else np.zeros(0)
    x = x[np.isfinite(norms) & (norms > 1e-12)]
    if len(x) <= size:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))]


def recent_queries(workspace: Any, collection: str, model_version: int, *, embedder: Any | None = None,
                   now: float | None = None) -> RecentQueries | None:
    """The recorded sample for ``model_version`` (every service process's, capped at
    ``index.query_sample_size``); else, for a model taking feature vectors, the newest earlier
    version's raw queries embedded with ``embedder``; else None."""
    s = workspace.settings.index
    store = getattr(workspace, "queries", None)
    if store is None or s.query_sample_size <= 0:
        return None
    max_age = s.query_sample_max_age_hours * 3600
    try:
        samples = [x for x in store.read(collection, model_version, max_age_seconds=max_age, now=now) if len(x.vectors)]
        if samples:
            v = _cap(np.concatenate([x.vectors for x in samples]), s.query_sample_size)
            if len(v):
                return RecentQueries(v, model_version, False, sum(x.seen for x in samples))
        if embedder is None or getattr(embedder, "input_kind", "features") != "features":
            return None
        for other in sorted(store.model_versions(collection), reverse=True):
            if other == model_version:
                continue
            samples = [x for x in store.read(collection, other, max_age_seconds=max_age, now=now)
                       if x.inputs is not None and len(x.inputs)]
            dims = {x.inputs.shape[1] for x in samples}
            want = getattr(embedder, "input_dim", None)
            if len(dims) != 1 or (want is not None and dims != {want}):
                continue
            raw = _cap(np.concatenate([x.inputs for x in samples]), s.query_sample_size)
            v = _cap(np.asarray(embedder.embed_features(raw), np.float32), s.query_sample_size)
            return RecentQueries(v, other, True, sum(x.seen for x in samples)) if len(v) else None
    except OSError as e:  # the artifact location is unreachable: tune on held-out items alone
        log.warning("could not read recent query samples of %s: %s", collection, e)
    return None


__all__ = ["QueryRecorder", "QueryReservoir", "RecentQueries", "recent_queries"]
