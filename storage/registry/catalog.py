"""The catalog: collections and their batches (what the Parquet store records)."""

from __future__ import annotations

from sqlalchemy import func, select

from core.errors import ConflictError, NotFoundError
from storage.registry import convert
from storage.registry import entities as E
from storage.registry.database import Database, now
from storage.registry.orm import BatchRow, CollectionRow


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

    def latest_batch(self, collection: str) -> E.Batch | None:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            row = s.scalars(
                select(BatchRow).where(BatchRow.collection_id == c.id).order_by(BatchRow.seq.desc()).limit(1)
            ).first()
            return convert.batch(row, collection) if row else None
