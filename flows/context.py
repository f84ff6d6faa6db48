"""The workspace a flow or task runs against, opened once per process from the environment.

Tasks take plain, serialisable arguments (collection names, versions) rather than a workspace,
so they run the same on a thread, a process pool or a Dask worker.
"""

from __future__ import annotations

import functools
import os

from steward.settings import load_settings
from steward.workspace import Workspace, open_workspace


@functools.cache
def _open(home_marker: str) -> Workspace:
    return open_workspace(load_settings())


def workspace() -> Workspace:
    # Keyed on the environment so tests that switch STEWARD_HOME get a fresh workspace.
    marker = "|".join(os.environ.get(k, "") for k in ("STEWARD_HOME", "STEWARD_DATABASE_URL", "STEWARD_ARTIFACTS",
                                                         "STEWARD_DATA", "STEWARD_CONFIG"))
    return _open(marker)


def reset() -> None:
    _open.cache_clear()
