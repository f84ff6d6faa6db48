"""``check_drift``: the current batch against a reference window, recorded and alerted.

Orchestration only: read batches, embed them, run :mod:`monitoring.suite`, store the report, raise
the alert. Embeddings come from the production model (or ``model_version``) when one is registered;
without a model the raw features, L2-normalised, are compared, so drift monitoring works from the
first batches on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import NotFoundError, ValidationError
from monitoring.config import DriftConfig
from monitoring.decision import EFFECT_SCALE, EffectBaseline
from monitoring.detectors.base import l2_normalise
from monitoring.summary import DriftSummary

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from storage.registry.entities import Batch
    from storage.workspace import Workspace

log = logging.getLogger(__name__)
MIN_UNSEEN_REFERENCE = 50


@dataclass(frozen=True)
class _Embedding:
    describe: str
    model_version: int | None
    embed: Callable[[Any], np.ndarray]  # table -> embeddings


def _resolve_embedding(workspace: Workspace, collection: str, model_version: int | None, kind: str) -> _Embedding:
    from embedding.inference import load_embedder

    if model_version is not None or workspace.production.target(collection) is not None:
        embedder = load_embedder(workspace, collection, model_version, device=workspace.settings.device)
        return _Embedding(f"model v{embedder.model_version}", embedder.model_version, embedder.embed_table)
    if kind == "text":
        raise NotFoundError(
            f"collection {collection!r} holds text and has no production model to embed it; "
            "train and promote a model first (steward retrain / promote)"
        )

    def raw(table: pa.Table) -> np.ndarray:
        from storage.parquet_store import features_to_numpy

        return l2_normalise(features_to_numpy(table))

    log.info("no model for %s: drift is checked on raw L2-normalised features", collection)
    return _Embedding("raw", None, raw)


def _labels(table: pa.Table) -> np.ndarray | None:
    if "label" not in table.column_names:
        return None
    return np.array(table.column("label").to_pylist(), dtype=object)


def select_window(workspace: Workspace, collection: str, batch_seq: int | None,
                  reference_batches: int) -> tuple[Batch, list[Batch]]:
    """The batch to check (default: the newest non-empty one) and the non-empty batches before it."""
    if reference_batches < 1:
        raise ValidationError(f"reference_batches={reference_batches} must be at least 1")
    catalog = workspace.registry.catalog
    batches = [b for b in catalog.list_batches(collection) if b.rows > 0]
    if not batches:
        raise NotFoundError(f"collection {collection!r} has no non-empty batches to check; ingest data first")
    if batch_seq is None:
        current = batches[-1]
    else:
        current = next((b for b in batches if b.seq == batch_seq), None)
        if current is None:
            catalog.get_batch(collection, batch_seq)  # NotFoundError when it doesn't exist at all
            raise ValidationError(f"batch {batch_seq} of {collection!r} has no good rows to check")
    earlier = [b for b in batches if b.seq < current.seq][-reference_batches:]
    if not earlier:
        raise NotFoundError(
            f"batch {current.seq} of {collection!r} has no earlier batch to compare with; "
            "drift needs at least one reference batch"
        )
    return current, earlier


def check_drift(
    workspace: Workspace,
    collection: str,
    batch_seq: int | None = None,
    *,
    model_version: int | None = None,
    alpha: float | None = None,
    reference_batches: int | None = None,
    html_path: str | None = None,
    notify: bool = True,
    config: DriftConfig | None = None,
) -> DriftSummary:
    """Compare batch ``batch_seq`` (default: the latest) with the ``reference_batches`` non-empty
    batches before it (default: the ``drift.reference_batches`` setting); store a drift report; on
    drift, raise an alert (deduplicated). ``alpha`` defaults to the ``drift.alpha`` setting."""
    from monitoring.suite import run_suite

    t_start = time.perf_counter()
    settings = workspace.settings.drift
    coll = workspace.registry.catalog.get_collection(collection)
    current, earlier = select_window(workspace, collection, batch_seq,
                                     reference_batches if reference_batches is not None else settings.reference_batches)
    config = replace((config or DriftConfig()).with_extra_detectors(settings.extra_detectors),
                     alpha=alpha if alpha is not None else settings.alpha, seed=current.seq)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    emb = _resolve_embedding(workspace, collection, model_version, coll.kind)
    timings["load_model"] = time.perf_counter() - t0  # a fresh process pays its imports here
    t0 = time.perf_counter()
    column = "text" if coll.kind == "text" else "features"
    cur_table = workspace.store.read_batch(collection, current.seq, columns=["label", column])
    ref_tables = [workspace.store.read_batch(collection, b.seq, columns=["label", column]) for b in earlier]
    ref_tables, reference_note = _unseen_reference(workspace, collection, emb.model_version, earlier, ref_tables)
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cur_x = emb.embed(cur_table)
    ref_x, reused, index_id = _reference_embeddings(workspace, collection, emb, column, earlier, ref_tables)
    if reused:
        reference_note += f"; {reused} of {ref_x.shape[0]} embeddings reused from index {index_id}"
    ref_parts = [_labels(t) for t in ref_tables]
    ref_y = np.concatenate(ref_parts) if all(p is not None for p in ref_parts) else None
    timings["embed"] = time.perf_counter() - t0

    baseline = EffectBaseline.from_effects(
        past_effects(workspace.registry.monitoring, collection, before_batch=current.seq,
                     model_version=emb.model_version))
    cur_ids = cur_table.column("item_id").to_pylist() if "item_id" in cur_table.column_names else None
    result = run_suite(ref_x, cur_x, reference_labels=ref_y, current_labels=_labels(cur_table), config=config,
                       baseline=baseline, current_ids=cur_ids)
    timings.update({f"detector.{k}": v for k, v in result.seconds.items()})
    summary = DriftSummary(
        collection=collection, batch_seq=current.seq, reference_batches=tuple(b.seq for b in earlier),
        embedding=emb.describe, model_version=emb.model_version, n_reference=int(ref_x.shape[0]),
        n_current=int(cur_x.shape[0]), reference_items=reference_note, decision=result.decision,
        detectors=result.detectors, effects=result.effects, effect_scale=EFFECT_SCALE,
        novel_items=tuple(result.novel_items()),
    )
    timings["total"] = time.perf_counter() - t_start
    # The decision is stored and alerted before any HTML: the report is for a person and may take minutes.
    summary = _record(workspace, replace(summary, seconds=timings), config.alpha, notify)
    log.info("drift check %s batch %d vs %s: %s (acting %s, flagged %s) in %.2fs", collection, current.seq,
             list(summary.reference_batches), summary.decision.status, list(summary.decision.acting),
             list(summary.decision.flagged), timings["total"])
    if html_path:
        summary = _html_after_decision(workspace, summary, html_path, ref_x, cur_x, earlier, ref_tables, cur_table)
    return summary


def _reference_embeddings(workspace: Workspace, collection: str, emb: _Embedding, column: str,
                          earlier: list[Batch], ref_tables: list[pa.Table]) -> tuple[np.ndarray, int, int | None]:
    """The reference rows' embeddings: those stored with the model's index (computed when it was
    built, embedding/index/reference.py) where a row matches by id and input hash; the rest embedded."""
    stored = None
    if emb.model_version is not None:
        from embedding.index.reference import reference_for_check

        stored = reference_for_check(workspace, collection, emb.model_version, [b.seq for b in earlier])
    if stored is None:
        return np.concatenate([emb.embed(t) for t in ref_tables]), 0, None
    from embedding.index.reference import input_digests
    from storage.parquet_store import filter_rows

    iv, ref = stored
    parts, reused = [], 0
    for table in ref_tables:
        vectors, found = ref.lookup(table.column("item_id").to_pylist(), input_digests(table, column))
        reused += int(found.sum())
        if found.all() and vectors is not None:
            parts.append(vectors)
            continue
        missing = filter_rows(table, ~found)
        embedded = emb.embed(missing)
        out = np.zeros((table.num_rows, embedded.shape[1]), dtype=np.float32) if vectors is None else vectors
        out[~found] = embedded
        parts.append(out)
    log.info("drift reference for %s: %d rows reused from index %d, %d embedded", collection, reused, iv.id,
             sum(t.num_rows for t in ref_tables) - reused)
    return np.concatenate(parts), reused, iv.id


def _html_after_decision(workspace: Workspace, summary: DriftSummary, html_path: str, ref_x: np.ndarray,
                         cur_x: np.ndarray, earlier: list[Batch], ref_tables: list[pa.Table],
                         cur_table: pa.Table) -> DriftSummary:
    """Render the Evidently report for a recorded decision and attach it to the stored report."""
    from core.errors import StewardError
    from core.progress import stage
    from monitoring.evidently_report import write_html_report

    t0 = time.perf_counter()
    with stage(f"writing the Evidently HTML report of batch {summary.batch_seq} ({summary.decision.status} "
               f"is already recorded)"):
        try:
            # The metadata columns (label and the rest) for the report's tables: read now, off the decision's path.
            full_cur = workspace.store.read_batch(summary.collection, summary.batch_seq)
            full_ref = _concat([_same_rows(workspace.store.read_batch(summary.collection, b.seq), t)
                                for b, t in zip(earlier, ref_tables, strict=True)])
            artifact = write_html_report(workspace, html_path, reference=ref_x, current=cur_x,
                                         reference_table=full_ref, current_table=full_cur)
        except Exception as e:
            raise StewardError(
                f"the drift decision was recorded (report {summary.report_id}: {summary.decision.status}) but the "
                f"HTML report failed: {e}"
            ) from e
    seconds = {"html": time.perf_counter() - t0}
    workspace.registry.monitoring.attach_report_artifact(summary.report_id, artifact, seconds)
    return replace(summary, report_artifact=artifact, seconds={**summary.seconds, **seconds})


def _same_rows(full: pa.Table, kept: pa.Table) -> pa.Table:
    """``full``'s rows that ``kept`` (a column subset, maybe filtered to unseen items) holds, in its order."""
    import pyarrow.compute as pc

    if full.num_rows == kept.num_rows:
        return full
    return full.filter(pc.is_in(full.column("item_id"), value_set=kept.column("item_id").combine_chunks()))


