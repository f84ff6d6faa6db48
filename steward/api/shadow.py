"""Shadow A/B in the search service: mirror a share of live queries to another model version.

The production answer never waits for the shadow. A search request that is sampled hands its query
and production's answer to :meth:`ShadowMirror.offer`, which only puts them on a bounded queue
(constant time; when the queue is full the request is dropped from the shadow and counted, never
blocked). One background worker thread answers the queued queries with the shadow pair (the same
:func:`steward.api.routes.search.neighbours` production's answer runs), compares the two answers, and buffers one
:class:`~storage.registry.entities.ShadowRecord` per request; buffered records go to the registry in
batches (``shadow.flush_records`` or every ``shadow.flush_seconds``, and on shutdown).

Why a registry table rather than an append-only file: the promotion gate and ``steward shadow report``
run in other processes (maintenance runs, the CLI) and several API processes may mirror at once;
the registry is the one store all of them already share, with transactions for concurrent writers.

Sampling is deterministic: the n-th request offered is mirrored when ``floor((n+1)f) > floor(nf)``,
so exactly a share ``f`` of requests is mirrored, evenly spread, with no random generator to seed.

Hits (for queries that carry them): an expected item is a hit when it is among the top k; a label is
a hit when the top neighbour carries that label (item labels are read once per gallery version from
the item store, in the worker).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from steward.api.serving import ServingPair

log = logging.getLogger(__name__)
_RESOLVE_SECONDS = 30.0  # how long a resolved shadow target is reused before the registry is asked again
_MAX_BUFFER_FACTOR = 20  # records kept while the registry refuses them: this many flush batches


@dataclass(frozen=True)
class ShadowJob:
    """One mirrored request: what production was asked and what it answered."""

    pair: ServingPair
    request: Any  # steward.api.schemas.SearchRequest
    production_ids: tuple[tuple[str, ...], ...]
    production_ms: float


def overlap_at_k(production: Sequence[str], shadow: Sequence[str], k: int) -> float:
    """Share of production's top-k ids the shadow also returned in its top k."""
    if k <= 0:
        return 1.0
    return len(set(production[:k]) & set(shadow[:k])) / k


def is_hit(ids: Sequence[str], *, expected: str | None, label: str | None,
           labels: Mapping[str, str | None] | None) -> bool | None:
    """Whether one answer is right: the expected item in the top k, else the top neighbour's label;
    None when the query carries neither (or no label is known)."""
    if expected is not None:
        return expected in ids
    if label is not None and labels is not None:
        return bool(ids) and labels.get(ids[0]) == label
    return None


