"""What a Prefect user expects of a run: steward's own logs in the run's logs, tags per collection,
readable run names.

(Not named logging.py: Prefect puts this folder on sys.path when it loads a deployment by file
path, and that name would shadow the standard library.)

Steward's library logs through the standard ``logging`` loggers of its packages. While a flow runs,
:func:`collection_run` hands their INFO records to Prefect's API handler, so they appear in the UI
under the flow or task run that wrote them, without changing what the console shows: records
below the level the console showed before go to Prefect only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# The packages whose loggers a run forwards (the layers of docs/ARCHITECTURE.md).
LIBRARY_LOGGERS: tuple[str, ...] = ("core", "storage", "embedding", "monitoring", "maintenance", "flows", "steward")
TAG = "steward"

_lock = threading.Lock()
_depth = 0
_saved: dict[str, tuple[int, bool, list[logging.Handler]]] = {}


def collection_tags(collection: str) -> tuple[str, ...]:
    return (TAG, f"collection:{collection}")


class _InRun(logging.Filter):
    """Only records written inside a flow or task run can be attached to one."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class _Console(logging.Handler):
    """Passes on to the root logger's handlers what the console showed before the run raised the level."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.threshold:
            logging.getLogger().handle(record)


def _install() -> None:
    from prefect.logging.handlers import APILogHandler

    api = APILogHandler(level=logging.INFO)
    api.addFilter(_InRun())
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        threshold = logger.getEffectiveLevel()
        _saved[name] = (logger.level, logger.propagate, list(logger.handlers))
        logger.setLevel(min(threshold, logging.INFO))
        logger.propagate = False
        logger.handlers = [*logger.handlers, api, _Console(threshold)]


def _uninstall() -> None:
    for name, (level, propagate, handlers) in _saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers = handlers
    _saved.clear()


@contextmanager
def library_logs_to_prefect() -> Iterator[None]:
    """Forward steward's INFO logs to the Prefect run (nested and concurrent runs share one setup)."""
    global _depth
    with _lock:
        if _depth == 0:
            _install()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _uninstall()


def tag_flow_run(collection: str) -> None:
    """Add the collection's tags to the current flow run (a deployment triggered by an event cannot know
    the collection in advance)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    tags = sorted(set(ctx.flow_run.tags or ()) | set(collection_tags(collection)))
    if tags == sorted(ctx.flow_run.tags or ()):
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, tags=tags)
    except Exception as e:  # noqa: BLE001 - tags are a convenience; the run itself must go on
        log.warning("could not tag flow run %s with %s: %s", ctx.flow_run.id, tags, e)


@contextmanager
def collection_run(collection: str) -> Iterator[None]:
    """Inside a flow: tag the run and its task runs with the collection, forward steward's logs, and
    let records made meanwhile (training runs) name the flow run."""
    from prefect import tags
    from prefect.context import FlowRunContext

    from core.run_context import run_ids

    tag_flow_run(collection)
    ctx = FlowRunContext.get()
    ids = {"prefect_flow_run_id": str(ctx.flow_run.id)} if ctx is not None and ctx.flow_run is not None else {}
    with tags(*collection_tags(collection)), library_logs_to_prefect(), run_ids(**ids):
        yield


def run_name(make: Callable[[dict[str, Any]], str], kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``make(parameters)``, or ``kind/collection`` if that fails (the name
    must never fail the run)."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = dict(flow_run.parameters or {})
        try:
            return make(params)
        except Exception as e:  # noqa: BLE001 - a name is a label; the run must start regardless
            log.warning("run name for %s: %s", kind, e)
            return f"{kind}/{params.get('collection', '?')}"

    return name
