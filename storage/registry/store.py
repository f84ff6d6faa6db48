"""The registry store: every read and write of the registry database goes through here.

Design (after MLflow's SQLAlchemy store):
- one transactional session helper, :meth:`RegistryStore._session`; every public method is one
  transaction, so an alias switch and its history row commit together or not at all;
- ORM rows never leave: public methods return frozen dataclasses (``storage.registry.entities``);
- database integrity errors become domain errors (:class:`ConflictError`).

Concurrency: writers serialise per collection. On PostgreSQL the collection row is locked with
``SELECT ... FOR UPDATE``; on SQLite every transaction starts with ``BEGIN IMMEDIATE`` (one writer
at a time, others wait up to the busy timeout). Version numbers are ``max + 1`` under that lock,
with a unique constraint as the last line of defence.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from steward.errors import ConflictError, LockHeldError, NotFoundError, StewardError
from storage.registry import entities as E
from storage.registry.orm import (
    AlertRow,
    AliasHistoryRow,
    AliasRow,
    BatchRow,
    CollectionRow,
    DriftReportRow,
    IndexVersionRow,
    LockRow,
    ModelVersionRow,
    TrainingRunRow,
)
from storage.serialization import jsonable

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_SQLITE_BUSY_MS = 60_000


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - getuser fails in some containers; the host still identifies
        user = "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def _owner_is_dead(owner: str) -> bool:
    """True when ``owner`` (``user@host:pid``) is a process on this host that no longer runs.

    A killed run cannot release its lock; without this, a rerun after a crash would wait for the
    lock's TTL. Owners on other hosts are only freed by the TTL.
    """
    host_pid = owner.rsplit("@", 1)[-1]
    host, _, pid = host_pid.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite drops the timezone; everything we store is UTC.
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


# --- row -> entity -------------------------------------------------------------------------


def _collection(row: CollectionRow) -> E.Collection:
    return E.Collection(name=row.name, kind=row.kind, dim=row.dim, created_at=_aware(row.created_at))


def _batch(row: BatchRow, name: str) -> E.Batch:
    return E.Batch(
        collection=name, seq=row.seq, content_hash=row.content_hash, source=row.source, rows=row.rows,
        new_items=row.new_items, updated_items=row.updated_items, quarantined=row.quarantined,
        data_path=row.data_path, quarantine_path=row.quarantine_path, created_at=_aware(row.created_at),
    )


def _model(row: ModelVersionRow, name: str) -> E.ModelVersion:
    return E.ModelVersion(
        collection=name, version=row.version, parent_version=row.parent_version, status=row.status,
        status_reason=row.status_reason, config=dict(row.config), metrics=dict(row.metrics),
        artifacts=dict(row.artifacts), trained_on_batch=row.trained_on_batch, created_at=_aware(row.created_at),
    )


def _index(row: IndexVersionRow, name: str) -> E.IndexVersion:
    return E.IndexVersion(
        id=row.id, collection=name, model_version=row.model_version, factory=row.factory,
        params=dict(row.params), metrics=dict(row.metrics), artifact=row.artifact,
        as_of_batch=row.as_of_batch, num_vectors=row.num_vectors, created_at=_aware(row.created_at),
    )


def _alias(row: AliasRow, name: str) -> E.AliasTarget:
    return E.AliasTarget(
        collection=name, alias=row.name, model_version=row.model_version,
        index_version=row.index_version, updated_at=_aware(row.updated_at),
    )


def _change(row: AliasHistoryRow, name: str) -> E.AliasChange:
    return E.AliasChange(
        id=row.id, collection=name, alias=row.alias, from_model=row.from_model, from_index=row.from_index,
        to_model=row.to_model, to_index=row.to_index, actor=row.actor, reason=row.reason, at=_aware(row.at),
    )


def _drift(row: DriftReportRow, name: str) -> E.DriftReport:
    return E.DriftReport(
        id=row.id, collection=name, batch_seq=row.batch_seq, model_version=row.model_version,
        drifted=row.drifted, alpha=row.alpha, summary=dict(row.summary),
        report_artifact=row.report_artifact, created_at=_aware(row.created_at),
    )


def _alert(row: AlertRow, name: str) -> E.Alert:
    return E.Alert(
        id=row.id, collection=name, kind=row.kind, message=row.message, payload=dict(row.payload),
        dedup_key=row.dedup_key, drift_report_id=row.drift_report_id, created_at=_aware(row.created_at),
        delivered_at=_aware(row.delivered_at), attempts=row.attempts, last_error=row.last_error,
    )


def _run(row: TrainingRunRow, name: str) -> E.TrainingRun:
    return E.TrainingRun(
        id=row.id, collection=name, model_version=row.model_version, kind=row.kind,
        batches=list(row.batches), buffer_artifact=row.buffer_artifact, status=row.status,
        started_at=_aware(row.started_at), finished_at=_aware(row.finished_at), details=dict(row.details),
    )


def create_registry_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # Take the write lock up front: two processes can never both read "max version = 3"
            # and both write 4, and no transaction fails half-way on lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


class RegistryStore:
    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        self.engine = create_registry_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if upgrade:
            self.upgrade()

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def upgrade(self) -> str:
        """Bring the schema to the newest migration; safe to call from many processes at once."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        try:
            with self.engine.begin() as conn:
                if self.is_postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return head
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                log.info("registry %s upgraded to %s", self._safe_url, head)
        except OperationalError as e:
            raise StewardError(f"cannot open the registry database {self._safe_url}: {e.orig}") from e
        return head

    @property
    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except IntegrityError as e:
            raise ConflictError(f"registry update conflicts with existing data: {e.orig}") from e
        finally:
            session.close()

    def _collection_row(self, s: Session, name: str, *, for_update: bool = False) -> CollectionRow:
        stmt = select(CollectionRow).where(CollectionRow.name == name)
        if for_update and self.is_postgres:
            stmt = stmt.with_for_update()
        row = s.scalars(stmt).one_or_none()
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist; ingest a batch into it first")
        return row

    # --- collections and batches -------------------------------------------------------------

    def ensure_collection(self, name: str, *, kind: str, dim: int | None) -> E.Collection:
        for attempt in range(2):
            try:
                with self._session() as s:
                    row = s.scalars(select(CollectionRow).where(CollectionRow.name == name)).one_or_none()
                    if row is None:
                        row = CollectionRow(name=name, kind=kind, dim=dim, created_at=_now())
                        s.add(row)
                        s.flush()
                    return _collection(row)
            except ConflictError:
                if attempt:  # created concurrently by someone else: read it the second time round
                    raise
        raise AssertionError("unreachable")

    def get_collection(self, name: str) -> E.Collection:
        with self._session() as s:
            return _collection(self._collection_row(s, name))

    def list_collections(self) -> list[E.Collection]:
        with self._session() as s:
            return [_collection(r) for r in s.scalars(select(CollectionRow).order_by(CollectionRow.name))]

    def find_batch_by_hash(self, collection: str, content_hash: str) -> E.Batch | None:
        with self._session() as s:
            row = s.scalars(select(CollectionRow).where(CollectionRow.name == collection)).one_or_none()
            if row is None:
                return None
            batch = s.scalars(
                select(BatchRow).where(BatchRow.collection_id == row.id, BatchRow.content_hash == content_hash)
            ).one_or_none()
            return _batch(batch, collection) if batch else None

    def add_batch(
        self, collection: str, *, content_hash: str, source: str, rows: int, new_items: int,
        updated_items: int, quarantined: int, data_path: str, quarantine_path: str | None,
    ) -> E.Batch:
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            seq = (s.scalar(select(func.max(BatchRow.seq)).where(BatchRow.collection_id == c.id)) or 0) + 1
            row = BatchRow(
                collection_id=c.id, seq=seq, content_hash=content_hash, source=source, rows=rows,
                new_items=new_items, updated_items=updated_items, quarantined=quarantined,
                data_path=data_path, quarantine_path=quarantine_path, created_at=_now(),
            )
            s.add(row)
            s.flush()
            return _batch(row, collection)

    def list_batches(self, collection: str) -> list[E.Batch]:
        with self._session() as s:
            c = self._collection_row(s, collection)
            rows = s.scalars(select(BatchRow).where(BatchRow.collection_id == c.id).order_by(BatchRow.seq))
            return [_batch(r, collection) for r in rows]

    def get_batch(self, collection: str, seq: int) -> E.Batch:
        with self._session() as s:
            c = self._collection_row(s, collection)
            row = s.scalars(select(BatchRow).where(BatchRow.collection_id == c.id, BatchRow.seq == seq)).one_or_none()
            if row is None:
                raise NotFoundError(f"collection {collection!r} has no batch {seq}; see `steward batches list`")
            return _batch(row, collection)

    def latest_batch(self, collection: str) -> E.Batch | None:
        batches = self.list_batches(collection)
        return batches[-1] if batches else None

    # --- models --------------------------------------------------------------------------------

    def register_model(
        self, collection: str, *, config: dict[str, Any], metrics: dict[str, Any], artifacts: dict[str, str],
        parent_version: int | None = None, trained_on_batch: int | None = None,
        status: str = "candidate", status_reason: str | None = None,
    ) -> E.ModelVersion:
        if status not in ("candidate", "rejected"):
            raise ConflictError(f"a new model version starts as candidate or rejected, not {status!r}; promote it instead")
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            last = s.scalar(select(func.max(ModelVersionRow.version)).where(ModelVersionRow.collection_id == c.id))
            row = ModelVersionRow(
                collection_id=c.id, version=(last or 0) + 1, parent_version=parent_version, status=status,
                status_reason=status_reason, config=jsonable(config), metrics=jsonable(metrics), artifacts=artifacts,
                trained_on_batch=trained_on_batch, created_at=_now(),
            )
            s.add(row)
            s.flush()
            return _model(row, collection)

    def _model_row(self, s: Session, c: CollectionRow, version: int) -> ModelVersionRow:
        row = s.scalars(
            select(ModelVersionRow).where(ModelVersionRow.collection_id == c.id, ModelVersionRow.version == version)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"collection {c.name!r} has no model version {version}; see `steward models list`")
        return row

    def get_model(self, collection: str, version: int) -> E.ModelVersion:
        with self._session() as s:
            return _model(self._model_row(s, self._collection_row(s, collection), version), collection)

    def list_models(self, collection: str) -> list[E.ModelVersion]:
        with self._session() as s:
            c = self._collection_row(s, collection)
            rows = s.scalars(
                select(ModelVersionRow).where(ModelVersionRow.collection_id == c.id).order_by(ModelVersionRow.version)
            )
            return [_model(r, collection) for r in rows]

    def set_model_status(self, collection: str, version: int, status: str, reason: str | None) -> E.ModelVersion:
        if status not in E.MODEL_STATUSES or status == "production":
            raise ConflictError(f"status {status!r} cannot be set directly; production is set by promote")
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            row = self._model_row(s, c, version)
            alias = s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id, AliasRow.model_version == version)).first()
            if alias is not None:
                raise ConflictError(
                    f"model version {version} is behind alias {alias.name!r}; promote or roll back to another version first"
                )
            row.status, row.status_reason = status, reason
            return _model(row, collection)

    def update_model_metrics(self, collection: str, version: int, metrics: dict[str, Any]) -> E.ModelVersion:
        with self._session() as s:
            row = self._model_row(s, self._collection_row(s, collection, for_update=True), version)
            row.metrics = jsonable({**row.metrics, **metrics})
            return _model(row, collection)

    # --- indexes -------------------------------------------------------------------------------

    def register_index(
        self, collection: str, model_version: int, *, factory: str, params: dict[str, Any],
        metrics: dict[str, Any], artifact: str, as_of_batch: int | None, num_vectors: int,
    ) -> E.IndexVersion:
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            self._model_row(s, c, model_version)
            row = IndexVersionRow(
                collection_id=c.id, model_version=model_version, factory=factory, params=jsonable(params),
                metrics=jsonable(metrics), artifact=artifact, as_of_batch=as_of_batch, num_vectors=num_vectors,
                created_at=_now(),
            )
            s.add(row)
            s.flush()
            return _index(row, collection)

    def get_index(self, index_id: int) -> E.IndexVersion:
        with self._session() as s:
            row = s.get(IndexVersionRow, index_id)
            if row is None:
                raise NotFoundError(f"index version {index_id} does not exist; see `steward index list`")
            return _index(row, s.get(CollectionRow, row.collection_id).name)

    def list_indexes(self, collection: str, model_version: int | None = None) -> list[E.IndexVersion]:
        with self._session() as s:
            c = self._collection_row(s, collection)
            stmt = select(IndexVersionRow).where(IndexVersionRow.collection_id == c.id)
            if model_version is not None:
                stmt = stmt.where(IndexVersionRow.model_version == model_version)
            return [_index(r, collection) for r in s.scalars(stmt.order_by(IndexVersionRow.id))]

    # --- aliases -------------------------------------------------------------------------------

    def get_alias(self, collection: str, alias: str = E.PRODUCTION_ALIAS) -> E.AliasTarget | None:
        with self._session() as s:
            c = s.scalars(select(CollectionRow).where(CollectionRow.name == collection)).one_or_none()
            if c is None:
                return None
            row = s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id, AliasRow.name == alias)).one_or_none()
            return _alias(row, collection) if row else None

    def _switch_alias(
        self, s: Session, c: CollectionRow, alias: str, model_version: int, index_version: int | None,
        actor: str, reason: str,
    ) -> AliasHistoryRow:
        model = self._model_row(s, c, model_version)
        if model.status == "rejected":
            raise ConflictError(
                f"model version {model_version} of {c.name!r} was rejected ({model.status_reason}); it cannot serve"
            )
        if model.deleted_at is not None:
            raise ConflictError(f"model version {model_version} of {c.name!r} was garbage-collected; its artifacts are gone")
        if index_version is not None:
            index = s.get(IndexVersionRow, index_version)
            if index is None or index.collection_id != c.id or index.model_version != model_version:
                raise ConflictError(
                    f"index version {index_version} does not belong to model version {model_version} of {c.name!r}"
                )
            if index.deleted_at is not None:
                raise ConflictError(f"index version {index_version} was garbage-collected; its artifact is gone")
        row = s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id, AliasRow.name == alias)).one_or_none()
        previous = (row.model_version, row.index_version) if row else (None, None)
        if previous == (model_version, index_version):
            raise ConflictError(f"{alias} of {c.name!r} already points to model {model_version}, index {index_version}")
        now = _now()
        if row is None:
            s.add(AliasRow(collection_id=c.id, name=alias, model_version=model_version, index_version=index_version, updated_at=now))
        else:
            row.model_version, row.index_version, row.updated_at = model_version, index_version, now
        if alias == E.PRODUCTION_ALIAS:
            if previous[0] is not None and previous[0] != model_version:
                old = self._model_row(s, c, previous[0])
                old.status, old.status_reason = "archived", f"replaced by version {model_version}: {reason}"
            model.status, model.status_reason = "production", reason
        history = AliasHistoryRow(
            collection_id=c.id, alias=alias, from_model=previous[0], from_index=previous[1],
            to_model=model_version, to_index=index_version, actor=actor, reason=reason, at=now,
        )
        s.add(history)
        s.flush()
        return history

    def promote(
        self, collection: str, model_version: int, index_version: int | None = None, *,
        actor: str | None = None, reason: str, alias: str = E.PRODUCTION_ALIAS,
    ) -> E.AliasChange:
        """Point ``alias`` at the pair; alias, statuses and history change in one transaction."""
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            return _change(self._switch_alias(s, c, alias, model_version, index_version, actor or default_actor(), reason), collection)

    def rollback_target(self, collection: str, to_version: int | None = None) -> tuple[int, int | None]:
        """The pair a rollback would restore: the previous production pair, or ``to_version``'s.

        Without ``to_version``: the pair that production pointed to before its current pair (so two
        rollbacks in a row swap back). With it: the pair that version last served with, else its
        newest index.
        """
        with self._session() as s:
            c = self._collection_row(s, collection)
            return self._rollback_target(s, c, to_version)

    def _rollback_target(self, s: Session, c: CollectionRow, to_version: int | None) -> tuple[int, int | None]:
        alias = s.scalars(
            select(AliasRow).where(AliasRow.collection_id == c.id, AliasRow.name == E.PRODUCTION_ALIAS)
        ).one_or_none()
        history = list(s.scalars(
            select(AliasHistoryRow)
            .where(AliasHistoryRow.collection_id == c.id, AliasHistoryRow.alias == E.PRODUCTION_ALIAS)
            .order_by(AliasHistoryRow.id.desc())
        ))
        if to_version is None:
            if alias is None or not history or history[0].from_model is None:
                raise NotFoundError(f"collection {c.name!r} has no earlier production pair to roll back to")
            return history[0].from_model, history[0].from_index
        self._model_row(s, c, to_version)
        for h in history:
            if h.to_model == to_version:
                return to_version, h.to_index
        newest = s.scalars(
            select(IndexVersionRow)
            .where(IndexVersionRow.collection_id == c.id, IndexVersionRow.model_version == to_version,
                   IndexVersionRow.deleted_at.is_(None))
            .order_by(IndexVersionRow.id.desc())
        ).first()
        return to_version, newest.id if newest else None

    def rollback(
        self, collection: str, to_version: int | None = None, *, actor: str | None = None,
        reason: str = "rollback", verify: Callable[[E.ModelVersion, E.IndexVersion | None], None] | None = None,
    ) -> E.AliasChange:
        """Restore an earlier production pair in one transaction.

        ``verify`` (e.g. an artifact checksum check) runs on the target inside the transaction and
        may raise to refuse; production stays where it was.
        """
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            model_version, index_version = self._rollback_target(s, c, to_version)
            if verify is not None:
                model = _model(self._model_row(s, c, model_version), collection)
                index_row = s.get(IndexVersionRow, index_version) if index_version is not None else None
                verify(model, _index(index_row, collection) if index_row else None)
            change = self._switch_alias(s, c, E.PRODUCTION_ALIAS, model_version, index_version, actor or default_actor(), reason)
            return _change(change, collection)

    def alias_history(self, collection: str, alias: str | None = None) -> list[E.AliasChange]:
        with self._session() as s:
            c = self._collection_row(s, collection)
            stmt = select(AliasHistoryRow).where(AliasHistoryRow.collection_id == c.id)
            if alias is not None:
                stmt = stmt.where(AliasHistoryRow.alias == alias)
            return [_change(r, collection) for r in s.scalars(stmt.order_by(AliasHistoryRow.id))]

    # --- retention -----------------------------------------------------------------------------

    def retention_plan(self, collection: str, keep: int) -> tuple[list[E.ModelVersion], list[E.IndexVersion]]:
        """Model and index versions that ``gc --keep keep`` may delete.

        Protected: anything an alias points to, the last ``keep`` distinct production pairs, and
        every model version newer than the newest of those (fresh candidates are not garbage).
        """
        if keep < 1:
            raise ConflictError(f"--keep {keep} would delete what production points to; keep at least 1")
        with self._session() as s:
            c = self._collection_row(s, collection)
            protected_models: set[int] = set()
            protected_indexes: set[int] = set()
            for a in s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id)):
                protected_models.add(a.model_version)
                if a.index_version is not None:
                    protected_indexes.add(a.index_version)
            pairs: list[tuple[int, int | None]] = []
            for h in s.scalars(
                select(AliasHistoryRow)
                .where(AliasHistoryRow.collection_id == c.id, AliasHistoryRow.alias == E.PRODUCTION_ALIAS)
                .order_by(AliasHistoryRow.id.desc())
            ):
                pair = (h.to_model, h.to_index)
                if pair not in pairs:
                    pairs.append(pair)
                if len(pairs) >= keep:
                    break
            for m, i in pairs:
                protected_models.add(m)
                if i is not None:
                    protected_indexes.add(i)
            newest_protected = max(protected_models, default=0)
            models = [
                _model(r, collection)
                for r in s.scalars(select(ModelVersionRow).where(ModelVersionRow.collection_id == c.id).order_by(ModelVersionRow.version))
                if r.deleted_at is None and r.version not in protected_models and r.version < newest_protected
            ]
            doomed_models = {m.version for m in models}
            indexes = [
                _index(r, collection)
                for r in s.scalars(select(IndexVersionRow).where(IndexVersionRow.collection_id == c.id).order_by(IndexVersionRow.id))
                if r.deleted_at is None and r.id not in protected_indexes
                and (r.model_version in doomed_models or r.model_version < newest_protected or r.model_version in protected_models)
            ]
            return models, indexes

    def mark_deleted(self, collection: str, *, model_versions: list[int], index_ids: list[int]) -> None:
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            now = _now()
            for v in model_versions:
                row = self._model_row(s, c, v)
                row.deleted_at = now
                if row.status != "rejected":
                    row.status, row.status_reason = "archived", "artifacts deleted by gc"
            for i in index_ids:
                s.get(IndexVersionRow, i).deleted_at = now

    def referenced_artifacts(self) -> set[str]:
        """Every artifact hash a live (not deleted) model, index, run or report still refers to."""
        with self._session() as s:
            refs: set[str] = set()
            for r in s.scalars(select(ModelVersionRow).where(ModelVersionRow.deleted_at.is_(None))):
                refs.update(v for v in r.artifacts.values() if isinstance(v, str))
            refs.update(s.scalars(select(IndexVersionRow.artifact).where(IndexVersionRow.deleted_at.is_(None))))
            refs.update(x for x in s.scalars(select(DriftReportRow.report_artifact)) if x)
            return refs

    # --- drift reports and alerts --------------------------------------------------------------

    def record_drift_report(
        self, collection: str, *, batch_seq: int | None, model_version: int | None, drifted: bool,
        alpha: float, summary: dict[str, Any], report_artifact: str | None = None,
    ) -> E.DriftReport:
        with self._session() as s:
            c = self._collection_row(s, collection)
            row = DriftReportRow(
                collection_id=c.id, batch_seq=batch_seq, model_version=model_version, drifted=drifted,
                alpha=alpha, summary=jsonable(summary), report_artifact=report_artifact, created_at=_now(),
            )
            s.add(row)
            s.flush()
            return _drift(row, collection)

    def list_drift_reports(self, collection: str, limit: int = 50) -> list[E.DriftReport]:
        with self._session() as s:
            c = self._collection_row(s, collection)
            rows = s.scalars(
                select(DriftReportRow).where(DriftReportRow.collection_id == c.id)
                .order_by(DriftReportRow.id.desc()).limit(limit)
            )
            return [_drift(r, collection) for r in rows]

    def add_alert(
        self, collection: str, *, kind: str, message: str, payload: dict[str, Any], dedup_key: str,
        drift_report_id: int | None = None, dedup_window_seconds: float = 0,
    ) -> E.Alert | None:
        """Create an alert, or return None when one with ``dedup_key`` exists inside the window."""
        with self._session() as s:
            c = self._collection_row(s, collection, for_update=True)
            now = _now()
            if dedup_window_seconds > 0:
                recent = s.scalars(
                    select(AlertRow).where(
                        AlertRow.collection_id == c.id, AlertRow.dedup_key == dedup_key,
                        AlertRow.created_at >= now - timedelta(seconds=dedup_window_seconds),
                    )
                ).first()
                if recent is not None:
                    return None
            row = AlertRow(
                collection_id=c.id, kind=kind, message=message, payload=jsonable(payload), dedup_key=dedup_key,
                drift_report_id=drift_report_id, created_at=now, attempts=0,
            )
            s.add(row)
            s.flush()
            return _alert(row, collection)

    def list_alerts(self, collection: str | None = None, *, undelivered_only: bool = False) -> list[E.Alert]:
        with self._session() as s:
            stmt = select(AlertRow, CollectionRow.name).join(CollectionRow, CollectionRow.id == AlertRow.collection_id)
            if collection is not None:
                stmt = stmt.where(CollectionRow.name == collection)
            if undelivered_only:
                stmt = stmt.where(AlertRow.delivered_at.is_(None))
            return [_alert(r, name) for r, name in s.execute(stmt.order_by(AlertRow.id))]

    def record_alert_attempt(self, alert_id: int, *, delivered: bool, error: str | None = None) -> E.Alert:
        with self._session() as s:
            row = s.get(AlertRow, alert_id)
            if row is None:
                raise NotFoundError(f"alert {alert_id} does not exist")
            row.attempts += 1
            row.last_error = error
            if delivered and row.delivered_at is None:
                row.delivered_at = _now()
            return _alert(row, s.get(CollectionRow, row.collection_id).name)

    # --- training runs -------------------------------------------------------------------------

    def start_training_run(
        self, collection: str, *, kind: str, batches: list[int], details: dict[str, Any] | None = None
    ) -> E.TrainingRun:
        with self._session() as s:
            c = self._collection_row(s, collection)
            row = TrainingRunRow(
                collection_id=c.id, kind=kind, batches=list(batches), status="running",
                started_at=_now(), details=jsonable(details or {}),
            )
            s.add(row)
            s.flush()
            return _run(row, collection)

    def finish_training_run(
        self, run_id: int, *, status: str, model_version: int | None = None,
        buffer_artifact: str | None = None, details: dict[str, Any] | None = None,
    ) -> E.TrainingRun:
        with self._session() as s:
            row = s.get(TrainingRunRow, run_id)
            if row is None:
                raise NotFoundError(f"training run {run_id} does not exist")
            row.status, row.finished_at = status, _now()
            row.model_version = model_version
            row.buffer_artifact = buffer_artifact
            row.details = jsonable({**row.details, **(details or {})})
            return _run(row, s.get(CollectionRow, row.collection_id).name)

    def list_training_runs(self, collection: str) -> list[E.TrainingRun]:
        with self._session() as s:
            c = self._collection_row(s, collection)
            rows = s.scalars(select(TrainingRunRow).where(TrainingRunRow.collection_id == c.id).order_by(TrainingRunRow.id))
            return [_run(r, collection) for r in rows]

    # --- locks ---------------------------------------------------------------------------------

    def try_acquire_lock(self, name: str, *, owner: str, ttl_seconds: float) -> bool:
        """Take ``name`` if free, expired, or already ours. Never waits."""
        try:
            with self._session() as s:
                now = _now()
                stmt = select(LockRow).where(LockRow.name == name)
                if self.is_postgres:
                    stmt = stmt.with_for_update()
                row = s.scalars(stmt).one_or_none()
                if (row is not None and row.owner != owner and _aware(row.expires_at) > now
                        and not _owner_is_dead(row.owner)):
                    return False
                if row is None:
                    s.add(LockRow(name=name, owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=ttl_seconds)))
                else:
                    row.owner, row.acquired_at = owner, now
                    row.expires_at = now + timedelta(seconds=ttl_seconds)
            return True
        except ConflictError:  # another process inserted the row first
            return False

    def lock_holder(self, name: str) -> tuple[str, datetime] | None:
        with self._session() as s:
            row = s.get(LockRow, name)
            if row is None or _aware(row.expires_at) <= _now():
                return None
            return row.owner, _aware(row.expires_at)

    def release_lock(self, name: str, *, owner: str) -> None:
        with self._session() as s:
            row = s.get(LockRow, name)
            if row is not None and row.owner == owner:
                s.delete(row)

    @contextlib.contextmanager
    def lock(self, name: str, *, owner: str | None = None, ttl_seconds: float = 6 * 3600) -> Iterator[str]:
        """Hold a named lock for the block; raise :class:`LockHeldError` when someone else has it."""
        owner = owner or default_actor()
        if not self.try_acquire_lock(name, owner=owner, ttl_seconds=ttl_seconds):
            holder = self.lock_holder(name)
            who = f"{holder[0]} until {holder[1]:%Y-%m-%d %H:%M:%S} UTC" if holder else "another process"
            raise LockHeldError(f"lock {name!r} is held by {who}; wait for that run to finish")
        try:
            yield owner
        finally:
            self.release_lock(name, owner=owner)

    def dispose(self) -> None:
        self.engine.dispose()
