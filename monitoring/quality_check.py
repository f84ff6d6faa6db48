"""``check_batch_quality``: run the data-quality checks on a stored batch, record the verdict, and
take a failing batch out of training (excluded, with a ``data_quality`` alert and event).

Orchestration only: the checks themselves are pure (:mod:`monitoring.data_quality`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from monitoring.alerts import Notice, raise_alert
from monitoring.data_quality import QualityReport, check_quality

if TYPE_CHECKING:  # pragma: no cover
    from storage.registry.entities import Batch
    from storage.workspace import Workspace

log = logging.getLogger(__name__)
MAX_REFERENCE_ROWS = 20_000  # a uniform sample is enough to know the reference's ranges and rates


@dataclass(frozen=True)
class QualityOutcome:
    batch_seq: int
    report: QualityReport
    excluded: bool  # the batch was excluded from training because it failed
    notice: Notice | None = None  # the data_quality alert, when it failed

    def describe(self) -> str:
        if self.report.passed:
            return f"batch {self.batch_seq} {self.report.summary()}"
        return f"batch {self.batch_seq} failed data-quality checks ({self.report.summary()})"


def _features(workspace: Workspace, collection: str, seq: int) -> np.ndarray:
    from storage.parquet_store import features_to_numpy

    return features_to_numpy(workspace.store.read_batch(collection, seq, columns=["features"]))


def _quarantine_rate(batch: Batch) -> float:
    total = batch.rows + batch.quarantined
    return batch.quarantined / total if total else 0.0


def _reference(workspace: Workspace, collection: str, batch: Batch, window: int, seed: int
               ) -> tuple[np.ndarray, tuple[float, ...]]:
    earlier = [b for b in workspace.registry.catalog.list_batches(collection)
               if b.seq < batch.seq and not b.excluded][-window:]
    rates = tuple(_quarantine_rate(b) for b in earlier)
    parts = [_features(workspace, collection, b.seq) for b in earlier if b.rows]
    if not parts:
        return np.zeros((0, 0), np.float32), rates
    ref = np.concatenate(parts)
    if len(ref) > MAX_REFERENCE_ROWS:
        ref = ref[np.sort(np.random.default_rng(seed).choice(len(ref), MAX_REFERENCE_ROWS, replace=False))]
    return ref, rates


def check_batch_quality(workspace: Workspace, collection: str, seq: int, *, notify: bool = True) -> QualityOutcome:
    """Check batch ``seq`` against the non-excluded batches before it; record the report on the
    batch; exclude it and alert when it fails."""
    catalog = workspace.registry.catalog
    batch = catalog.get_batch(collection, seq)
    settings = workspace.settings.quality
    kind = catalog.get_collection(collection).kind
    if kind == "features":
        current = _features(workspace, collection, seq) if batch.rows else np.zeros((0, 1), np.float32)
        reference, rates = _reference(workspace, collection, batch, workspace.settings.drift.reference_batches, seq)
        report = check_quality(current, reference, settings=settings, quarantined=batch.quarantined,
                               reference_quarantine_rates=rates)
    else:  # text: only what needs no encoder (the encoder's vectors are checked by drift)
        earlier = [b for b in catalog.list_batches(collection) if b.seq < seq and not b.excluded]
        report = check_quality(np.ones((batch.rows, 1)), np.zeros((0, 1)), settings=settings,
                               quarantined=batch.quarantined,
                               reference_quarantine_rates=tuple(_quarantine_rate(b) for b in earlier))
        report = QualityReport(report.passed, {k: v for k, v in report.checks.items() if k != "zero_rows"},
                               report.n_rows, report.n_reference, (*report.skipped, "text collection: vector checks"))
    catalog.record_quality(collection, seq, report.to_dict())
    if report.passed:
        return QualityOutcome(seq, report, excluded=False)
    why = f"failed data-quality checks: {report.summary()}"
    catalog.exclude_batch(collection, seq, reason=why, actor="steward data-quality check")
    log.warning("%s batch %d %s; excluded from training", collection, seq, why)
    payload = {"batch_seq": seq, "quality": report.to_dict()}
    notice = raise_alert(workspace, collection, kind="data_quality",
                         message=f"Data fault in collection '{collection}' (batch {seq}): {report.summary()}. "
                                 f"The batch is excluded from training; `steward batches include -c {collection} "
                                 f"{seq}` takes it back.",
                         payload=payload, dedup_key=f"quality:{collection}:batch={seq}",
                         event_payload={"batch_seq": seq, "failed": [c.name for c in report.failures]},
                         notify=notify)
    return QualityOutcome(seq, report, excluded=True, notice=notice)
