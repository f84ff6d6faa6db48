"""Pure decisions of the maintenance cycle (no I/O): whether to retrain, and what to resume."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from core.settings import RETRAIN_POLICIES


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str


def should_retrain(
    *, policy: str, drifted: bool | None, production_trained_on: int | None, latest_batch: int,
) -> RetrainDecision:
    """Retrain on drift (default), on any data production has not seen ("new-data", used by the
    nightly schedule), or unconditionally ("always", i.e. forced)."""
    if policy not in RETRAIN_POLICIES:
        raise ConfigError(f"retrain policy {policy!r} is not one of {', '.join(RETRAIN_POLICIES)}")
    unseen = production_trained_on is None or production_trained_on < latest_batch
    if policy == "always":
        return RetrainDecision(True, "retraining was forced")
    if drifted:
        return RetrainDecision(True, f"drift detected on batch {latest_batch}")
    if policy == "new-data" and unseen:
        return RetrainDecision(True, f"scheduled retrain: batches up to {latest_batch} are newer than production's "
                                     f"training data (batch {production_trained_on})")
    if not unseen:
        return RetrainDecision(False, f"production already trained on batch {latest_batch}")
    return RetrainDecision(False, f"no drift on batch {latest_batch}; production keeps serving")
