"""Observers of the model lifecycle: a small hook interface for integrations (MLflow, ...).

The retrain service reports every model version it registers, and :class:`storage.production.Production`
every production change, to the observers the workspace was opened with. Storage defines only the
interface and the dispatch; adapters live in the layer that understands what they translate (the
MLflow one in ``embedding``) and are injected by whoever opens the workspace, so nothing here
imports an integration.

The registry stays the source of truth: an observer that fails (its server is down) is logged
with its error and the operation it observed stands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from storage.registry.entities import AliasChange, ModelVersion

log = logging.getLogger(__name__)


class LifecycleObserver(Protocol):
    def model_registered(self, model: ModelVersion) -> None:
        """A retrain registered ``model`` (candidate or rejected; its metrics hold the ModelReport)."""

    def alias_changed(self, change: AliasChange) -> None:
        """Production moved (a promotion or a rollback)."""


class Observers:
    """Calls each observer in turn; one that raises is logged (with its traceback) and skipped."""

    def __init__(self, observers: Iterable[LifecycleObserver] = ()) -> None:
        self.observers: tuple[LifecycleObserver, ...] = tuple(observers)

    def __bool__(self) -> bool:
        return bool(self.observers)

    def _each(self, method: str, arg: object, what: str) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(arg)
            except Exception as e:  # an integration must not undo what the registry recorded
                log.warning("%s could not record %s (%s: %s); steward's registry has it", type(observer).__name__,
                            what, type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))

    def model_registered(self, model: ModelVersion) -> None:
        self._each("model_registered", model, f"{model.collection} v{model.version}")

    def alias_changed(self, change: AliasChange) -> None:
        self._each("alias_changed", change, f"the {change.alias} change of {change.collection} to v{change.to_model}")
