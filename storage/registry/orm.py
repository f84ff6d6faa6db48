"""SQLAlchemy ORM tables. Private to ``storage.registry``: rows are converted to the frozen
dataclasses of :mod:`storage.registry.entities` before they leave the store."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class CollectionRow(Base):
    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    dim: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime]


class BatchRow(Base):
    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("collection_id", "seq", name="uq_batch_seq"),
        UniqueConstraint("collection_id", "content_hash", name="uq_batch_hash"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    seq: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    rows: Mapped[int]
    new_items: Mapped[int]
    updated_items: Mapped[int]
    quarantined: Mapped[int]
    data_path: Mapped[str] = mapped_column(Text)
    quarantine_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime]
    # Exclusion: never trained on nor used as drift reference (set by an operator or a failed quality check).
    excluded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    excluded_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    excluded_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the data-quality report


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("collection_id", "version", name="uq_model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    version: Mapped[int]
    parent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    artifacts: Mapped[dict[str, Any]]
    trained_on_batch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)


class IndexVersionRow(Base):
    __tablename__ = "index_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    model_version: Mapped[int]
    factory: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    artifact: Mapped[str] = mapped_column(String(64))
    as_of_batch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    num_vectors: Mapped[int]
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("collection_id", "name", name="uq_alias_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int]
    index_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime]
    # A pin stops automated runs from moving the alias (an operator rolled back); None: not pinned.
    pinned_at: Mapped[datetime | None] = mapped_column(nullable=True)
    pinned_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pinned_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class AliasHistoryRow(Base):
    __tablename__ = "alias_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    from_model: Mapped[int | None] = mapped_column(Integer, nullable=True)
    from_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_model: Mapped[int]
    to_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(20), default="promote")  # "promote" or "rollback"


class DriftReportRow(Base):
    __tablename__ = "drift_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    batch_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    drifted: Mapped[bool] = mapped_column(Boolean)
    alpha: Mapped[float] = mapped_column(Float)
    summary: Mapped[dict[str, Any]]
    report_artifact: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime]


class AlertRow(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    dedup_key: Mapped[str] = mapped_column(String(200), index=True)
    drift_report_id: Mapped[int | None] = mapped_column(ForeignKey("drift_reports.id"), nullable=True)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class TrainingRunRow(Base):
    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    batches: Mapped[list[Any]]
    buffer_artifact: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    details: Mapped[dict[str, Any]]
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)  # user@host:pid of the process


class EvaluationItemRow(Base):
    """The stable evaluation set: held-out items every model version of a collection is scored on."""

    __tablename__ = "evaluation_items"
    __table_args__ = (UniqueConstraint("collection_id", "item_id", name="uq_evaluation_item"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(500))
    label: Mapped[str] = mapped_column(String(500))
    added_batch: Mapped[int]
    revision: Mapped[int]  # the set's revision when the item joined it


class LockRow(Base):
    __tablename__ = "locks"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ShadowRecordRow(Base):
    """One mirrored search request: production's and a shadow version's answers compared (steward api)."""

    __tablename__ = "shadow_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    production_model: Mapped[int]
    production_index: Mapped[int]
    shadow_model: Mapped[int] = mapped_column(Integer, index=True)
    shadow_index: Mapped[int]
    k: Mapped[int]
    queries: Mapped[int]
    overlap_sum: Mapped[float] = mapped_column(Float)
    labelled: Mapped[int]
    production_hits: Mapped[int]
    shadow_hits: Mapped[int]
    production_ms: Mapped[float] = mapped_column(Float)
    shadow_ms: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime]
