"""The model registry: model and index versions, aliases and their history, retention.

Only :mod:`storage.production` reads or moves the ``production`` alias; everything else asks it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ConflictError, NotFoundError, PinnedError
from storage.registry import convert
from storage.registry import entities as E
from storage.registry.database import Database, default_actor, now
from storage.registry.orm import (
    AliasHistoryRow,
    AliasRow,
    CollectionRow,
    DriftReportRow,
    IndexVersionRow,
    ModelVersionRow,
)
from storage.serialization import jsonable

AUTO_PROMOTE = "auto-promote"  # history kind of a promotion by a maintenance run (not a person)
# Raises unless every artifact named is present; called under the artifacts lock before a row starts
# to reference them, so an artifact gc deleted meanwhile is noticed instead of registered.
RequirePresent = Callable[[Iterable[str]], None]


class ModelRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- models --------------------------------------------------------------------------------

    def register_model(
        self, collection: str, *, config: dict[str, Any], metrics: dict[str, Any], artifacts: dict[str, str],
        parent_version: int | None = None, trained_on_batch: int | None = None,
        status: str = "candidate", status_reason: str | None = None, require_present: RequirePresent | None = None,
    ) -> E.ModelVersion:
        if status not in ("candidate", "rejected"):
            raise ConflictError(f"a new model version starts as candidate or rejected, not {status!r}; promote it instead")
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            self.db.lock_artifacts(s)
            if require_present is not None:
                require_present([v for v in artifacts.values() if isinstance(v, str)])
            last = s.scalar(select(func.max(ModelVersionRow.version)).where(ModelVersionRow.collection_id == c.id))
            row = ModelVersionRow(
                collection_id=c.id, version=(last or 0) + 1, parent_version=parent_version, status=status,
                status_reason=status_reason, config=jsonable(config), metrics=jsonable(metrics), artifacts=artifacts,
                trained_on_batch=trained_on_batch, created_at=now(),
            )
            s.add(row)
            s.flush()
            return convert.model(row, collection)

    def _model_row(self, s: Session, c: CollectionRow, version: int) -> ModelVersionRow:
        row = s.scalars(
            select(ModelVersionRow).where(ModelVersionRow.collection_id == c.id, ModelVersionRow.version == version)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"collection {c.name!r} has no model version {version}; see `steward models list`")
        return row

    def get_model(self, collection: str, version: int) -> E.ModelVersion:
        with self.db.session() as s:
            return convert.model(self._model_row(s, self.db.collection_row(s, collection), version), collection)

    def list_models(self, collection: str) -> list[E.ModelVersion]:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            rows = s.scalars(
                select(ModelVersionRow).where(ModelVersionRow.collection_id == c.id).order_by(ModelVersionRow.version)
            )
            return [convert.model(r, collection) for r in rows]

    def set_model_status(self, collection: str, version: int, status: str, reason: str | None) -> E.ModelVersion:
        if status not in E.MODEL_STATUSES or status == "production":
            raise ConflictError(f"status {status!r} cannot be set directly; production is set by promote")
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            row = self._model_row(s, c, version)
            alias = s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id, AliasRow.model_version == version)).first()
            if alias is not None:
                raise ConflictError(
                    f"model version {version} is behind alias {alias.name!r}; promote or roll back to another version first"
                )
            row.status, row.status_reason = status, reason
            return convert.model(row, collection)

    def update_model_metrics(self, collection: str, version: int, metrics: dict[str, Any]) -> E.ModelVersion:
        with self.db.session() as s:
            row = self._model_row(s, self.db.collection_row(s, collection, for_update=True), version)
            row.metrics = jsonable({**row.metrics, **metrics})
            return convert.model(row, collection)

    # --- indexes -------------------------------------------------------------------------------

    def register_index(
        self, collection: str, model_version: int, *, factory: str, params: dict[str, Any],
        metrics: dict[str, Any], artifact: str, as_of_batch: int | None, num_vectors: int,
        require_present: RequirePresent | None = None,
    ) -> E.IndexVersion:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            self.db.lock_artifacts(s)
            if require_present is not None:
                require_present([artifact])
            self._model_row(s, c, model_version)
            row = IndexVersionRow(
                collection_id=c.id, model_version=model_version, factory=factory, params=jsonable(params),
                metrics=jsonable(metrics), artifact=artifact, as_of_batch=as_of_batch, num_vectors=num_vectors,
                created_at=now(),
            )
            s.add(row)
            s.flush()
            return convert.index(row, collection)

    def get_index(self, index_id: int) -> E.IndexVersion:
        with self.db.session() as s:
            return convert.index(*self.db.row_by_id(s, IndexVersionRow, index_id, "index version"))

    def list_indexes(self, collection: str, model_version: int | None = None) -> list[E.IndexVersion]:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            stmt = select(IndexVersionRow).where(IndexVersionRow.collection_id == c.id)
            if model_version is not None:
                stmt = stmt.where(IndexVersionRow.model_version == model_version)
            return [convert.index(r, collection) for r in s.scalars(stmt.order_by(IndexVersionRow.id))]

    # --- aliases -------------------------------------------------------------------------------

    def get_alias(self, collection: str, alias: str = E.PRODUCTION_ALIAS) -> E.AliasTarget | None:
        with self.db.session() as s:
            c = s.scalars(select(CollectionRow).where(CollectionRow.name == collection)).one_or_none()
            if c is None:
                return None
            row = s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id, AliasRow.name == alias)).one_or_none()
            return convert.alias(row, collection) if row else None

    def _switch_alias(
        self, s: Session, c: CollectionRow, alias: str, model_version: int, index_version: int | None,
        actor: str, reason: str, kind: str = "promote",
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
        if kind == AUTO_PROMOTE:
            self._check_automation_may_move(s, c, row, model_version)
        previous = (row.model_version, row.index_version) if row else (None, None)
        if previous == (model_version, index_version):
            raise ConflictError(f"{alias} of {c.name!r} already points to model {model_version}, index {index_version}")
        at = now()
        if row is None:
            s.add(AliasRow(collection_id=c.id, name=alias, model_version=model_version, index_version=index_version,
                           updated_at=at))
        else:
            row.model_version, row.index_version, row.updated_at = model_version, index_version, at
        if alias == E.PRODUCTION_ALIAS:
            if previous[0] is not None and previous[0] != model_version:
                old = self._model_row(s, c, previous[0])
                old.status, old.status_reason = "archived", f"replaced by version {model_version}: {reason}"
            model.status, model.status_reason = "production", reason
        history = AliasHistoryRow(
            collection_id=c.id, alias=alias, from_model=previous[0], from_index=previous[1],
            to_model=model_version, to_index=index_version, actor=actor, reason=reason, at=at, kind=kind,
        )
        s.add(history)
        s.flush()
        return history

    def switch_alias(
        self, collection: str, model_version: int, index_version: int | None = None, *,
        actor: str | None = None, reason: str, alias: str = E.PRODUCTION_ALIAS,
        verify: Callable[[E.ModelVersion, E.IndexVersion | None], None] | None = None, automated: bool = False,
    ) -> E.AliasChange:
        """Point ``alias`` at the pair; alias, statuses and history change in one transaction.

        ``verify`` runs on the target inside the transaction and may raise to refuse. ``automated``
        (a maintenance run, not a person): refused while the alias is pinned, and for a version an
        operator rolled away from (:class:`PinnedError`, :class:`ConflictError`).
        """
        kind = AUTO_PROMOTE if automated else "promote"
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            if verify is not None:
                self._verify(s, c, model_version, index_version, verify)
            return convert.change(
                self._switch_alias(s, c, alias, model_version, index_version, actor or default_actor(), reason, kind),
                collection,
            )

    def _check_automation_may_move(self, s: Session, c: CollectionRow, row: AliasRow | None, version: int) -> None:
        if row is not None and row.pinned_at is not None:
            raise PinnedError(
                f"production of {c.name!r} is pinned by {row.pinned_by} ({row.pinned_reason}); automated runs leave "
                f"it alone: promote by hand, or release it with `steward unpin -c {c.name}`"
            )
        if version in self._rolled_away(s, c):
            raise ConflictError(
                f"model version {version} of {c.name!r} was rolled away from by an operator; automated runs never "
                f"promote it again (promote it by hand if it is wanted)"
            )

    def _rolled_away(self, s: Session, c: CollectionRow) -> set[int]:
        """Versions an operator rolled production away from and has not promoted by hand since."""
        away: set[int] = set()
        for h in s.scalars(select(AliasHistoryRow).where(
                AliasHistoryRow.collection_id == c.id, AliasHistoryRow.alias == E.PRODUCTION_ALIAS)
                .order_by(AliasHistoryRow.id)):
            if h.kind == "rollback" and h.from_model is not None and h.from_model != h.to_model:
                away.add(h.from_model)
            elif h.kind == "promote":
                away.discard(h.to_model)
        return away

    def rolled_away(self, collection: str) -> set[int]:
        with self.db.session() as s:
            return self._rolled_away(s, self.db.collection_row(s, collection))

    def set_pin(self, collection: str, *, pinned: bool, actor: str | None = None, reason: str | None = None,
                alias: str = E.PRODUCTION_ALIAS) -> E.AliasTarget:
        """Pin (automated runs leave the alias alone) or release it."""
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            row = s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id, AliasRow.name == alias)).one_or_none()
            if row is None:
                raise NotFoundError(f"collection {collection!r} has no {alias} pair to pin; promote one first")
            if pinned:
                row.pinned_at, row.pinned_by, row.pinned_reason = now(), actor or default_actor(), reason or "pinned"
            else:
                row.pinned_at = row.pinned_by = row.pinned_reason = None
            return convert.alias(row, collection)

    def _verify(self, s: Session, c: CollectionRow, model_version: int, index_version: int | None,
                verify: Callable[[E.ModelVersion, E.IndexVersion | None], None]) -> None:
        model = convert.model(self._model_row(s, c, model_version), c.name)
        index_row = s.get(IndexVersionRow, index_version) if index_version is not None else None
        verify(model, convert.index(index_row, c.name) if index_row else None)

    def rollback_target(self, collection: str, to_version: int | None = None) -> tuple[int, int | None]:
        """The pair a rollback would restore: the previous production pair, or ``to_version``'s.

        Without ``to_version``: the pair that production pointed to before its current pair (so two
        rollbacks in a row swap back). With it: the pair that version last served with, else its
        newest index.
        """
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
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
        expect: tuple[int, int | None] | None = None, pin: bool = False,
    ) -> E.AliasChange:
        """Restore an earlier production pair in one transaction.

        ``verify`` (e.g. an artifact checksum check) runs on the target inside the transaction and
        may raise to refuse; production stays where it was. ``expect``: the target the caller
        prepared for; a different one (production moved meanwhile) is refused. ``pin``: pin the
        restored pair in the same transaction (automated runs then leave it alone).
        """
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            model_version, index_version = self._rollback_target(s, c, to_version)
            if expect is not None and (model_version, index_version) != tuple(expect):
                raise ConflictError(
                    f"production of {collection!r} changed while rolling back (the target is now model "
                    f"{model_version}, index {index_version}); check `steward status` and retry"
                )
            if verify is not None:
                self._verify(s, c, model_version, index_version, verify)
            actor = actor or default_actor()
            change = self._switch_alias(s, c, E.PRODUCTION_ALIAS, model_version, index_version, actor, reason,
                                        "rollback")
            if pin:
                row = s.scalars(select(AliasRow).where(AliasRow.collection_id == c.id,
                                                       AliasRow.name == E.PRODUCTION_ALIAS)).one()
                row.pinned_at, row.pinned_by, row.pinned_reason = now(), actor, f"rolled back: {reason}"
            return convert.change(change, collection)

    def alias_history(self, collection: str, alias: str | None = None) -> list[E.AliasChange]:
        with self.db.session() as s:
            c = self.db.collection_row(s, collection)
            stmt = select(AliasHistoryRow).where(AliasHistoryRow.collection_id == c.id)
            if alias is not None:
                stmt = stmt.where(AliasHistoryRow.alias == alias)
            return [convert.change(r, collection) for r in s.scalars(stmt.order_by(AliasHistoryRow.id))]

    # --- retention -----------------------------------------------------------------------------

    def retire(self, collection: str, keep: int, *, dry_run: bool = False
               ) -> tuple[list[E.ModelVersion], list[E.IndexVersion]]:
        """Mark deleted the model and index versions outside the retention window, in one transaction.

        Protected: anything an alias points to, the last ``keep`` distinct production pairs, and
        every model version newer than the newest of those (fresh candidates are not garbage).
        Planning and marking share the transaction and the collection lock, so a promotion that
        commits meanwhile is either seen (and protected) or waits. Returns what was (or, with
        ``dry_run``, would be) retired.
        """
        if keep < 1:
            raise ConflictError(f"--keep {keep} would delete what production points to; keep at least 1")
        with self.db.session() as s:
            c = self.db.collection_row(s, collection, for_update=True)
            models, indexes = self._retention_plan(s, c, keep)
            if not dry_run:
                at = now()
                for row in models:
                    row.deleted_at = at
                    if row.status != "rejected":
                        row.status, row.status_reason = "archived", "artifacts deleted by gc"
                for row in indexes:
                    row.deleted_at = at
                s.flush()
            return ([convert.model(r, collection) for r in models], [convert.index(r, collection) for r in indexes])

    def _retention_plan(self, s: Session, c: CollectionRow, keep: int
                        ) -> tuple[list[ModelVersionRow], list[IndexVersionRow]]:
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
            r for r in s.scalars(select(ModelVersionRow).where(ModelVersionRow.collection_id == c.id)
                                 .order_by(ModelVersionRow.version))
            if r.deleted_at is None and r.version not in protected_models and r.version < newest_protected
        ]
        doomed_models = {m.version for m in models}
        indexes = [
            r for r in s.scalars(select(IndexVersionRow).where(IndexVersionRow.collection_id == c.id)
                                 .order_by(IndexVersionRow.id))
            if r.deleted_at is None and r.id not in protected_indexes
            and (r.model_version in doomed_models or r.model_version < newest_protected
                 or r.model_version in protected_models)
        ]
        return models, indexes

    def referenced_artifacts(self) -> set[str]:
        """Every artifact hash a live (not deleted) model or index still refers to."""
        with self.db.session() as s:
            return self._referenced(s)

    @staticmethod
    def _referenced(s: Session) -> set[str]:
        refs: set[str] = set()
        for r in s.scalars(select(ModelVersionRow).where(ModelVersionRow.deleted_at.is_(None))):
            refs.update(v for v in r.artifacts.values() if isinstance(v, str))
        for r in s.scalars(select(IndexVersionRow).where(IndexVersionRow.deleted_at.is_(None))):
            refs.add(r.artifact)
            extra = (r.params or {}).get(E.REFERENCE_EMBEDDINGS_PARAM) or {}
            if isinstance(extra.get("artifact"), str):
                refs.add(extra["artifact"])
        return refs

    def delete_unreferenced(self, candidates: Iterable[str], delete: Callable[[str], None]) -> list[str]:
        """Delete (with ``delete``) each candidate artifact that nothing live refers to, deciding and
        deleting under the artifacts lock in one transaction.

        Whatever committed before (a promotion, a new version or index that shares the artifact
        through content addressing, a drift report) is seen and keeps its artifact; a registration
        that starts meanwhile waits for the lock and then finds the artifact gone
        (``require_present``) instead of registering a reference to nothing. Returns what was deleted.
        """
        with self.db.session() as s:
            self.db.lock_artifacts(s)
            live = self._referenced(s) | {x for x in s.scalars(select(DriftReportRow.report_artifact)) if x}
            deleted = []
            for sha in sorted(set(candidates) - live):
                delete(sha)
                deleted.append(sha)
            return deleted
