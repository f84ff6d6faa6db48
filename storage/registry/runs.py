"""Training runs and named locks (what is running, and who may run)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from core.errors import ConflictError, LockHeldError
from core.run_context import current_run_ids
from storage.registry import convert
from storage.registry import entities as E
from storage.registry.database import Database, aware, default_actor, now
from storage.registry.orm import LockRow, TrainingRunRow
from storage.serialization import jsonable


def owner_is_dead(owner: str) -> bool:
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


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- training runs -------------------------------------------------------------------------

    def start_training_run(
        self, collection: str, *, kind: str, batches: list[int], details: dict[str, Any] | None = None
    ) -> E.TrainingRun:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            row = TrainingRunRow(
                collection_id=c.id, kind=kind, batches=list(batches), status="running",
                started_at=now(), details=jsonable({**current_run_ids(), **(details or {})}), owner=default_actor(),
            )
            s.add(row)
            s.flush()
            return convert.run(row, collection)

    def finish_training_run(
        self, run_id: int, *, status: str, model_version: int | None = None,
        buffer_artifact: str | None = None, details: dict[str, Any] | None = None,
    ) -> E.TrainingRun:
        with self.db.session() as s:
            row, name = self.db.row_by_id(s, TrainingRunRow, run_id, "training run")
            row.status, row.finished_at = status, now()
            row.model_version = model_version
            row.buffer_artifact = buffer_artifact
            row.details = jsonable({**row.details, **(details or {})})
            return convert.run(row, name)

    def fail_stale_runs(self, collection: str, *, older_than_seconds: float) -> list[E.TrainingRun]:
        """Mark failed the runs still "running" whose process is gone (or that outlived the lock TTL).

        A killed retrain cannot finish its row; the next run of the collection calls this, so the
        history says what happened instead of showing a run that never ends.
        """
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            cutoff = now() - timedelta(seconds=older_than_seconds)
            failed = []
            for row in s.scalars(select(TrainingRunRow).where(TrainingRunRow.collection_id == c.id,
                                                              TrainingRunRow.status == "running")):
                dead = row.owner is not None and owner_is_dead(row.owner)
                if dead or aware(row.started_at) < cutoff:
                    why = f"its process {row.owner} is gone" if dead else "it outlived the lock TTL"
                    row.status, row.finished_at = "failed", now()
                    row.details = jsonable({**row.details, "error": f"crashed: {why} (found by a later run)"})
                    failed.append(convert.run(row, collection))
            return failed

    def get_training_run(self, run_id: int) -> E.TrainingRun:
        with self.db.session() as s:
            row, name = self.db.row_by_id(s, TrainingRunRow, run_id, "training run")
            return convert.run(row, name)

    def list_training_runs(self, collection: str) -> list[E.TrainingRun]:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            rows = s.scalars(select(TrainingRunRow).where(TrainingRunRow.collection_id == c.id).order_by(TrainingRunRow.id))
            return [convert.run(r, collection) for r in rows]

    # --- locks ---------------------------------------------------------------------------------

    def try_acquire_lock(self, name: str, *, owner: str, ttl_seconds: float) -> bool:
        """Take ``name`` if free, expired, or already ours. Never waits."""
        try:
            with self.db.session() as s:
                at = now()
                stmt = select(LockRow).where(LockRow.name == name)
                if self.db.is_postgres:
                    stmt = stmt.with_for_update()
                row = s.scalars(stmt).one_or_none()
                if (row is not None and row.owner != owner and aware(row.expires_at) > at
                        and not owner_is_dead(row.owner)):
                    return False
                if row is None:
                    s.add(LockRow(name=name, owner=owner, acquired_at=at, expires_at=at + timedelta(seconds=ttl_seconds)))
                else:
                    row.owner, row.acquired_at = owner, at
                    row.expires_at = at + timedelta(seconds=ttl_seconds)
            return True
        except ConflictError:  # another process inserted the row first
            return False

    def lock_holder(self, name: str) -> tuple[str, datetime] | None:
        with self.db.session() as s:
            row = s.get(LockRow, name)
            if row is None or aware(row.expires_at) <= now():
                return None
            return row.owner, aware(row.expires_at)

    def release_lock(self, name: str, *, owner: str) -> None:
        with self.db.session() as s:
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
