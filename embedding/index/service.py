"""Index versions for a collection: build from a model version, load verified, update incrementally.

Build: stream the gallery (items as of a batch) from the Parquet store in record batches, embed each
batch with the model version, choose/build/tune the index, save it atomically as one artifact and
register the index version with what was measured. Raw features are never all in memory at once;
the embeddings are (the index needs them anyway).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ConflictError, NotFoundError, ValidationError
from embedding.index.ann import FORMAT_VERSION, AnnIndex
from embedding.index.build import checked_vectors
from embedding.index.choice import choice_from_factory, choose_index
from embedding.index.incremental import IncrementalOutcome, IncrementalPolicy, apply_changes
from embedding.index.query_sample import RecentQueries
from embedding.index.query_sample import recent_queries as recorded_queries
from embedding.index.reference import PARAM as REFERENCE_PARAM
from embedding.index.reference import (
    ReferenceEmbeddings,
    RowsById,
    load_reference,
    reference_window,
    save_reference,
    window_rows,
)
from embedding.index.tune import (
    DEFAULT_TARGET_RECALL,
    HELD_OUT,
    RECENT,
    TuneResult,
    ground_truth,
    held_out_split,
    tune,
)
from embedding.streaming import gallery_embeddings, input_columns

if TYPE_CHECKING:  # pragma: no cover
    from storage.registry.entities import IndexVersion
    from storage.workspace import Workspace

log = logging.getLogger(__name__)

TUNE_QUERIES = 1000


def _embedder(workspace: Workspace, collection: str, model_version: int, embedder: Any | None) -> Any:
    if embedder is not None:
        return embedder
    from embedding.inference import load_embedder

    return load_embedder(workspace, collection, model_version)


def _save_and_register(
    workspace: Workspace,
    collection: str,
    model_version: int,
    ann: AnnIndex,
    *,
    as_of_batch: int | None,
    params: dict[str, Any],
    metrics: dict[str, Any],
) -> IndexVersion:
    with tempfile.TemporaryDirectory(prefix="steward-index-") as tmp:
        path = ann.save(Path(tmp) / "index.bin")
        size = path.stat().st_size
        sha = workspace.artifacts.put_file(path)
    metrics = metrics | {"bytes": size}
    params = {
        "format": FORMAT_VERSION,
        "family": ann.family,
        "metric": "inner_product",
        "search": dict(ann.search_params),
        "build": ann.meta.get("choice_params", {}),
        "dim": ann.dim,
        "model_version": model_version,
    } | params
    iv = workspace.registry.models.register_index(
        collection, model_version, factory=ann.factory, params=params, metrics=metrics,
        artifact=sha, as_of_batch=as_of_batch, num_vectors=ann.ntotal,
        require_present=workspace.artifacts.require_present,
    )
    log.info("registered index version %d for %s model %d: %s, %d vectors, %d bytes",
             iv.id, collection, model_version, ann.factory, ann.ntotal, size)
    return iv


def _reference_params(workspace: Workspace, collection: str, emb: Any, as_of: int,
                      vectors_by_id: Any) -> dict[str, Any]:
    """Keep the embeddings of the next drift check's reference window with the index (see
    embedding/index/reference.py): the check then embeds only its new batch."""
    window = reference_window(workspace, collection, as_of, workspace.settings.drift.reference_batches)
    return save_reference(workspace, window_rows(workspace, collection, input_columns(emb)[0], window,
                                                 vectors_by_id))


def build_and_tune(
    item_ids: list[str],
    vectors: np.ndarray,
    *,
    target_recall: float = DEFAULT_TARGET_RECALL,
    memory_budget_bytes: int | None = None,
    latency_target_ms: float | None = None,
    tune_queries: int = TUNE_QUERIES,
    threads: int | None = None,
    progress: bool = False,
    factory: str | None = None,
    recent_queries: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[AnnIndex, TuneResult, dict[str, Any]]:
    """Choose, build and tune on held-out queries; the held-out items join the index afterwards.

    A sample of the newest items is kept out of the build and used as queries (plus
    ``recent_queries``, real query vectors, when given), with exact ground truth over what the
    index holds, so the recall stored is what unseen queries get.
    """
    ids = np.asarray([str(i) for i in item_ids], dtype=str)
    x = checked_vectors(ids, vectors)
    n, dim = x.shape
    choice = (choice_from_factory(factory, n, dim) if factory else
              choose_index(n, dim, memory_budget_bytes=memory_budget_bytes, latency_target_ms=latency_target_ms))
    log.info("index choice for %d x %d: %s (%s)", n, dim, choice.factory, choice.reason)
    held = held_out_split(n, tune_queries, seed=seed)
    keep = np.ones(n, bool)
    keep[held] = False
    ann = AnnIndex.build(ids[keep], x[keep], choice, threads=threads, progress=progress)
    t0 = time.perf_counter()
    truths = []
    labels = np.arange(int(keep.sum()), dtype=np.int64)  # build() labels items in input order
    if len(held):
        truths.append(ground_truth(x[keep], labels, x[held], 10, HELD_OUT))
    if recent_queries is not None and len(recent_queries):
        rq = checked_vectors(np.arange(len(recent_queries)).astype(str), recent_queries, dim)
        truths.append(ground_truth(x[keep], labels, rq, 10, RECENT))
    if not truths:  # a handful of items: nothing to hold out, measure on the gallery itself
        truths.append(ground_truth(x, labels, x, 10, "gallery_items"))
    result = tune(ann, truths, target_recall=target_recall, threads=threads)
    tune_s = time.perf_counter() - t0
    if len(held):
        ann.add(ids[held], x[held])
    ann.meta["fresh_latency_p50_ms"] = result.latency.p50_ms
    metrics = result.metrics() | {
        "build_seconds": ann.meta["build_seconds"],
        "train_seconds": ann.meta["train_seconds"],
        "tune_seconds": tune_s,
        "estimated_bytes": choice.estimated_bytes,
        "choice_reason": choice.reason,
        "measured_after": "build",
    }
    return ann, result, metrics


def build_index_for_model(
    workspace: Workspace,
    collection: str,
    model_version: int,
    *,
    as_of: int | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL,
    memory_budget_bytes: int | None = None,
    latency_target_ms: float | None = None,
    embedder: Any | None = None,
    batch_size: int = 8192,
    tune_queries: int = TUNE_QUERIES,
    threads: int | None = None,
    progress: bool = True,
    factory: str | None = None,
    recent_queries: np.ndarray | None = None,
) -> IndexVersion:
    """Embed the gallery as of ``as_of`` (None: newest batch) with ``model_version``; build, tune, register.

    Tuning uses held-out items plus ``recent_queries``; when none are given, the query vectors the
    search service recorded (``index.query_sample_size``, see embedding/index/query_sample.py).
    """
    if not 0 < target_recall <= 1:
        raise ValidationError(f"target_recall must be in (0, 1], got {target_recall}")
    workspace.registry.models.get_model(collection, model_version)  # NotFoundError before any heavy work
    if as_of is None:
        latest = workspace.registry.catalog.latest_batch(collection)
        if latest is None:
            raise NotFoundError(f"collection {collection!r} has no batches; ingest data first")
        as_of = latest.seq
    emb = _embedder(workspace, collection, model_version, embedder)
    t0 = time.perf_counter()
    ids, vectors = gallery_embeddings(workspace, collection, emb, as_of=as_of, batch_size=batch_size,
                                      progress=progress)
    embed_s = time.perf_counter() - t0
    reference = _reference_params(workspace, collection, emb, as_of, RowsById(ids, vectors))
    recent, recent_info = _recent(workspace, collection, model_version, emb, recent_queries)
    ann, _result, metrics = build_and_tune(
        ids, vectors, target_recall=target_recall, memory_budget_bytes=memory_budget_bytes,
        latency_target_ms=latency_target_ms, tune_queries=tune_queries, threads=threads, progress=progress,
        factory=factory, recent_queries=recent,
    )
    del vectors
    return _save_and_register(
        workspace, collection, model_version, ann, as_of_batch=as_of,
        params={"target_recall": target_recall, "memory_budget_bytes": memory_budget_bytes,
                "latency_target_ms": latency_target_ms, "factory_override": factory} | reference,
        metrics=metrics | {"embed_seconds": embed_s, "recent_queries": recent_info},
    )


def _recent(workspace: Workspace, collection: str, model_version: int, embedder: Any,
            given: np.ndarray | None) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """The recent queries to tune on (given ones win) and what they were, for the version's metrics."""
    if given is not None:
        return given, {"n": len(given), "from": "caller"}
    found: RecentQueries | None = recorded_queries(workspace, collection, model_version, embedder=embedder)
    if found is None:
        return None, None
    log.info("tuning %s model %d also on %d recent queries (recorded under model %d%s)", collection, model_version,
             len(found.vectors), found.from_model_version, ", embedded now" if found.embedded_from_inputs else "")
    return found.vectors, found.describe() | {"from": "search service"}


