"""The workspace a flow or task runs against, opened once per process from the settings it was given.

Flows and tasks take the resolved settings as a plain dict parameter (``Settings.to_dict()``,
secrets left out), so a ``--config`` given to the CLI reaches every task, whether it runs in a
thread, a process pool or on a Dask worker. Secrets come from the worker's own environment or the
Prefect Secret blocks the settings name (:mod:`flows.secrets`). A flow started without settings (a
deployment run by a worker) reads them where the worker runs. Workspaces are opened with the
configured lifecycle observers (MLflow), so flow runs are mirrored like CLI runs.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

from core.settings import Settings, load_settings, with_secrets_from
from embedding.observers import open_observed_workspace
from flows.secrets import resolve_secrets
from storage.workspace import Workspace


@functools.cache
def _open(frozen_settings: str) -> Workspace:
    settings = with_secrets_from(Settings.from_dict(json.loads(frozen_settings)))
    return open_observed_workspace(resolve_secrets(settings))


@functools.cache
def _open_from_environment(marker: str) -> Workspace:
    return open_observed_workspace(resolve_secrets(load_settings()))


def workspace(settings: Mapping[str, Any] | None = None) -> Workspace:
    """The workspace for ``settings`` (a ``Settings.to_dict()``), or for this process's environment
    and config file when None."""
    if settings is not None:
        return _open(json.dumps(dict(settings), sort_keys=True, default=str))
    # Keyed on steward's variables, so a process that changes STEWARD_HOME gets a fresh workspace.
    marker = {k: v for k, v in os.environ.items() if k.startswith("STEWARD_")}
    return _open_from_environment(json.dumps(marker, sort_keys=True))


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings dict a flow hands its tasks: the one it was given, else the environment's."""
    return dict(settings) if settings is not None else workspace(None).settings.to_dict()


def reset() -> None:
    """Forget the opened workspaces (tests switch homes between flows)."""
    _open.cache_clear()
    _open_from_environment.cache_clear()
