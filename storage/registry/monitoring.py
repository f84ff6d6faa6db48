"""The monitoring records: drift reports and alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from storage.registry import convert
from storage.registry import entities as E
from storage.registry.database import Database, now
from storage.registry.orm import AlertRow, CollectionRow, DriftReportRow
from storage.serialization import jsonable


class MonitoringStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- drift reports -------------------------------------------------------------------------

    def record_drift_report(
        self, collection: str, *, batch_seq: int | None, model_version: int | None, drifted: bool,
        alpha: float, summary: dict[str, Any], report_artifact: str | None = None,
    ) -> E.DriftReport:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            row = DriftReportRow(
                collection_id=c.id, batch_seq=batch_seq, model_version=model_version, drifted=drifted,
                alpha=alpha, summary=jsonable(summary), report_artifact=report_artifact, created_at=now(),
            )
            s.add(row)
            s.flush()
            return convert.drift(row, collection)

    def attach_report_artifact(self, report_id: int, report_artifact: str,
                               seconds: dict[str, float] | None = None) -> E.DriftReport:
        """Name the HTML report of a recorded check (rendered after the decision was stored);
        ``seconds`` adds timings to the stored summary."""
        with self.db.session() as s:
            row, collection = self.db.row_by_id(s, DriftReportRow, report_id, "drift check")
            row.report_artifact = report_artifact
            if seconds:
                summary = dict(row.summary or {})
                summary["seconds"] = {**(summary.get("seconds") or {}), **jsonable(seconds)}
                row.summary = summary
            s.flush()
            return convert.drift(row, collection)

    def list_drift_reports(self, collection: str, limit: int = 50) -> list[E.DriftReport]:
        """Newest first."""
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            rows = s.scalars(
                select(DriftReportRow).where(DriftReportRow.collection_id == c.id)
                .order_by(DriftReportRow.id.desc()).limit(limit)
            )
            return [convert.drift(r, collection) for r in rows]

    def get_drift_report(self, report_id: int) -> E.DriftReport:
        with self.db.session() as s:
            return convert.drift(*self.db.row_by_id(s, DriftReportRow, report_id, "drift check"))

    def referenced_artifacts(self) -> set[str]:
        """Artifacts (HTML reports) drift reports refer to: gc must keep them."""
        with self.db.session() as s:
            return {x for x in s.scalars(select(DriftReportRow.report_artifact)) if x}

    # --- alerts --------------------------------------------------------------------------------

    def add_alert(
        self, collection: str, *, kind: str, message: str, payload: dict[str, Any], dedup_key: str,
        drift_report_id: int | None = None, dedup_window_seconds: float = 0,
    ) -> E.Alert | None:
        """Create an alert, or return None when one with ``dedup_key`` exists inside the window."""
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            at = now()
            if dedup_window_seconds > 0:
                recent = s.scalars(
                    select(AlertRow).where(
                        AlertRow.collection_id == c.id, AlertRow.dedup_key == dedup_key,
                        AlertRow.created_at >= at - timedelta(seconds=dedup_window_seconds),
                    )
                ).first()
                if recent is not None:
                    return None
            row = AlertRow(
                collection_id=c.id, kind=kind, message=message, payload=jsonable(payload), dedup_key=dedup_key,
                drift_report_id=drift_report_id, created_at=at, attempts=0,
            )
            s.add(row)
            s.flush()
            return convert.alert(row, collection)

    def recent_alert(self, collection: str, dedup_key: str, window_seconds: float) -> E.Alert | None:
        """The newest alert with ``dedup_key`` raised inside the window (what a repeat folds into)."""
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            row = s.scalars(
                select(AlertRow).where(AlertRow.collection_id == c.id, AlertRow.dedup_key == dedup_key,
                                       AlertRow.created_at >= now() - timedelta(seconds=window_seconds))
                .order_by(AlertRow.id.desc())
            ).first()
            return convert.alert(row, collection) if row else None

    def list_alerts(self, collection: str | None = None, *, undelivered_only: bool = False) -> list[E.Alert]:
        with self.db.session() as s:
            stmt = select(AlertRow, CollectionRow.name).join(CollectionRow, CollectionRow.id == AlertRow.collection_id)
            if collection is not None:
                stmt = stmt.where(CollectionRow.name == collection)
            if undelivered_only:
                stmt = stmt.where(AlertRow.delivered_at.is_(None))
            return [convert.alert(r, name) for r, name in s.execute(stmt.order_by(AlertRow.id))]

    def get_alert(self, alert_id: int) -> E.Alert:
        with self.db.session() as s:
            return convert.alert(*self.db.row_by_id(s, AlertRow, alert_id, "alert"))

    def record_alert_attempt(self, alert_id: int, *, delivered: bool, error: str | None = None) -> E.Alert:
        with self.db.session() as s:
            row, name = self.db.row_by_id(s, AlertRow, alert_id, "alert")
            row.attempts += 1
            row.last_error = error
            if delivered and row.delivered_at is None:
                row.delivered_at = now()
            return convert.alert(row, name)