def _updated_reference(workspace: Workspace, collection: str, iv: IndexVersion, batch_seq: int, column: str,
                       start: int, new_vectors: dict[str, np.ndarray]) -> dict[str, Any]:
    """The reference window as of ``batch_seq``: rows of the new batches from ``new_vectors``, rows
    of older batches still in the window from the parent index's stored reference."""
    window = reference_window(workspace, collection, batch_seq, workspace.settings.drift.reference_batches)
    fresh = window_rows(workspace, collection, column, [s for s in window if s >= start], new_vectors)
    parts = [fresh] if fresh is not None else []
    old_seqs = [s for s in window if s < start]
    parent = load_reference(workspace, iv) if old_seqs else None
    if parent is not None:
        # An item the new batches rewrote is no longer the old row's item as of batch_seq.
        keep = np.isin(parent.batches, old_seqs) & ~np.isin(parent.item_ids, list(new_vectors))
        parts.append(parent.select(keep))
    return save_reference(workspace, ReferenceEmbeddings.concat(parts) if parts else None)


def load_index(workspace: Workspace, index_version_id: int, *, mmap: bool = True) -> AnnIndex:
    """The registered index, checksum-verified by the artifact store; memory-mapped (read-only) by default."""
    iv = workspace.registry.models.get_index(index_version_id)
    path = workspace.artifacts.local_path(iv.artifact)  # raises ArtifactIntegrityError when altered
    ann = AnnIndex.load(path, mmap=mmap, verify=False)  # the store just hashed the whole file
    ann.meta["index_version"] = iv.id
    ann.meta["model_version"] = iv.model_version
    return ann


