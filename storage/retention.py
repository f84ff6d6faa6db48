"""Garbage collection of artifacts outside the retention window."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.errors import ConflictError
from storage.artifact_store import ArtifactStore
from storage.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GcResult:
    model_versions: tuple[int, ...]
    index_versions: tuple[int, ...]
    artifacts_deleted: tuple[str, ...]
    dry_run: bool


def collect_garbage(registry: Registry, artifacts: ArtifactStore, collection: str, *, keep: int,
                    dry_run: bool = False) -> GcResult:
    """Delete artifacts of versions outside the retention window (see ``ModelRegistry.retire``).

    Rows stay (the history is an audit trail) but are marked deleted; an artifact shared with a
    version that is kept (content addressing makes sharing common) is never deleted.
    """
    if keep < 1:
        raise ConflictError(f"--keep {keep} would delete production; keep at least 1")
    models, indexes = registry.models.retire(collection, keep, dry_run=dry_run)
    doomed = {sha for m in models for sha in m.artifacts.values() if isinstance(sha, str)}
    doomed |= {i.artifact for i in indexes}
    # Computed after marking, so only artifacts nothing live refers to are removed.
    live = registry.models.referenced_artifacts() | registry.monitoring.referenced_artifacts()
    deletable = sorted(doomed - live)
    if not dry_run:
        for sha in deletable:
            artifacts.delete(sha)
    log.info("gc %s: %d model versions, %d indexes, %d artifacts", collection, len(models), len(indexes), len(deletable))
    return GcResult(
        model_versions=tuple(m.version for m in models), index_versions=tuple(i.id for i in indexes),
        artifacts_deleted=tuple(deletable), dry_run=dry_run,
    )
