"""The registry database, split by concern the way MLflow splits its stores.

- :class:`~storage.registry.catalog.CatalogStore`: collections and batches;
- :class:`~storage.registry.models.ModelRegistry`: model and index versions, aliases, history, retention;
- :class:`~storage.registry.monitoring.MonitoringStore`: drift reports and alerts;
- :class:`~storage.registry.runs.RunStore`: training runs and locks;
- :class:`~storage.registry.shadow.ShadowStore`: shadow A/B records of the search service.

They share one :class:`~storage.registry.database.Database` (one session factory, one Alembic
migration history); :func:`open_registry` builds all of them on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.registry.catalog import CatalogStore
from storage.registry.database import Database
from storage.registry.models import ModelRegistry
from storage.registry.monitoring import MonitoringStore
from storage.registry.runs import RunStore
from storage.registry.shadow import ShadowStore


@dataclass(frozen=True)
class Registry:
    db: Database
    catalog: CatalogStore
    models: ModelRegistry
    monitoring: MonitoringStore
    runs: RunStore
    shadow: ShadowStore

    def upgrade(self) -> str:
        return self.db.upgrade()

    def dispose(self) -> None:
        self.db.dispose()


def open_registry(url: str, *, upgrade: bool = True) -> Registry:
    db = Database(url, upgrade=upgrade)
    return Registry(db, CatalogStore(db), ModelRegistry(db), MonitoringStore(db), RunStore(db), ShadowStore(db))


__all__ = ["CatalogStore", "Database", "ModelRegistry", "MonitoringStore", "Registry", "RunStore", "ShadowStore", "open_registry"]
