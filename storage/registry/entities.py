"""What the registry hands out: frozen dataclasses. ORM rows never leave ``storage``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# "approved": passed the gate, waiting for a person to promote it (manual promotion mode).
ModelStatus = Literal["candidate", "approved", "production", "archived", "rejected"]
MODEL_STATUSES: tuple[str, ...] = ("candidate", "approved", "production", "archived", "rejected")
PRODUCTION_ALIAS = "production"


@dataclass(frozen=True)
class Collection:
    name: str
    kind: str  # "features" or "text"
    dim: int | None  # feature dimension, fixed by the first batch (None for text)
    created_at: datetime


@dataclass(frozen=True)
class Batch:
    collection: str
    seq: int  # 1, 2, 3 ... per collection: the "as of" coordinate
    content_hash: str
    source: str
    rows: int  # good rows written
    new_items: int
    updated_items: int
    quarantined: int
    data_path: str
    quarantine_path: str | None
    created_at: datetime
    excluded_at: datetime | None = None  # excluded batches are never trained on nor used as drift reference
    excluded_by: str | None = None
    excluded_reason: str | None = None
    quality: dict[str, Any] | None = None  # the data-quality report (monitoring.data_quality), once checked

    @property
    def excluded(self) -> bool:
        return self.excluded_at is not None


@dataclass(frozen=True)
class ModelVersion:
    collection: str
    version: int
    parent_version: int | None
    status: str
    status_reason: str | None
    config: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: dict[str, str]  # role ("weights", "buffer", "prototypes", ...) -> sha256
    trained_on_batch: int | None  # data as of this batch seq
    created_at: datetime


REFERENCE_EMBEDDINGS_PARAM = "reference_embeddings"  # index params: {"artifact": sha, "batches": [...], "rows": n}


@dataclass(frozen=True)
class IndexVersion:
    id: int
    collection: str
    model_version: int
    factory: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    artifact: str  # sha256
    as_of_batch: int | None
    num_vectors: int
    created_at: datetime

    @property
    def artifacts(self) -> set[str]:
        """Every artifact the version refers to: the index file and the reference embeddings kept
        beside it (params[REFERENCE_EMBEDDINGS_PARAM], see embedding/index/reference.py)."""
        extra = (self.params or {}).get(REFERENCE_EMBEDDINGS_PARAM) or {}
        return {self.artifact} | ({extra["artifact"]} if isinstance(extra.get("artifact"), str) else set())


@dataclass(frozen=True)
class AliasTarget:
    collection: str
    alias: str
    model_version: int
    index_version: int | None
    updated_at: datetime
    pinned_at: datetime | None = None  # automated runs never move a pinned alias
    pinned_by: str | None = None
    pinned_reason: str | None = None

    @property
    def pinned(self) -> bool:
        return self.pinned_at is not None


@dataclass(frozen=True)
class AliasChange:
    id: int
    collection: str
    alias: str
    from_model: int | None
    from_index: int | None
    to_model: int
    to_index: int | None
    actor: str
    reason: str
    at: datetime
    kind: str = "promote"  # "promote" or "rollback"


@dataclass(frozen=True)
class DriftReport:
    id: int
    collection: str
    batch_seq: int | None
    model_version: int | None
    drifted: bool
    alpha: float
    summary: dict[str, Any]  # detector name -> {statistic, p_value, effect, n_ref, n_cur, ...}
    report_artifact: str | None
    created_at: datetime


@dataclass(frozen=True)
class Alert:
    id: int
    collection: str
    kind: str
    message: str
    payload: dict[str, Any]
    dedup_key: str
    drift_report_id: int | None
    created_at: datetime
    delivered_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class TrainingRun:
    id: int
    collection: str
    model_version: int | None
    kind: str  # "incremental" or "full"
    batches: list[int]
    buffer_artifact: str | None
    status: str  # "running", "finished", "failed"
    started_at: datetime
    finished_at: datetime | None
    details: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None  # user@host:pid of the process that ran it


@dataclass(frozen=True)
class EvaluationSet:
    """The stable held-out items a collection's versions are scored on (see storage.registry.catalog)."""

    collection: str
    revision: int  # grows when items join (new classes, or classes topped up)
    item_ids: tuple[str, ...]
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class ShadowRecord:
    """One mirrored search request (``steward api`` shadow A/B): the same queries answered by the pair in
    production and by a shadow pair whose answers were never served.

    Per request, not per query, so a report's intervals resample requests (queries of one request share
    its latency and are not independent). ``overlap_sum`` adds each query's overlap@k (shared ids in
    both top-k lists / k); ``labelled`` queries carried a label or an expected item, and ``*_hits``
    count those the pair answered right (see ``steward.api.shadow``).
    """

    collection: str
    production_model: int
    production_index: int
    shadow_model: int
    shadow_index: int
    k: int
    queries: int
    overlap_sum: float
    labelled: int
    production_hits: int
    shadow_hits: int
    production_ms: float  # production's search time on the request path
    shadow_ms: float  # the shadow's search time in the background worker
    at: datetime
    id: int | None = None  # set once stored