def _record(workspace: Workspace, summary: DriftSummary, alpha: float, notify: bool) -> DriftSummary:
    """Store the report; on drift raise the alert; otherwise retry alerts the webhook missed."""
    report = workspace.registry.monitoring.record_drift_report(
        summary.collection, batch_seq=summary.batch_seq, model_version=summary.model_version,
        drifted=summary.drifted, alpha=alpha, summary=summary.to_dict(),
    )
    summary = replace(summary, report_id=report.id)
    if summary.drifted:
        from monitoring.alerts import raise_drift_alert

        notice = raise_drift_alert(workspace, summary, notify=notify)
        summary = replace(summary, alert_id=notice.alert_id if notice.created else None, notice=notice.describe())
    elif notify:
        from monitoring.alerts import deliver_pending_alerts

        deliver_pending_alerts(workspace)
    return summary


def past_effects(monitoring: Any, collection: str, *, before_batch: int, model_version: int | None,
                 limit: int = 120) -> list[dict[str, float]]:
    """Effects of the collection's earlier accepted (non-acting) checks, oldest first: what the
    control-chart baseline learns from, and the only I/O of the severity decision.

    Kept: the newest report of each batch before ``before_batch``, checked with the same embedding
    (``model_version``; a new model sees the stream differently, so it starts young) and on the
    current effect scale; a batch whose newest check acted is left out (its effect is the drift,
    not the stream's usual variation).
    """
    newest: dict[int, Any] = {}
    for report in monitoring.list_drift_reports(collection, limit=limit):  # newest first
        if report.batch_seq is not None and report.batch_seq < before_batch:
            newest.setdefault(report.batch_seq, report)
    out = []
    for seq in sorted(newest):
        report = newest[seq]
        summary = report.summary or {}
        if report.drifted or report.model_version != model_version or summary.get("effect_scale") != EFFECT_SCALE:
            continue
        out.append({k: v for k, v in (summary.get("effects") or {}).items() if v is not None})
    return out


