"""Production lifecycle over the registry and the artifact store: promote, roll back, collect garbage.

The registry alone only knows hashes; these functions also check that the artifacts behind a
pair are present and intact before production is pointed at it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from steward.errors import ConflictError
from storage.artifact_store import ArtifactStore
from storage.registry.entities import AliasChange, IndexVersion, ModelVersion
from storage.registry.store import RegistryStore

log = logging.getLogger(__name__)


def verify_pair(artifacts: ArtifactStore, model: ModelVersion, index: IndexVersion | None) -> None:
    """Raise ArtifactIntegrityError unless every artifact of the pair is present and intact."""
    for sha in model.artifacts.values():
        if isinstance(sha, str):
            artifacts.verify(sha)
    if index is not None:
        artifacts.verify(index.artifact)


def promote(
    registry: RegistryStore, artifacts: ArtifactStore, collection: str, model_version: int,
    index_version: int | None = None, *, reason: str, actor: str | None = None,
) -> AliasChange:
    model = registry.get_model(collection, model_version)
    index = registry.get_index(index_version) if index_version is not None else None
    verify_pair(artifacts, model, index)
    return registry.promote(collection, model_version, index_version, actor=actor, reason=reason)


def rollback(
    registry: RegistryStore, artifacts: ArtifactStore, collection: str, to_version: int | None = None, *,
    reason: str = "rollback", actor: str | None = None,
) -> AliasChange:
    """Restore the previous production pair (or ``to_version``'s), refusing broken artifacts."""
    return registry.rollback(
        collection, to_version, actor=actor, reason=reason,
        verify=lambda model, index: verify_pair(artifacts, model, index),
    )


@dataclass(frozen=True)
class GcResult:
    model_versions: tuple[int, ...]
    index_versions: tuple[int, ...]
    artifacts_deleted: tuple[str, ...]
    dry_run: bool


def collect_garbage(
    registry: RegistryStore, artifacts: ArtifactStore, collection: str, *, keep: int, dry_run: bool = False
) -> GcResult:
    """Delete artifacts of versions outside the retention window (see ``RegistryStore.retention_plan``).

    Rows stay (the history is an audit trail) but are marked deleted; an artifact shared with a
    version that is kept (content addressing makes sharing common) is never deleted.
    """
    if keep < 1:
        raise ConflictError(f"--keep {keep} would delete production; keep at least 1")
    models, indexes = registry.retention_plan(collection, keep)
    doomed = {sha for m in models for sha in m.artifacts.values() if isinstance(sha, str)}
    doomed |= {i.artifact for i in indexes}
    if not dry_run:
        registry.mark_deleted(collection, model_versions=[m.version for m in models], index_ids=[i.id for i in indexes])
    # Computed after marking, so only artifacts nothing live refers to are removed.
    deletable = sorted(doomed - registry.referenced_artifacts()) if not dry_run else sorted(doomed)
    if not dry_run:
        for sha in deletable:
            artifacts.delete(sha)
    log.info("gc %s: %d model versions, %d indexes, %d artifacts", collection, len(models), len(indexes), len(deletable))
    return GcResult(
        model_versions=tuple(m.version for m in models), index_versions=tuple(i.id for i in indexes),
        artifacts_deleted=tuple(deletable), dry_run=dry_run,
    )
