"""Garbage collection of artifacts outside the retention window, and why each version is kept."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ConflictError
from storage.artifact_store import ArtifactStore
from storage.parquet_store import ParquetStore
from storage.production import Production
from storage.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """Why one model version is (or is not) kept."""

    model_version: int
    kept: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class GcResult:
    collection: str
    keep: int
    model_versions: tuple[int, ...]  # retired by this run (or, dry run, that would be)
    index_versions: tuple[int, ...]
    artifacts_deleted: tuple[str, ...]
    dry_run: bool
    versions: tuple[Retention, ...] = ()  # every model version, oldest first, with its reasons
    shared_artifacts_kept: int = 0  # artifacts of retired versions that a kept version still uses
    temporaries_removed: tuple[str, ...] = ()  # files writers killed mid-write left behind

    def describe(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        head = (f"{self.collection}: {verb} model versions {list(self.model_versions)}, index versions "
                f"{list(self.index_versions)}, {len(self.artifacts_deleted)} artifacts (keeping the last "
                f"{self.keep} production pairs)")
        if self.shared_artifacts_kept:
            head += f"; {self.shared_artifacts_kept} of their artifacts stay, shared with kept versions"
        if self.temporaries_removed:
            head += f"; removed {len(self.temporaries_removed)} temporary files left by killed writers"
        now = "would go" if self.dry_run else "deleted"

        def label(r: Retention) -> str:
            return "kept" if r.kept else now if r.model_version in self.model_versions else "gone"

        lines = [head] + [f"  v{r.model_version:<4} {label(r):<8} {'; '.join(r.reasons)}" for r in self.versions]
        return "\n".join(lines)


def explain_retention(versions: Sequence[int], *, production: int | None,
                      pairs_newest_first: Sequence[tuple[int, int | None]], keep: int,
                      retired: set[int]) -> tuple[Retention, ...]:
    """The reasons behind ``ModelRegistry.retire``'s plan, one per version (pure).

    Protected: the alias target, the model of each of the last ``keep`` distinct production pairs,
    and every version newer than the newest of those (a fresh candidate is not garbage). Anything
    else older was retired now or by an earlier run.
    """
    recent = list(dict.fromkeys(pairs_newest_first))[:keep]
    protected = {m for m, _ in recent} | ({production} if production is not None else set())
    newest = max(protected, default=0)
    out = []
    for v in sorted(versions):
        reasons = []
        if v == production:
            reasons.append("production points to it")
        ranks = [i for i, (m, _) in enumerate(recent, 1) if m == v]
        if ranks:
            reasons.append(f"model of production pair {', '.join(map(str, ranks))} of the last {len(recent)} "
                           f"(--keep {keep})")
        if v > newest:
            reasons.append(f"newer than v{newest}, the newest kept production version: a candidate, not garbage"
                           if newest else "no production yet: every version is a candidate")
        if reasons:
            out.append(Retention(v, True, tuple(reasons)))
        elif v in retired:
            why = f"older than v{newest} and in none of the last {keep} production pairs"
            out.append(Retention(v, False, (why,)))
        else:
            out.append(Retention(v, False, ("artifacts deleted by an earlier gc",)))
    return tuple(out)


def collect_garbage(registry: Registry, artifacts: ArtifactStore, collection: str, *, keep: int,
                    dry_run: bool = False, store: ParquetStore | None = None) -> GcResult:
    """Delete artifacts of versions outside the retention window (see ``ModelRegistry.retire``).

    Rows stay (the history is an audit trail) but are marked deleted; an artifact shared with a
    version that is kept (content addressing makes sharing common) is never deleted. Planning and
    marking share one locked transaction (a promotion either happened before and is protected, or
    comes after and is refused: the version is marked); deleting re-checks every reference under
    the artifacts lock (``ModelRegistry.delete_unreferenced``), so a version registered meanwhile
    with a shared artifact keeps it. ``store``: also remove the temporaries killed writers left
    (data and artifacts).
    """
    if keep < 1:
        raise ConflictError(f"--keep {keep} would delete production; keep at least 1")
    models, indexes = registry.models.retire(collection, keep, dry_run=dry_run)
    doomed = {sha for m in models for sha in m.artifacts.values() if isinstance(sha, str)}
    doomed |= {sha for i in indexes for sha in i.artifacts}
    # Computed after marking, so only artifacts nothing live refers to are removed. A dry run marked
    # nothing: the retired versions' own references are left out by hand (rows an earlier gc marked
    # still count there, so a dry run may under-report, never over-report).
    live = registry.models.referenced_artifacts() | registry.monitoring.referenced_artifacts()
    if dry_run:
        retired_models, retired_indexes = {m.version for m in models}, {i.id for i in indexes}
        live = registry.monitoring.referenced_artifacts() | {
            sha for m in registry.models.list_models(collection) if m.version not in retired_models
            for sha in m.artifacts.values() if isinstance(sha, str)} | {
            sha for i in registry.models.list_indexes(collection) if i.id not in retired_indexes
            for sha in i.artifacts}
        live |= _other_collections_artifacts(registry, collection)
    deletable = sorted(doomed - live)
    temporaries: list[str] = []
    if not dry_run:
        deletable = registry.models.delete_unreferenced(deletable, artifacts.delete)
        temporaries = artifacts.location.sweep_temporaries(artifacts.location.root, recursive=True)
        if store is not None:
            temporaries += store.sweep_temporaries(collection)
    production = Production(registry.models, artifacts)
    target = production.target(collection)
    pairs = [(c.to_model, c.to_index) for c in reversed(production.history(collection))]
    explained = explain_retention([m.version for m in registry.models.list_models(collection)],
                                  production=target.model_version if target else None, pairs_newest_first=pairs,
                                  keep=keep, retired={m.version for m in models})
    log.info("gc %s: %d model versions, %d indexes, %d artifacts", collection, len(models), len(indexes), len(deletable))
    return GcResult(
        collection=collection, keep=keep, model_versions=tuple(m.version for m in models),
        index_versions=tuple(i.id for i in indexes), artifacts_deleted=tuple(deletable), dry_run=dry_run,
        versions=explained, shared_artifacts_kept=len(doomed) - len(deletable),
        temporaries_removed=tuple(temporaries),
    )


def _other_collections_artifacts(registry: Registry, collection: str) -> set[str]:
    """Artifacts the other collections' versions use (content addressing shares them across collections)."""
    out: set[str] = set()
    for c in registry.catalog.list_collections():
        if c.name != collection:
            out |= {sha for m in registry.models.list_models(c.name) for sha in m.artifacts.values()
                    if isinstance(sha, str)}
            out |= {sha for i in registry.models.list_indexes(c.name) for sha in i.artifacts}
    return out