def _unseen_reference(workspace: Workspace, collection: str, model_version: int | None, earlier: list[Batch],
                      ref_tables: list[pa.Table]) -> tuple[list[pa.Table], str]:
    """Keep only reference items the model never trained on.

    A model embeds its own training items more tightly around their class prototypes than fresh
    items, so a reference made of training items makes every new batch look novel. Items of
    batches after the model's training data are unseen; of earlier batches, only the retrain
    service's held-out split (a stable hash of item_id) is.
    """
    if model_version is None:
        return ref_tables, "all (raw features, no model)"
    trained_on = workspace.registry.models.get_model(collection, model_version).trained_on_batch
    if trained_on is None:
        return ref_tables, "all"
    from embedding.holdout import holdout_mask
    from storage.parquet_store import filter_rows

    kept = []
    for batch, table in zip(earlier, ref_tables, strict=True):
        if batch.seq <= trained_on and table.num_rows:
            table = filter_rows(table, holdout_mask(np.asarray(table.column("item_id").to_pylist(), dtype=str)))
        kept.append(table)
    n_kept = sum(t.num_rows for t in kept)
    if n_kept < MIN_UNSEEN_REFERENCE:
        log.warning("only %d reference items are unseen by model v%s; using training items too (expect a "
                    "conservative novelty test to be optimistic)", n_kept, model_version)
        return ref_tables, f"all (only {n_kept} held-out items)"
    return kept, f"unseen by model v{model_version} ({n_kept} items: held-out split of batches <= {trained_on})"


def _concat(tables: list[pa.Table]) -> pa.Table:
    import pyarrow as pa

    return pa.concat_tables(tables, promote_options="default")
