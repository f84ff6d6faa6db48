"""The shadow A/B records: mirrored search requests compared between production and a shadow version.

``steward api`` buffers them in memory and writes them here in batches; reports and the promotion
gate read them back. Rows never leave the store: callers get :class:`~storage.registry.entities.ShadowRecord`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select

from storage.registry import entities as E
from storage.registry.database import Database, aware
from storage.registry.orm import CollectionRow, ShadowRecordRow

_FIELDS = ("production_model", "production_index", "shadow_model", "shadow_index", "k", "queries",
           "overlap_sum", "labelled", "production_hits", "shadow_hits", "production_ms", "shadow_ms")


def _record(row: ShadowRecordRow, name: str) -> E.ShadowRecord:
    return E.ShadowRecord(collection=name, **{f: getattr(row, f) for f in _FIELDS}, at=aware(row.at), id=row.id)


class ShadowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, records: Sequence[E.ShadowRecord]) -> int:
        """Write a batch of records in one transaction; returns how many were written."""
        if not records:
            return 0
        with self.db.session() as s:
            ids: dict[str, int] = {}
            for name in sorted({r.collection for r in records}):
                ids[name] = self.db.collection_row(s, name).id
            # One executemany, not ORM objects: the search service writes these from a background thread
            # and every millisecond it holds the GIL here is a millisecond production requests wait.
            s.execute(insert(ShadowRecordRow), [
                {"collection_id": ids[r.collection], "at": r.at, **{f: getattr(r, f) for f in _FIELDS}}
                for r in records
            ])
        return len(records)

    def list_records(self, collection: str, *, shadow_model: int | None = None, production_model: int | None = None,
             limit: int = 10_000) -> list[E.ShadowRecord]:
        """Newest first, at most ``limit``; only one shadow (and production) version when given."""
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            stmt = select(ShadowRecordRow).where(ShadowRecordRow.collection_id == c.id)
            if shadow_model is not None:
                stmt = stmt.where(ShadowRecordRow.shadow_model == shadow_model)
            if production_model is not None:
                stmt = stmt.where(ShadowRecordRow.production_model == production_model)
            rows = s.scalars(stmt.order_by(ShadowRecordRow.id.desc()).limit(limit))
            return [_record(r, collection) for r in rows]

    def query_count(self, collection: str, shadow_model: int, production_model: int | None = None) -> int:
        """Mirrored queries ``shadow_model`` answered (against ``production_model`` when given)."""
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            stmt = select(func.coalesce(func.sum(ShadowRecordRow.queries), 0)).where(
                ShadowRecordRow.collection_id == c.id, ShadowRecordRow.shadow_model == shadow_model)
            if production_model is not None:
                stmt = stmt.where(ShadowRecordRow.production_model == production_model)
            return int(s.scalar(stmt) or 0)

    def pairs(self, collection: str) -> list[tuple[int, int, int]]:
        """(production model, shadow model, mirrored queries) for every pair compared, newest first."""
        with self.db.session() as s:
            stmt = (
                select(ShadowRecordRow.production_model, ShadowRecordRow.shadow_model,
                       func.sum(ShadowRecordRow.queries), func.max(ShadowRecordRow.id))
                .join(CollectionRow, CollectionRow.id == ShadowRecordRow.collection_id)
                .where(CollectionRow.name == collection)
                .group_by(ShadowRecordRow.production_model, ShadowRecordRow.shadow_model)
            )
            rows = sorted(s.execute(stmt), key=lambda r: -r[3])
            return [(int(p), int(sh), int(n)) for p, sh, n, _ in rows]
