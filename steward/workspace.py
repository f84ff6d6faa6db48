"""The workspace: settings plus the three stores, opened together."""

from __future__ import annotations

from dataclasses import dataclass

from steward.settings import Settings
from storage.artifact_store import ArtifactStore
from storage.lifecycle import verify_pair
from storage.parquet_store import ParquetStore
from storage.registry.entities import IndexVersion, ModelVersion
from storage.registry.store import RegistryStore


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    registry: RegistryStore
    artifacts: ArtifactStore
    store: ParquetStore

    def verify_pair(self, model: ModelVersion, index: IndexVersion | None) -> None:
        """Raise ArtifactIntegrityError unless every artifact of the pair is present and intact."""
        verify_pair(self.artifacts, model, index)


def open_workspace(settings: Settings) -> Workspace:
    settings.home.mkdir(parents=True, exist_ok=True)
    registry = RegistryStore(settings.database_url)
    artifacts = ArtifactStore(settings.artifacts_uri, cache_dir=settings.home / "cache")
    return Workspace(settings=settings, registry=registry, artifacts=artifacts, store=ParquetStore(settings.data_uri, registry))
