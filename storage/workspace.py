"""The workspace: resolved settings plus the stores they open, handed to every library call."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from storage.artifact_store import ArtifactStore
from storage.parquet_store import ParquetStore
from storage.production import Production
from storage.registry import Registry, open_registry


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    registry: Registry
    artifacts: ArtifactStore
    store: ParquetStore
    production: Production

    def close(self) -> None:
        self.registry.dispose()


def open_workspace(settings: Settings) -> Workspace:
    settings.home.mkdir(parents=True, exist_ok=True)
    registry = open_registry(settings.database_url)
    artifacts = ArtifactStore(settings.artifacts_uri, cache_dir=settings.home / "cache")
    return Workspace(settings=settings, registry=registry, artifacts=artifacts,
                     store=ParquetStore(settings.data_uri, registry.catalog),
                     production=Production(registry.models, artifacts))
