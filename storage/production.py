"""The production pair: which model+index serves a collection, and the only way to change it.

Every reader (CLI, flows, API, monitoring) asks :class:`Production` which pair is in production,
and every promotion or rollback goes through it, so "what is production" has one answer and one
set of checks: the pair must belong together and its artifacts must be present and intact before
the alias moves. The registry's alias rows are only read or written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.errors import ConflictError, NotFoundError
from storage.artifact_store import ArtifactStore
from storage.hooks import Observers
from storage.registry.entities import PRODUCTION_ALIAS, AliasChange, AliasTarget, IndexVersion, ModelVersion
from storage.registry.models import ModelRegistry

if TYPE_CHECKING:  # pragma: no cover
    from storage.registry import Registry

# Called with (model_version, index_version) before the alias moves; raise to refuse (e.g. the API
# loads the pair first, so a pair that cannot serve never becomes production).
Prepare = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class ProductionPair:
    collection: str
    model: ModelVersion
    index: IndexVersion | None
    since: datetime

    @property
    def key(self) -> tuple[int, int | None]:
        return (self.model.version, None if self.index is None else self.index.id)


class Production:
    def __init__(self, models: ModelRegistry, artifacts: ArtifactStore, observers: Observers | None = None) -> None:
        self.models = models
        self.artifacts = artifacts
        self.observers = observers or Observers()  # told of every production change (e.g. MLflow's alias)

    # --- reading -------------------------------------------------------------------------------

    def target(self, collection: str) -> AliasTarget | None:
        """Where the production alias points (None: nothing promoted yet). One cheap read."""
        return self.models.get_alias(collection, PRODUCTION_ALIAS)

    def require_target(self, collection: str) -> AliasTarget:
        target = self.target(collection)
        if target is None:
            raise NotFoundError(
                f"collection {collection!r} has no production model; run `steward run -c {collection}` (or "
                f"`steward retrain` and `steward promote`), or pass a model version"
            )
        return target

    def pair(self, collection: str) -> ProductionPair | None:
        target = self.target(collection)
        if target is None:
            return None
        model = self.models.get_model(collection, target.model_version)
        index = self.models.get_index(target.index_version) if target.index_version is not None else None
        return ProductionPair(collection, model, index, target.updated_at)

    def model(self, collection: str, version: int | None = None) -> ModelVersion:
        """Model ``version``, or the production model when ``version`` is None."""
        if version is None:
            version = self.require_target(collection).model_version
        return self.models.get_model(collection, version)

    def index(self, collection: str, *, index_version: int | None = None,
              model_version: int | None = None) -> IndexVersion:
        """The index to search: ``index_version`` if given; else production's index (when no other
        model is asked for); else the newest index built for ``model_version`` (default: production's)."""
        if index_version is not None:
            index = self.models.get_index(index_version)
            if index.collection != collection:
                raise NotFoundError(f"index version {index_version} belongs to {index.collection!r}, not {collection!r}")
            return index
        target = self.target(collection)
        if target is not None and target.index_version is not None and model_version in (None, target.model_version):
            return self.models.get_index(target.index_version)
        wanted = model_version if model_version is not None else (target.model_version if target else None)
        indexes = [i for i in self.models.list_indexes(collection, wanted)]
        if not indexes:
            which = f"model version {wanted}" if wanted is not None else "any model"
            raise NotFoundError(
                f"collection {collection!r} has no index for {which}; build one with "
                f"`steward index build -c {collection}`"
            )
        return indexes[-1]

    def check_pair(self, collection: str, model_version: int, index_version: int) -> IndexVersion:
        """Refuse an index built with another model: serving it would return nonsense silently."""
        index = self.models.get_index(index_version)
        if index.collection != collection or index.model_version != model_version:
            raise ConflictError(
                f"index version {index_version} does not belong to model version {model_version} of "
                f"{collection!r} (it was built for {index.collection!r} v{index.model_version}); "
                "promote a matching model/index pair"
            )
        return index

    def verify(self, model: ModelVersion, index: IndexVersion | None) -> None:
        """Raise ArtifactIntegrityError unless every artifact of the pair is present and intact."""
        for sha in model.artifacts.values():
            if isinstance(sha, str):
                self.artifacts.verify(sha)
        if index is not None:
            self.artifacts.verify(index.artifact)

    def history(self, collection: str) -> list[AliasChange]:
        """Every production change, oldest first."""
        return self.models.alias_history(collection, PRODUCTION_ALIAS)

    # --- changing ------------------------------------------------------------------------------

    def promote(self, collection: str, model_version: int, index_version: int | None = None, *,
                reason: str, actor: str | None = None, prepare: Prepare | None = None,
                check_artifacts: bool = True, automated: bool = False) -> AliasChange:
        """Point production at the pair after checking it belongs together and its artifacts are intact.

        ``check_artifacts=False`` only where ``prepare`` already loaded the pair through the
        checksummed artifact store (the API preloads what it will serve). ``automated``: a
        maintenance run is promoting, which a pin or an operator's earlier rollback forbids
        (:class:`core.errors.PinnedError` / :class:`ConflictError`); people may always promote.
        """
        model = self.models.get_model(collection, model_version)
        index = self.check_pair(collection, model_version, index_version) if index_version is not None else None
        if check_artifacts:
            self.verify(model, index)
        if prepare is not None:
            prepare(model_version, index_version)
        change = self.models.switch_alias(collection, model_version, index_version, actor=actor, reason=reason,
                                          automated=automated)
        self.observers.alias_changed(change)
        return change

    def rollback_target(self, collection: str, to_version: int | None = None) -> tuple[int, int | None]:
        return self.models.rollback_target(collection, to_version)

    def rollback(self, collection: str, to_version: int | None = None, *, reason: str = "rollback",
                 actor: str | None = None, prepare: Prepare | None = None,
                 check_artifacts: bool = True, pin: bool = True) -> AliasChange:
        """Restore the previous production pair (or ``to_version``'s), refusing broken artifacts.

        A rollback is an operator's decision, so by default it also pins production: automated runs
        keep ingesting, checking and training, but leave the alias alone until ``unpin``, and never
        re-promote the version rolled away from. ``prepare`` runs on the target before the switch,
        outside the registry transaction (on SQLite every transaction holds the write lock); the
        switch is refused if production moved in between.
        """
        target = self.models.rollback_target(collection, to_version)
        if prepare is not None:
            prepare(*target)
        change = self.models.rollback(collection, to_version, actor=actor, reason=reason,
                                      verify=self.verify if check_artifacts else None, expect=target, pin=pin)
        self.observers.alias_changed(change)
        return change

    def pin(self, collection: str, *, reason: str, actor: str | None = None) -> AliasTarget:
        """Stop automated runs from moving production (people still can)."""
        return self.models.set_pin(collection, pinned=True, actor=actor, reason=reason)

    def unpin(self, collection: str, *, actor: str | None = None) -> AliasTarget:
        """Let automated runs promote again (versions rolled away from stay off-limits to them)."""
        return self.models.set_pin(collection, pinned=False, actor=actor)

    def rolled_away(self, collection: str) -> set[int]:
        """Versions an operator rolled away from: automated runs never promote them again."""
        return self.models.rolled_away(collection)

    def may_promote_automatically(self, collection: str, model_version: int) -> str | None:
        """Why a maintenance run may not promote ``model_version`` now (None: it may)."""
        target = self.target(collection)
        if target is not None and target.pinned:
            return f"production is pinned by {target.pinned_by} ({target.pinned_reason})"
        away = self.rolled_away(collection)
        if model_version in away:
            return f"an operator rolled production away from v{model_version}"
        # A retrain on the same data can reproduce a rolled-away model bit for bit under a new number.
        weights = self.models.get_model(collection, model_version).artifacts.get("weights")
        twin = next((v for v in sorted(away) if weights and self.models.get_model(collection, v).artifacts.get(
            "weights") == weights), None)
        if twin is not None:
            return f"v{model_version} is identical to v{twin}, which an operator rolled production away from"
        return None


def batches_added_by(registry: Registry, collection: str, version: int, since_version: int) -> list[int]:
    """The batches model ``version`` learnt from that ``since_version`` had not (what a rollback from
    ``version`` to ``since_version`` offers to exclude), oldest first; excluded ones left out."""
    models = registry.models
    upto = models.get_model(collection, version).trained_on_batch or 0
    after = models.get_model(collection, since_version).trained_on_batch or 0
    return [b.seq for b in registry.catalog.list_batches(collection) if after < b.seq <= upto and not b.excluded]
