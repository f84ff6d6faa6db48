"""The lifecycle observers a workspace is opened with, built from the settings.

Whoever opens a workspace for real work (the CLI, the flows, the Python API) opens it here, so an
integration configured in the settings sees every registered version and production change.
"""

from __future__ import annotations

from core.settings import Settings
from storage.hooks import LifecycleObserver
from storage.workspace import Workspace, open_workspace


def configured_observers(settings: Settings) -> tuple[LifecycleObserver, ...]:
    """MLflow when ``mlflow.tracking_uri`` is set; nothing (and no mlflow import) otherwise."""
    if not settings.mlflow.tracking_uri:
        return ()
    from embedding.mlflow_tracking import MlflowTracking

    return (MlflowTracking(settings.mlflow.tracking_uri,
                           registered_model_prefix=settings.mlflow.registered_model_prefix),)


def open_observed_workspace(settings: Settings) -> Workspace:
    return open_workspace(settings, observers=configured_observers(settings))
