"""A collection's state in one typed object: what ``steward status``, ``/status`` and the dashboard show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitoring.open_alerts import open_alerts
from storage.serialization import iso_utc

if TYPE_CHECKING:  # pragma: no cover
    from storage.workspace import Workspace


SCHEMA_VERSION = 1


def _iso(ts: datetime | None) -> str | None:
    return iso_utc(ts)


@dataclass(frozen=True)
class AlertView:
    id: int
    kind: str
    title: str  # the message's first line
    created_at: str
    delivered: bool


@dataclass(frozen=True)
class DriftCheckView:
    report_id: int
    batch_seq: int | None
    drifted: bool
    flagged: tuple[str, ...]
    combined_p_value: float | None
    at: str


@dataclass(frozen=True)
class CollectionStatus:
    collection: str
    production: dict[str, Any] | None  # model_version, index_version, since
    latest_batch: int | None
    last_drift_check: DriftCheckView | None
    open_alerts: tuple[AlertView, ...]
    undelivered_alerts: int | None  # None when no webhook is configured (nothing to deliver to)
    models: int
    pinned: dict[str, Any] | None = None  # by, reason, since: automated runs leave production alone
    awaiting_promotion: tuple[int, ...] = ()  # approved candidates (manual promotion mode)
    excluded_batches: tuple[dict[str, Any], ...] = ()  # seq and reason of batches left out of training
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        out = dataclasses.asdict(self)
        out.pop("extra")
        return {"schema_version": SCHEMA_VERSION, **out, **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CollectionStatus:
        check = d.get("last_drift_check")
        known = ({f for f in cls.__dataclass_fields__} - {"extra"}) | {"schema_version"}
        return cls(
            collection=d["collection"], production=d.get("production"), latest_batch=d.get("latest_batch"),
            last_drift_check=None if not check else DriftCheckView(**{**check, "flagged": tuple(check["flagged"])}),
            open_alerts=tuple(AlertView(**a) for a in d.get("open_alerts") or ()),
            undelivered_alerts=d.get("undelivered_alerts"), models=int(d.get("models") or 0),
            pinned=d.get("pinned"), awaiting_promotion=tuple(d.get("awaiting_promotion") or ()),
            excluded_batches=tuple(d.get("excluded_batches") or ()),
            extra={k: v for k, v in d.items() if k not in known},
        )


def collection_status(workspace: Workspace, collection: str) -> CollectionStatus:
    registry = workspace.registry
    target = workspace.production.target(collection)
    reports = registry.monitoring.list_drift_reports(collection, limit=1)
    alerts = registry.monitoring.list_alerts(collection)
    batches = registry.catalog.list_batches(collection)
    latest = batches[-1] if batches else None
    models = registry.models.list_models(collection)
    check = None
    if reports:
        r = reports[0]
        decision = (r.summary or {}).get("decision") or {}
        check = DriftCheckView(r.id, r.batch_seq, r.drifted, tuple(decision.get("flagged") or ()),
                               decision.get("combined_p_value"), _iso(r.created_at))
    return CollectionStatus(
        collection=collection,
        production=None if target is None else {"model_version": target.model_version,
                                                "index_version": target.index_version,
                                                "since": _iso(target.updated_at)},
        latest_batch=latest.seq if latest else None,
        last_drift_check=check,
        open_alerts=tuple(AlertView(a.id, a.kind, a.message.splitlines()[0] if a.message else "",
                                    _iso(a.created_at), a.delivered_at is not None)
                          for a in open_alerts(alerts, target.updated_at if target else None)),
        undelivered_alerts=(sum(1 for a in alerts if a.delivered_at is None)
                            if workspace.settings.webhook_url else None),
        models=len(models),
        pinned=None if target is None or not target.pinned else {
            "by": target.pinned_by, "reason": target.pinned_reason, "since": _iso(target.pinned_at)},
        awaiting_promotion=tuple(m.version for m in models if m.status == "approved"),
        excluded_batches=tuple({"seq": b.seq, "reason": b.excluded_reason} for b in batches if b.excluded),
    )
