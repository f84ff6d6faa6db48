"""ORM row -> entity conversions, shared by the registry stores (rows never leave the package)."""

from __future__ import annotations

from storage.registry import entities as E
from storage.registry.database import aware
from storage.registry.orm import (
    AlertRow,
    AliasHistoryRow,
    AliasRow,
    BatchRow,
    CollectionRow,
    DriftReportRow,
    IndexVersionRow,
    ModelVersionRow,
    TrainingRunRow,
)


def collection(row: CollectionRow) -> E.Collection:
    return E.Collection(name=row.name, kind=row.kind, dim=row.dim, created_at=aware(row.created_at))


def batch(row: BatchRow, name: str) -> E.Batch:
    return E.Batch(
        collection=name, seq=row.seq, content_hash=row.content_hash, source=row.source, rows=row.rows,
        new_items=row.new_items, updated_items=row.updated_items, quarantined=row.quarantined,
        data_path=row.data_path, quarantine_path=row.quarantine_path, created_at=aware(row.created_at),
        excluded_at=aware(row.excluded_at), excluded_by=row.excluded_by, excluded_reason=row.excluded_reason,
        quality=dict(row.quality) if row.quality is not None else None,
    )


def model(row: ModelVersionRow, name: str) -> E.ModelVersion:
    return E.ModelVersion(
        collection=name, version=row.version, parent_version=row.parent_version, status=row.status,
        status_reason=row.status_reason, config=dict(row.config), metrics=dict(row.metrics),
        artifacts=dict(row.artifacts), trained_on_batch=row.trained_on_batch, created_at=aware(row.created_at),
    )


def index(row: IndexVersionRow, name: str) -> E.IndexVersion:
    return E.IndexVersion(
        id=row.id, collection=name, model_version=row.model_version, factory=row.factory,
        params=dict(row.params), metrics=dict(row.metrics), artifact=row.artifact,
        as_of_batch=row.as_of_batch, num_vectors=row.num_vectors, created_at=aware(row.created_at),
    )


def alias(row: AliasRow, name: str) -> E.AliasTarget:
    return E.AliasTarget(
        collection=name, alias=row.name, model_version=row.model_version,
        index_version=row.index_version, updated_at=aware(row.updated_at),
        pinned_at=aware(row.pinned_at), pinned_by=row.pinned_by, pinned_reason=row.pinned_reason,
    )


def change(row: AliasHistoryRow, name: str) -> E.AliasChange:
    return E.AliasChange(
        id=row.id, collection=name, alias=row.alias, from_model=row.from_model, from_index=row.from_index,
        to_model=row.to_model, to_index=row.to_index, actor=row.actor, reason=row.reason, at=aware(row.at),
        kind=row.kind or "promote",
    )


def drift(row: DriftReportRow, name: str) -> E.DriftReport:
    return E.DriftReport(
        id=row.id, collection=name, batch_seq=row.batch_seq, model_version=row.model_version,
        drifted=row.drifted, alpha=row.alpha, summary=dict(row.summary),
        report_artifact=row.report_artifact, created_at=aware(row.created_at),
    )


def alert(row: AlertRow, name: str) -> E.Alert:
    return E.Alert(
        id=row.id, collection=name, kind=row.kind, message=row.message, payload=dict(row.payload),
        dedup_key=row.dedup_key, drift_report_id=row.drift_report_id, created_at=aware(row.created_at),
        delivered_at=aware(row.delivered_at), attempts=row.attempts, last_error=row.last_error,
    )


def run(row: TrainingRunRow, name: str) -> E.TrainingRun:
    return E.TrainingRun(
        id=row.id, collection=name, model_version=row.model_version, kind=row.kind,
        batches=list(row.batches), buffer_artifact=row.buffer_artifact, status=row.status,
        started_at=aware(row.started_at), finished_at=aware(row.finished_at), details=dict(row.details),
        owner=row.owner,
    )
