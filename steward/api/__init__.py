"""The search service and dashboard (``steward api``): FastAPI over the registry, with hot swap.

``create_app`` lives in :mod:`steward.api.app` (imports FastAPI); the serving state in
:mod:`steward.api.serving`.
"""

from __future__ import annotations

from typing import Any


def create_app(settings: Any, **kwargs: Any) -> Any:
    """See :func:`steward.api.app.create_app` (imported lazily: FastAPI is not free to import)."""
    from steward.api.app import create_app as _create_app

    return _create_app(settings, **kwargs)


__all__ = ["create_app"]
