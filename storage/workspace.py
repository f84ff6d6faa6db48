"""The workspace: resolved settings plus the stores they open, handed to every library call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.settings import Settings
from storage.artifact_store import ArtifactStore
from storage.hooks import LifecycleObserver, Observers
from storage.parquet_store import ParquetStore
from storage.production import Production
from storage.query_samples import QuerySampleStore
from storage.registry import Registry, open_registry
from storage.vector_cache import VectorCache


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    registry: Registry
    artifacts: ArtifactStore
    store: ParquetStore
    production: Production
    # Integrations told of registered versions and production changes (storage.hooks).
    observers: Observers = field(default_factory=Observers)
    # Encoder outputs by content hash (a local speed-up: texts are encoded once per encoder).
    vectors: VectorCache | None = None
    # Recent query vectors the search service samples, for index tuning (storage/query_samples.py).
    queries: QuerySampleStore | None = None

    def close(self) -> None:
        self.registry.dispose()


def open_workspace(settings: Settings, observers: Iterable[LifecycleObserver] = ()) -> Workspace:
    """The stores for ``settings``; ``observers`` (see :mod:`storage.hooks`) are injected by the layer
    that knows them (``embedding.observers.open_observed_workspace`` builds them from the settings)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    registry = open_registry(settings.database_url)
    artifacts = ArtifactStore(settings.artifacts_uri, cache_dir=settings.home / "cache")
    hooks = Observers(observers)
    return Workspace(settings=settings, registry=registry, artifacts=artifacts,
                     store=ParquetStore(settings.data_uri, registry.catalog),
                     production=Production(registry.models, artifacts, hooks), observers=hooks,
                     vectors=VectorCache(settings.vector_cache_dir), queries=QuerySampleStore(artifacts.location))
