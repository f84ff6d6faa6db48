"""Pure decisions of the maintenance cycle (no I/O): whether to retrain, and whether a run may promote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import ConfigError
from core.settings import RETRAIN_POLICIES


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    full: bool = False  # retrain from scratch (forced, with no new data to update on)


def should_retrain(
    *, policy: str, drifted: bool | None, production_trained_on: int | None, latest_batch: int,
    latest_trainable: int | None = None, excluded: Mapping[int, str] | None = None,
) -> RetrainDecision:
    """Retrain on drift (default), on any data production has not seen ("new-data", used by the
    nightly schedule), or unconditionally ("always", i.e. forced).

    Only batches that are not excluded count as data to learn from: ``latest_trainable`` is the
    newest of them (default ``latest_batch``) and ``excluded`` says why the others are out, so a run
    after a faulty batch says it did nothing because of it. Drift on a batch production already
    learnt from is no reason to retrain again.
    """
    if policy not in RETRAIN_POLICIES:
        raise ConfigError(f"retrain policy {policy!r} is not one of {', '.join(RETRAIN_POLICIES)}")
    excluded = dict(excluded or {})
    trainable = latest_batch if latest_trainable is None and latest_batch not in excluded else latest_trainable
    note = f"batch {latest_batch} {excluded[latest_batch]}" if latest_batch in excluded else None
    if trainable is None:
        return RetrainDecision(False, f"no batch to learn from: {note or 'every batch is excluded'}")
    unseen = production_trained_on is None or production_trained_on < trainable
    if policy == "always":
        return RetrainDecision(True, "retraining was forced" + ("" if unseen else " (nothing new: a full retrain)"),
                               full=not unseen)
    if not unseen:
        if note:
            return RetrainDecision(False, note)
        return RetrainDecision(False, f"production already trained on batch {trainable}")
    if drifted:
        return RetrainDecision(True, f"drift detected on batch {latest_batch}")
    if policy == "new-data":
        return RetrainDecision(True, f"scheduled retrain: batches up to {trainable} are newer than production's "
                                     f"training data (batch {production_trained_on})")
    return RetrainDecision(False, f"no drift on batch {latest_batch}; production keeps serving")


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    status: str  # what the candidate becomes: "production", "approved" (waits for a person) or "candidate"
    reason: str


def promotion(*, mode: str, blocked_because: str | None, min_shadow_queries: int = 0,
              shadow_queries: int = 0, model_version: int | None = None) -> PromotionDecision:
    """What a run does with a candidate that passed the gate.

    ``blocked_because``: why automation may not move production now (a pin, or an operator rolled
    away from this version), from ``storage.production.Production.may_promote_automatically``.
    ``min_shadow_queries`` (``gate.min_shadow_queries``): automation also waits until the candidate has
    answered that many mirrored live queries as a shadow of production (``shadow_queries`` so far); it
    stays a candidate, so the search service can shadow it and a later run promotes it.
    """
    if blocked_because is not None:
        return PromotionDecision(False, "candidate", f"not promoted: {blocked_because}")
    if mode == "manual":
        return PromotionDecision(False, "approved", "approved; waiting for `steward promote` (promotion mode manual)")
    if shadow_queries < min_shadow_queries:
        which = f"--shadow-version {model_version}" if model_version is not None else "--shadow-version V"
        return PromotionDecision(
            False, "candidate",
            f"not promoted yet: gate.min_shadow_queries needs {min_shadow_queries} shadow queries against "
            f"production and it has {shadow_queries}; mirror live traffic to it (steward api --shadow-fraction F "
            f"{which}) and a later run promotes it, or promote it by hand")
    return PromotionDecision(True, "production", "promoted")
