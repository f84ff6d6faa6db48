"""The search service and dashboard: one FastAPI app over the registry and the serving state.

``create_app(settings)`` is the factory ``steward api`` runs under uvicorn. Search requests grab
the pair in service once and use only it, so a swap behind them never mixes versions; see
:mod:`steward.api.serving` for how swaps happen. The endpoints live in :mod:`steward.api.routes`.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from core.errors import (
    ArtifactIntegrityError,
    ConfigError,
    ConflictError,
    GateRejectedError,
    NotFoundError,
    StewardError,
    ValidationError,
)
from steward.api.routes import admin, dashboard, docs, search, shadow, status
from steward.api.schemas import MAX_BATCH, MAX_K
from steward.api.security import SecurityMiddleware
from steward.api.service import ApiService, BadQuery
from steward.api.serving import PairLoader, ServingState, load_serving_pair
from steward.api.shadow import ShadowMirror

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 16 * 1024 * 1024

_STATUS_FOR_ERROR: tuple[tuple[type[StewardError], int], ...] = (
    (NotFoundError, 404),
    (ArtifactIntegrityError, 409),
    (GateRejectedError, 409),
    (ConflictError, 409),
    (ValidationError, 422),
    (ConfigError, 500),
)


def _install_error_handlers(app: FastAPI) -> None:
    """Every user mistake is a 4xx with one clear message."""

    @app.exception_handler(StewardError)
    async def _steward_error(_: Request, exc: StewardError) -> JSONResponse:
        code = next((c for cls, c in _STATUS_FOR_ERROR if isinstance(exc, cls)), 400)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(BadQuery)
    async def _bad_query(_: Request, exc: BadQuery) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        parts = []
        for err in errors[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
        safe = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors[:20]]
        return JSONResponse({"detail": "; ".join(parts), "errors": safe}, status_code=422)


def _query_recorder(settings: Any, workspace: Any) -> Any:
    """The sampler of recent query vectors for index tuning, unless it is off or there is no store."""
    store = getattr(workspace, "queries", None)
    if store is None or settings.index.query_sample_size <= 0:
        return None
    from embedding.index.query_sample import QueryRecorder

    return QueryRecorder(store, settings.index)


def create_app(
    settings: Any,
    *,
    poll_seconds: float = 2.0,
    workspace: Any = None,
    loader: PairLoader | None = None,
    cache_size: int = 2,
    retry_seconds: float = 30.0,
    gallery_reader: Any = None,
) -> FastAPI:
    """The app. ``workspace`` and ``loader`` default to the real ones; tests pass doubles.

    The watcher starts with the app (lifespan) and polls the production alias every
    ``poll_seconds``; the first load happens before the app accepts requests.
    """
    if poll_seconds <= 0:
        raise ConfigError(f"poll_seconds={poll_seconds} must be positive")
    if workspace is None:
        from storage.workspace import open_workspace

        workspace = open_workspace(settings)
    state = ServingState(workspace, loader or load_serving_pair, cache_size=cache_size, retry_seconds=retry_seconds)
    mirror = ShadowMirror(settings.shadow, workspace, state.loader) if settings.shadow.fraction > 0 else None
    recorder = _query_recorder(settings, workspace)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        state.poll_once()
        state.start(poll_seconds)
        if mirror is not None:
            mirror.start()
        if recorder is not None:
            recorder.start()
        try:
            yield
        finally:
            state.stop()
            if mirror is not None:
                mirror.stop()  # answers what is queued and writes every buffered record
            if recorder is not None:
                recorder.stop()  # writes the query samples that changed since their last write

    app = FastAPI(
        title="steward search service",
        description="Nearest-neighbour search over the production model+index pair, with hot swap "
        "on promotion and rollback, and a dashboard at /.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from routes/docs.py, with their assets served locally
        redoc_url=None,
    )
    extra = {} if gallery_reader is None else {"gallery_reader": gallery_reader}
    app.state.service = ApiService(settings=settings, workspace=workspace, state=state, shadow=mirror,
                                   queries=recorder, **extra)
    app.state.serving = state
    app.state.shadow = mirror
    app.state.workspace = workspace
    app.state.settings = settings
    app.add_middleware(SecurityMiddleware, max_body=MAX_BODY_BYTES)  # body limit, headers, sandboxed reports
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_error_handlers(app)
    for module in (search, admin, status, dashboard, shadow, docs):
        app.include_router(module.router)
    return app


__all__ = ["MAX_BATCH", "MAX_K", "create_app"]