class ShadowMirror:
    """Samples requests, answers them with the shadow pair off the request path, records the comparison.

    ``settings``: ``core.settings.ShadowSettings``. ``loader``: the service's pair loader.
    ``write``: stores a batch of records (``registry.shadow.record``). ``labels``: item id -> label of a
    collection (read lazily, only when a labelled query arrives).
    """

    def __init__(self, settings: Any, workspace: Any, loader: Callable[[Any, str, int, int], ServingPair], *,
                 write: Callable[[Sequence[Any]], int] | None = None,
                 labels: Callable[[str], Mapping[str, str | None]] | None = None) -> None:
        self.settings = settings
        self.workspace = workspace
        self.loader = loader
        self.write = write or workspace.registry.shadow.record
        self.labels = labels or self._read_labels
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=settings.queue_size)
        self._lock = threading.Lock()
        self._n = 0
        self.offered = self.mirrored = self.dropped = self.answered = self.errors = self.skipped = 0
        self.written = self.lost = 0
        self.last_error: str | None = None
        self._buffer: list[Any] = []
        self._targets: dict[str, tuple[float, ServingPair | None, str | None]] = {}
        self._label_cache: dict[tuple[str, int], Mapping[str, str | None]] = {}
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.fraction > 0

    # ---- the request path: constant time, never blocks ---------------------------------------------
    def offer(self, pair: ServingPair, request: Any, response: Any, production_seconds: float) -> bool:
        """Queue this request for the shadow when it is sampled; True when queued."""
        coll = self.settings.collection
        if not self.enabled or (coll is not None and coll != pair.collection):
            return False
        f = self.settings.fraction
        with self._lock:
            n = self._n
            self._n += 1
            self.offered += 1
            if math.floor((n + 1) * f) <= math.floor(n * f):
                return False
            job = ShadowJob(pair, request, tuple(tuple(h.item_ids) for h in response.results),
                            production_seconds * 1000)
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.dropped += 1  # the shadow falls behind: production must not wait for it
                return False
            self.mirrored += 1
            return True

    # ---- the worker ----------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._run, name="steward-api-shadow", daemon=True)
        self._thread.start()
        log.info("shadow A/B on: mirroring %.3g of search requests to %s", self.settings.fraction,
                 f"model v{self.settings.version}" if self.settings.version else "the newest candidate")

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued requests, write every buffered record, and stop the worker."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)  # waits only while the queue is full and the worker drains it
        except queue.Full:
            log.warning("the shadow worker did not drain its queue in %s s; stopping without it", timeout)
        self._thread.join(timeout)
        self._thread = None
        self.flush()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued request is answered and flush (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        self.flush()

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            wait = max(0.01, self.settings.flush_seconds - (time.monotonic() - last_flush))
            try:
                job = self._queue.get(timeout=wait)
            except queue.Empty:
                job = ...
            if job is None:
                self._queue.task_done()
                return
            if job is not ...:
                try:
                    self.process(job)
                except Exception as e:  # noqa: BLE001 - a shadow failure must never reach production; counted
                    with self._lock:
                        self.errors += 1
                        self.last_error = f"{type(e).__name__}: {e}"
                    log.warning("shadow search failed: %s", self.last_error)
                finally:
                    self._queue.task_done()
            if len(self._buffer) >= self.settings.flush_records or (
                    self._buffer and time.monotonic() - last_flush >= self.settings.flush_seconds):
                self.flush()
                last_flush = time.monotonic()

    def process(self, job: ShadowJob) -> Any | None:
        """Answer one mirrored request with the shadow pair and buffer the comparison (worker thread)."""
        from steward.api.routes.search import neighbours
        from storage.registry.entities import ShadowRecord

        shadow = self.target(job.pair)
        if shadow is None:  # nothing to compare with (why: stats()["targets"]); counted, not silent
            with self._lock:
                self.skipped += 1
            return None
        started = time.perf_counter()
        shadow_ids, _ = neighbours(shadow, job.request)  # what production's answer() runs, unshaped
        shadow_ms = (time.perf_counter() - started) * 1000
        req = job.request
        k = min(req.k, *(len(ids) for ids in job.production_ids)) if job.production_ids else req.k
        n = len(job.production_ids)
        expected = list(req.expected_item_ids or [None] * n)
        wanted = list(req.labels or [None] * n)
        labels = None
        if any(x is not None for x in wanted):
            labels = self._labels_for(job.pair)
        overlap = labelled = prod_hits = shadow_hits = 0
        for i, prod_ids in enumerate(job.production_ids):
            overlap += overlap_at_k(prod_ids, shadow_ids[i], k) if k else 1.0
            p = is_hit(prod_ids, expected=expected[i], label=wanted[i], labels=labels)
            s = is_hit(shadow_ids[i], expected=expected[i], label=wanted[i], labels=labels)
            if p is not None and s is not None:
                labelled += 1
                prod_hits += int(p)
                shadow_hits += int(s)
        record = ShadowRecord(
            collection=job.pair.collection, production_model=job.pair.model_version,
            production_index=job.pair.index_version, shadow_model=shadow.model_version,
            shadow_index=shadow.index_version, k=k, queries=n, overlap_sum=float(overlap), labelled=labelled,
            production_hits=prod_hits, shadow_hits=shadow_hits, production_ms=job.production_ms,
            shadow_ms=shadow_ms, at=datetime.now(UTC),
        )
        with self._lock:
            self._buffer.append(record)
            self.answered += 1
        return record

    def flush(self) -> int:
        """Write the buffered records in one transaction; on failure keep them (bounded) for the next try."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            written = self.write(batch)
        except Exception as e:  # noqa: BLE001 - the registry may be briefly down: keep the records
            limit = self.settings.flush_records * _MAX_BUFFER_FACTOR
            with self._lock:
                self._buffer = batch + self._buffer
                over = len(self._buffer) - limit
                if over > 0:
                    del self._buffer[:over]
                    self.lost += over
                self.last_error = f"writing shadow records failed: {type(e).__name__}: {e}"
            log.warning("%s; %d records kept for the next try", self.last_error, len(self._buffer))
            return 0
        with self._lock:
            self.written += written
        return written

    # ---- what the shadow is ---------------------------------------------------------------------------
    def target(self, production: ServingPair) -> ServingPair | None:
        """The shadow pair for ``production``'s collection (loaded once, re-resolved every 30 s)."""
        name = production.collection
        at, pair, _ = self._targets.get(name, (-math.inf, None, None))
        if time.monotonic() - at < _RESOLVE_SECONDS:
            return pair
        version, why = self._resolve_version(name, production.model_version)
        if version == production.model_version:  # e.g. the shadowed version has been promoted since
            version, why = None, f"model v{version} is production now; nothing to compare it with"
        if version is None:
            self._targets[name] = (time.monotonic(), None, why)
            return None
        index = self.workspace.production.index(name, model_version=version).id
        if pair is None or pair.key != (version, index):
            pair = self.loader(self.workspace, name, version, index)
        self._targets[name] = (time.monotonic(), pair, None)
        return pair

    def _resolve_version(self, collection: str, production_model: int) -> tuple[int | None, str | None]:
        if self.settings.version is not None:
            return self.settings.version, None
        # The newest version that is not production, not refused by the gate, and has an index to serve.
        for m in sorted(self.workspace.registry.models.list_models(collection), key=lambda m: -m.version):
            if m.version == production_model or m.status in ("rejected", "archived"):
                continue
            if self.workspace.registry.models.list_indexes(collection, m.version):
                return m.version, None
        return None, "no candidate with an index to shadow"

    def _labels_for(self, pair: ServingPair) -> Mapping[str, str | None]:
        key = (pair.collection, pair.index_version)
        if key not in self._label_cache:
            self._label_cache = {key: self.labels(pair.collection)}  # one gallery's labels at a time
        return self._label_cache[key]

    def _read_labels(self, collection: str) -> Mapping[str, str | None]:
        table = self.workspace.store.read(collection, columns=["item_id", "label"])
        return dict(zip(table.column("item_id").to_pylist(), table.column("label").to_pylist(), strict=True))

    # ---- what /shadow shows -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._lock:
            out = {
                "fraction": self.settings.fraction, "version": self.settings.version,
                "collection": self.settings.collection, "queue_size": self.settings.queue_size,
                "offered": self.offered, "mirrored": self.mirrored, "dropped": self.dropped,
                "answered": self.answered, "errors": self.errors, "skipped": self.skipped, "written": self.written,
                "lost": self.lost,
                "pending": len(self._buffer), "queued": self._queue.qsize(), "last_error": self.last_error,
            }
        out["targets"] = {
            name: {"model_version": None, "index_version": None, "why_none": why} if pair is None else
            {"model_version": pair.model_version, "index_version": pair.index_version, "why_none": None}
            for name, (_, pair, why) in sorted(self._targets.items())
        }
        return out
