"""The registry database: one engine, one transactional session helper, one migration history.

Design (after MLflow's SQLAlchemy stores):
- every public store method runs in one transaction from :meth:`Database.session`, so an alias
  switch and its history row commit together or not at all;
- ORM rows never leave ``storage.registry``: stores return frozen dataclasses (``entities``);
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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConflictError, NotFoundError, StewardError, ValidationError
from storage.registry.orm import CollectionRow

log = logging.getLogger(__name__)
T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# The newest migration's revision; a test checks it against the migration scripts, so a new
# migration cannot be forgotten here.
SCHEMA_HEAD = "0003"
_SQLITE_BUSY_MS = 60_000
INT64_MAX = 2**63 - 1
ARTIFACTS_LOCK = 727275  # advisory lock key (PostgreSQL) shared by gc's deletes and registrations  # the largest id or version any registry column holds


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - getuser fails in some containers; the host still identifies
        user = "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def now() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime | None) -> datetime | None:
    # SQLite drops the timezone; everything we store is UTC.
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


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


class Database:
    """The engine and the one session factory every registry store shares."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        self.engine = create_registry_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if upgrade:
            self.upgrade()

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def upgrade(self) -> str:
        """Bring the schema to the newest migration; safe to call from many processes at once."""
        if self._current_revision() == SCHEMA_HEAD:
            return SCHEMA_HEAD  # the common case, without importing alembic (~0.15 s per command)
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
                log.info("registry %s upgraded to %s", self.safe_url, head)
        except OperationalError as e:
            raise StewardError(f"cannot open the registry database {self.safe_url}: {e.orig}") from e
        return head

    def _current_revision(self) -> str | None:
        """The revision stamped in ``alembic_version`` (None when the table is missing or unreadable)."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except IntegrityError as e:
            raise ConflictError(f"registry update conflicts with existing data: {e.orig}") from e
        except DataError as e:  # e.g. a number out of the column's range on PostgreSQL
            raise ValidationError(f"the registry refused a value: {e.orig}".strip()) from e
        except OverflowError as e:  # SQLite's driver refuses integers beyond 64 bits before the query runs
            raise ValidationError(f"a number is out of range for the registry ({e}); versions and ids are at "
                                  f"most {INT64_MAX}") from e
        finally:
            session.close()

    def lock_artifacts(self, s: Session) -> None:
        """Serialise with garbage collection: gc deletes artifacts, and a registration starts to
        reference one, only while holding this (to the end of the transaction).

        SQLite already runs one writer at a time (``BEGIN IMMEDIATE``); PostgreSQL takes a
        transaction-scoped advisory lock, global because content addressing shares artifacts
        across collections.
        """
        if self.is_postgres:
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ARTIFACTS_LOCK})

    def collection_row(self, s: Session, name: str, *, for_update: bool = False) -> CollectionRow:
        stmt = select(CollectionRow).where(CollectionRow.name == name)
        if for_update and self.is_postgres:
            stmt = stmt.with_for_update()
        row = s.scalars(stmt).one_or_none()
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist; ingest a batch into it first")
        return row

    def row_by_id(self, s: Session, row_cls: type[T], row_id: int, what: str) -> tuple[T, str]:
        """The row with primary key ``row_id`` and its collection's name; NotFoundError naming ``what``."""
        row = s.get(row_cls, row_id)
        if row is None:
            raise NotFoundError(f"{what} {row_id} does not exist")
        return row, s.get(CollectionRow, row.collection_id).name

    def dispose(self) -> None:
        self.engine.dispose()