def update_index(
    workspace: Workspace,
    collection: str,
    index_version_id: int,
    batch_seq: int,
    *,
    embedder: Any | None = None,
    policy: IncrementalPolicy | None = None,
    progress: bool = False,
    recent_queries: np.ndarray | None = None,
) -> IndexVersion:
    """Apply batches after the index's ``as_of_batch`` up to ``batch_seq`` and register the result.

    New and updated items are (re-)embedded with the index's model version and upserted; items no
    longer live as of ``batch_seq`` are removed. The new version's metrics say whether a rebuild is
    proposed (``rebuild_proposed``) and why.
    """
    iv = workspace.registry.models.get_index(index_version_id)
    if iv.collection != collection:
        raise ValidationError(f"index version {iv.id} belongs to {iv.collection!r}, not {collection!r}")
    start = (iv.as_of_batch or 0) + 1
    if batch_seq < start:
        raise ConflictError(
            f"index version {iv.id} already includes batch {batch_seq} (it is as of batch {iv.as_of_batch})"
        )
    workspace.registry.catalog.get_batch(collection, batch_seq)  # NotFoundError for a batch that does not exist
    emb = _embedder(workspace, collection, iv.model_version, embedder)
    column = input_columns(emb)[0]
    ann = load_index(workspace, iv.id, mmap=False)
    policy = policy or IncrementalPolicy(target_recall=float(iv.params.get("target_recall", DEFAULT_TARGET_RECALL)))

    latest: dict[str, np.ndarray] = {}  # a later batch's version of an item wins
    from core.progress import progress as report_progress

    seqs = report_progress(range(start, batch_seq + 1), f"updating index {iv.id}", total=batch_seq + 1 - start,
                           unit="batch", enabled=progress)
    for seq in seqs:
        table = workspace.store.read_batch(collection, seq, columns=[column])
        if table.num_rows == 0:
            continue
        vecs = np.asarray(emb.embed_table(table), dtype=np.float32)
        for iid, v in zip(table.column("item_id").to_pylist(), vecs, strict=True):
            latest[iid] = v
    reference = _updated_reference(workspace, collection, iv, batch_seq, column, start, latest)
    live = set(workspace.store.read(collection, as_of=batch_seq, columns=["item_id"]).column("item_id").to_pylist())
    current = np.asarray(ann.item_ids(), dtype=str)
    removed = current[~np.isin(current, np.asarray(sorted(live), dtype=str))].tolist()
    upsert_ids = [i for i in latest if i in live]
    upsert_vecs = np.stack([latest[i] for i in upsert_ids]) if upsert_ids else None
    recent, recent_info = _recent(workspace, collection, iv.model_version, emb, recent_queries)
    outcome: IncrementalOutcome = apply_changes(ann, upsert_ids, upsert_vecs, removed, policy,
                                                 recent_queries=recent)
    if outcome.rebuild_proposed:
        log.warning("index for %s model %d: rebuild proposed (%s)", collection, iv.model_version, outcome.reason)
    # This version's own figures, measured just now; nothing is carried over from the parent.
    metrics: dict[str, Any] = {
        "incremental": outcome.to_dict(),
        "rebuild_proposed": outcome.rebuild_proposed,
        "rebuild_reason": outcome.reason if outcome.rebuild_proposed else None,
        "target_recall": policy.target_recall,
        "recall_at_1": outcome.recall_at_1,
        "recall_at_10": outcome.recall_at_10,
        "query_source": outcome.query_source,
        "recent_queries": recent_info,
        "meets_target": None if outcome.recall_at_10 is None else bool(outcome.recall_at_10 >= policy.target_recall),
        "latency_p50_ms": outcome.latency_p50_ms,
        "latency_p99_ms": outcome.latency_p99_ms,
        "latency_ratio_to_fresh": outcome.latency_ratio,
        "tombstones": outcome.tombstones,
        "measured_after": "update",
    }
    params = {k: v for k, v in iv.params.items() if k != REFERENCE_PARAM} | {
        "parent_index": iv.id, "incremental_batches": [start, batch_seq]} | reference
    return _save_and_register(workspace, collection, iv.model_version, ann, as_of_batch=batch_seq,
                              params=params, metrics=metrics)


__all__: list[str] = [
    "build_and_tune",
    "build_index_for_model",
    "load_index",
    "update_index",
]
