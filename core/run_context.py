"""Which orchestrator run the current work belongs to (a Prefect flow run), so records can name it.

The flows layer sets it around a flow's body (:func:`flows.run_logs.collection_run`); the registry
writes it into every training run it starts, and the dashboard links to the run. A context
variable, so concurrent flows in one process (``steward serve``) each see their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_IDS: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("steward_run_ids", default=())


@contextmanager
def run_ids(**ids: str) -> Iterator[None]:
    """Within the block, :func:`current_run_ids` includes ``ids`` (e.g. ``prefect_flow_run_id=...``)."""
    token = _IDS.set(tuple({**dict(_IDS.get()), **{k: str(v) for k, v in ids.items()}}.items()))
    try:
        yield
    finally:
        _IDS.reset(token)


def current_run_ids() -> dict[str, str]:
    return dict(_IDS.get())
