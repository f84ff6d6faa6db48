"""The catalog: collections and their batches (what the Parquet store records)."""

from __future__ import annotations

from sqlalchemy import func, select

from core.errors import ConflictError, NotFoundError
from storage.registry import convert
from storage.registry import entities as E
from storage.registry.database import Database, default_actor, now
from storage.registry.orm import BatchRow, CollectionRow, EvaluationItemRow
from storage.serialization import jsonable


class CatalogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_collection(self, name: str, *, kind: str, dim: int | None) -> E.Collection:
        for attempt in range(2):
            try:
                with self.db.session() as s:
                    row = s.scalars(select(CollectionRow).where(CollectionRow.name == name)).one_or_none()
                    if row is None:
                        row = CollectionRow(name=name, kind=kind, dim=dim, created_at=now())
                        s.add(row)
                        s.flush()
                    return convert.collection(row)
            except ConflictError:
                if attempt:  # created concurrently by someone else: read it the second time round
                    raise
        raise AssertionError("unreachable")

    def get_collection(self, name: str) -> E.Collection:
        with self.db.session() as s:
            return convert.collection(self.db.collection_row(s, name))

    def list_collections(self) -> list[E.Collection]:
        with self.db.session() as s:
            return [convert.collection(r) for r in s.scalars(select(CollectionRow).order_by(CollectionRow.name))]

    def find_batch_by_hash(self, collection: str, content_hash: str) -> E.Batch | None:
        with self.db.session() as s:
            row = s.scalars(select(CollectionRow).where(CollectionRow.name == collection)).one_or_none()
            if row is None:
                return None
            batch = s.scalars(
                select(BatchRow).where(BatchRow.collection_id == row.id, BatchRow.content_hash == content_hash)
            ).one_or_none()
            return convert.batch(batch, collection) if batch else None

    def add_batch(
        self, collection: str, *, content_hash: str, source: str, rows: int, new_items: int,
        updated_items: int, quarantined: int, data_path: str, quarantine_path: str | None,
    ) -> E.Batch:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            seq = (s.scalar(select(func.max(BatchRow.seq)).where(BatchRow.collection_id == c.id)) or 0) + 1
            row = BatchRow(
                collection_id=c.id, seq=seq, content_hash=content_hash, source=source, rows=rows,
                new_items=new_items, updated_items=updated_items, quarantined=quarantined,
                data_path=data_path, quarantine_path=quarantine_path, created_at=now(),
            )
            s.add(row)
            s.flush()
            return convert.batch(row, collection)

    def list_batches(self, collection: str) -> list[E.Batch]:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            rows = s.scalars(select(BatchRow).where(BatchRow.collection_id == c.id).order_by(BatchRow.seq))
            return [convert.batch(r, collection) for r in rows]

    def get_batch(self, collection: str, seq: int) -> E.Batch:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            row = s.scalars(select(BatchRow).where(BatchRow.collection_id == c.id, BatchRow.seq == seq)).one_or_none()
            if row is None:
                raise NotFoundError(f"collection {collection!r} has no batch {seq}; see `steward batches list`")
            return convert.batch(row, collection)

    def _batch_row(self, s, collection: str, seq: int) -> BatchRow:
        c = self.db.collection_row(s, collection, for_update=True)
        row = s.scalars(select(BatchRow).where(BatchRow.collection_id == c.id, BatchRow.seq == seq)).one_or_none()
        if row is None:
            raise NotFoundError(f"collection {collection!r} has no batch {seq}; see `steward batches list`")
        return row

    def exclude_batch(self, collection: str, seq: int, *, reason: str, actor: str | None = None) -> E.Batch:
        """Exclude a batch from training and from drift references (its items stay searchable)."""
        with self.db.session() as s:
            row = self._batch_row(s, collection, seq)
            row.excluded_at, row.excluded_by, row.excluded_reason = now(), actor or default_actor(), reason
            return convert.batch(row, collection)

    def include_batch(self, collection: str, seq: int) -> E.Batch:
        with self.db.session() as s:
            row = self._batch_row(s, collection, seq)
            row.excluded_at = row.excluded_by = row.excluded_reason = None
            return convert.batch(row, collection)

    def record_quality(self, collection: str, seq: int, report: dict) -> E.Batch:
        with self.db.session() as s:
            row = self._batch_row(s, collection, seq)
            row.quality = jsonable(report)
            return convert.batch(row, collection)

    # --- the stable evaluation set ---------------------------------------------------------------

    def evaluation_set(self, collection: str) -> E.EvaluationSet:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            rows = list(s.scalars(select(EvaluationItemRow).where(EvaluationItemRow.collection_id == c.id)
                                  .order_by(EvaluationItemRow.id)))
            return E.EvaluationSet(collection, max((r.revision for r in rows), default=0),
                                   tuple(r.item_id for r in rows), tuple(r.label for r in rows))

    def extend_evaluation_set(self, collection: str, items: list[tuple[str, str]], batch_seq: int) -> E.EvaluationSet:
        """Add ``(item_id, label)`` pairs not in the set yet, as one new revision (none: unchanged)."""
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            existing = set(s.scalars(select(EvaluationItemRow.item_id).where(EvaluationItemRow.collection_id == c.id)))
            fresh = [(i, lab) for i, lab in dict(items).items() if i not in existing]
            if fresh:
                revision = (s.scalar(select(func.max(EvaluationItemRow.revision))
                                     .where(EvaluationItemRow.collection_id == c.id)) or 0) + 1
                s.add_all(EvaluationItemRow(collection_id=c.id, item_id=i, label=lab, added_batch=batch_seq,
                                            revision=revision) for i, lab in fresh)
        return self.evaluation_set(collection)

    def latest_batch(self, collection: str) -> E.Batch | None:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            row = s.scalars(
                select(BatchRow).where(BatchRow.collection_id == c.id).order_by(BatchRow.seq.desc()).limit(1)
            ).first()
            return convert.batch(row, collection) if row else None
