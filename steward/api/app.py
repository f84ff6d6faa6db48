"""The search service and dashboard: one FastAPI app over the registry and the serving state.

``create_app(settings)`` is the factory ``steward api`` runs under uvicorn. Search requests grab
the pair in service once and use only it, so a swap behind them never mixes versions; see
:mod:`steward.api.serving` for how swaps happen.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from steward.api import views
from steward.api.schemas import (
    MAX_BATCH,
    MAX_K,
    AliasChangeOut,
    Hits,
    PromoteRequest,
    RollbackRequest,
    SearchRequest,
    SearchResponse,
)
from steward.api.serving import PRODUCTION, PairLoader, ServingPair, ServingState, load_serving_pair
from steward.errors import (
    ArtifactIntegrityError,
    ConfigError,
    ConflictError,
    GateRejectedError,
    NotFoundError,
    StewardError,
    ValidationError,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 16 * 1024 * 1024
API_ACTOR = "api"

_STATUS_FOR_ERROR: tuple[tuple[type[StewardError], int], ...] = (
    (NotFoundError, 404),
    (ArtifactIntegrityError, 409),
    (GateRejectedError, 409),
    (ConflictError, 409),
    (ValidationError, 422),
    (ConfigError, 500),
)


class _BadQuery(Exception):
    """A request the service understood but cannot answer as asked (-> 422)."""


class _BodyLimit:
    """Refuse bodies over ``limit`` bytes before they are read (oversized batches -> 413)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers") or ()).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit:
                response = JSONResponse(
                    {
                        "detail": f"request body of {int(length)} bytes exceeds {self.limit}; send fewer queries"
                    },
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _default_workspace(settings: Any) -> Any:
    from steward.workspace import open_workspace

    return open_workspace(settings)


def create_app(
    settings: Any,
    *,
    poll_seconds: float = 2.0,
    workspace: Any = None,
    loader: PairLoader | None = None,
    cache_size: int = 2,
    retry_seconds: float = 30.0,
) -> FastAPI:
    """The app. ``workspace`` and ``loader`` default to the real ones; tests pass doubles.

    The watcher starts with the app (lifespan) and polls the production alias every
    ``poll_seconds``; the first load happens before the app accepts requests.
    """
    if poll_seconds <= 0:
        raise ConfigError(f"poll_seconds={poll_seconds} must be positive")
    workspace = workspace if workspace is not None else _default_workspace(settings)
    state = ServingState(
        workspace, loader or load_serving_pair, cache_size=cache_size, retry_seconds=retry_seconds
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        state.poll_once()
        state.start(poll_seconds)
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(
        title="steward search service",
        description="Nearest-neighbour search over the production model+index pair, with hot swap "
        "on promotion and rollback, and a dashboard at /.",
        version="1",
        lifespan=lifespan,
    )
    app.state.serving = state
    app.state.workspace = workspace
    app.state.settings = settings
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    registry = workspace.registry

    # ---- errors: every user mistake is a 4xx with one clear message --------------------------
    @app.exception_handler(StewardError)
    async def _steward_error(_: Request, exc: StewardError) -> JSONResponse:
        status = next((code for cls, code in _STATUS_FOR_ERROR if isinstance(exc, cls)), 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(_BadQuery)
    async def _bad_query(_: Request, exc: _BadQuery) -> JSONResponse:
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

    # ---- helpers -------------------------------------------------------------------------
    def known_collections() -> list[str]:
        return sorted(c.name for c in registry.list_collections())

    def pick_collection(name: str | None) -> str:
        names = known_collections()
        if name is not None:
            if name not in names:
                raise NotFoundError(
                    f"collection {name!r} does not exist; known: {', '.join(names) or 'none'}"
                )
            return name
        served = sorted(state.snapshot())
        candidates = served if len(served) == 1 else names
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotFoundError("no collection exists yet; ingest data first (steward ingest)")
        raise _BadQuery(f"several collections exist ({', '.join(candidates)}); name one with 'collection'")

    def require_token(authorization: str | None = Header(None)) -> None:
        token = settings.api_token
        if not token:
            raise HTTPException(
                403,
                "promote and rollback are disabled on this service: no api_token is configured "
                "(set STEWARD_API_TOKEN or api_token in steward.toml and restart)",
            )
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                401, "send the API token as 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "the API token is wrong", {"WWW-Authenticate": "Bearer"})

    def change_out(change: Any, name: str) -> AliasChangeOut:
        pair = state.current(name)
        return AliasChangeOut(
            collection=change.collection,
            from_model=change.from_model,
            from_index=change.from_index,
            to_model=change.to_model,
            to_index=change.to_index,
            actor=change.actor,
            reason=change.reason,
            at=change.at.isoformat(),
            serving=None if pair is None else pair.describe(),
        )

    def preload(name: str, model_version: int, index_version: int | None) -> ServingPair:
        """Load and verify a pair before the alias points at it; production stays put on failure."""
        try:
            return state.load(name, model_version, index_version)
        except (NotFoundError, ConflictError):
            raise
        except Exception as e:
            log.exception("refusing to switch %s to model v%s: it does not load", name, model_version)
            raise ConflictError(
                f"model v{model_version} (index {index_version or 'newest'}) of {name!r} could not be "
                f"loaded, production is unchanged: {type(e).__name__}: {e}"
            ) from e

    # ---- endpoints -----------------------------------------------------------------------
    @app.get("/health")
    def health() -> JSONResponse:
        serving = state.snapshot()
        missing, registry_error = [], None
        try:
            for c in registry.list_collections():
                if c.name not in serving and registry.get_alias(c.name, PRODUCTION) is not None:
                    missing.append(c.name)
        except Exception as e:  # noqa: BLE001 - health must answer even when the registry does not
            log.warning("health check could not read the registry: %s", e)
            registry_error = f"{type(e).__name__}: {e}"
        body = {
            "status": "unavailable" if missing else "degraded" if registry_error else "ok",
            "registry_error": registry_error,
            "serving": {name: pair.describe() for name, pair in sorted(serving.items())},
            "not_serving": missing,
            "last_poll_at": None if state.last_poll_at is None else state.last_poll_at.isoformat(),
            "last_poll_error": state.last_poll_error,
            "poll_seconds": state.poll_seconds,
        }
        return JSONResponse(body, status_code=200 if not missing else 503)

    @app.post(
        "/search",
        response_model=SearchResponse,
        responses={404: {"description": "unknown collection or item id"}, 422: {"description": "bad query"}},
    )
    def search(req: SearchRequest) -> SearchResponse:
        serving = state.snapshot()  # read once: this request uses this pair and nothing else
        if req.collection in serving:
            name = req.collection
        elif req.collection is None and len(serving) == 1:
            (name,) = serving
        else:  # not served: let the registry say why (unknown, ambiguous, or nothing promoted yet)
            name = pick_collection(req.collection)
        pair = serving.get(name)
        if pair is None:
            raise HTTPException(
                503,
                f"collection {name!r} has no model in service yet (no production alias, or its "
                "first load failed; see /status)",
            )
        return _answer(pair, req)

    @app.get("/versions")
    def versions(collection: str | None = Query(None)) -> dict[str, Any]:
        names = [pick_collection(collection)] if collection else known_collections()
        return {"collections": {n: views.versions_view(workspace, state, n) for n in names}}

    @app.get("/status")
    def status(collection: str | None = Query(None)) -> dict[str, Any]:
        names = [pick_collection(collection)] if collection else known_collections()
        return {
            "collections": {n: views.status_view(workspace, state, n) for n in names},
            "watcher": {
                "poll_seconds": state.poll_seconds,
                "last_poll_at": None if state.last_poll_at is None else state.last_poll_at.isoformat(),
                "last_poll_error": state.last_poll_error,
                "recent_swaps": state.swaps[-10:],
            },
        }

    @app.post("/promote", response_model=AliasChangeOut, dependencies=[Depends(require_token)])
    def promote(req: PromoteRequest) -> AliasChangeOut:
        name = pick_collection(req.collection)
        registry.get_model(name, req.model_version)  # NotFoundError -> 404
        pair = preload(name, req.model_version, req.index_version)
        change = registry.promote(
            name, req.model_version, pair.index_version, actor=API_ACTOR, reason=req.reason
        )
        state.refresh(name, force=True)
        return change_out(change, name)

    @app.post("/rollback", response_model=AliasChangeOut, dependencies=[Depends(require_token)])
    def rollback(req: RollbackRequest) -> AliasChangeOut:
        name = pick_collection(req.collection)
        if req.to_version is not None:
            registry.get_model(name, req.to_version)  # NotFoundError -> 404

        # Load the target before the alias moves (outside the registry transaction: on SQLite every
        # registry call takes the write lock, so loading inside ``verify`` would wait on itself).
        target = registry.rollback_target(name, req.to_version)
        preload(name, *target)

        def verify(model: Any, index: Any) -> None:
            if (model.version, None if index is None else index.id) != target:
                raise ConflictError(
                    f"production of {name!r} changed while rolling back; check /versions and retry"
                )

        change = registry.rollback(name, req.to_version, actor=API_ACTOR, reason=req.reason, verify=verify)
        state.refresh(name, force=True)
        return change_out(change, name)

    @app.get("/reports/drift/{report_id}", response_class=HTMLResponse)
    def drift_report(report_id: int, collection: str | None = Query(None)) -> Response:
        names = [pick_collection(collection)] if collection else known_collections()
        for n in names:
            for r in registry.list_drift_reports(n, limit=10_000):
                if r.id == report_id:
                    if not r.report_artifact:
                        raise NotFoundError(f"drift check {report_id} has no HTML report")
                    return HTMLResponse(workspace.artifacts.get_bytes(r.report_artifact))
        raise NotFoundError(f"drift check {report_id} does not exist")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(request: Request, collection: str | None = Query(None)) -> Response:
        names = known_collections()
        if collection is not None and collection not in names:
            raise NotFoundError(
                f"collection {collection!r} does not exist; known: {', '.join(names) or 'none'}"
            )
        shown = [collection] if collection else names
        alpha = getattr(settings, "drift_alpha", 0.05)
        data = [views.dashboard_view(workspace, state, n, alpha=alpha) for n in shown]
        return templates.TemplateResponse(
            request,
            "dashboard.html",
            {
                "collections": data,
                "all_names": names,
                "token_configured": bool(settings.api_token),
                "poll_seconds": state.poll_seconds,
                "last_poll_error": state.last_poll_error,
            },
        )

    return app


def _answer(pair: ServingPair, req: SearchRequest) -> SearchResponse:
    """Run one search on one pair. Raises _BadQuery/NotFoundError for queries it cannot answer."""
    ntotal = int(getattr(pair.index, "ntotal", MAX_K))
    k = min(req.k, ntotal)
    if k < 1:
        return _response(pair, req.k, [[] for _ in _queries(req)], None)
    if req.item_ids is not None:
        try:
            result = pair.index.search_ids(req.item_ids, k)
        except KeyError as e:
            raise NotFoundError(f"item id {e} is not in index version {pair.index_version}") from e
    else:
        if req.texts is not None:
            if pair.input_kind != "text":
                raise _BadQuery(
                    f"model v{pair.model_version} of {pair.collection!r} takes feature vectors, not texts; "
                    "send 'vectors'"
                )
            import pyarrow as pa

            queries = pair.embedder.embed_table(pa.table({"text": pa.array(req.texts, pa.string())}))
        else:
            if pair.input_kind != "features":
                raise _BadQuery(
                    f"model v{pair.model_version} of {pair.collection!r} takes texts, not vectors; send 'texts'"
                )
            dims = {len(v) for v in req.vectors or ()}
            if len(dims) != 1:
                raise _BadQuery(
                    f"query vectors have different lengths {sorted(dims)}; all must have the same"
                )
            (dim,) = dims
            if pair.input_dim is not None and dim != pair.input_dim:
                raise _BadQuery(
                    f"query vectors have dimension {dim} but collection {pair.collection!r} has "
                    f"dimension {pair.input_dim}"
                )
            x = np.asarray(req.vectors, dtype=np.float32)
            if not np.isfinite(x).all():
                raise _BadQuery("query vectors contain NaN or infinite values")
            queries = pair.embedder.embed_features(x)
        result = pair.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    scores = np.asarray(result.scores)
    return _response(pair, req.k, result.item_ids, scores)


def _queries(req: SearchRequest) -> list[Any]:
    return req.vectors or req.texts or req.item_ids or []


def _response(pair: ServingPair, k: int, ids: list[list[str]], scores: np.ndarray | None) -> SearchResponse:
    hits = []
    for i, row in enumerate(ids):
        row = [str(x) for x in row]
        hits.append(
            Hits(item_ids=row, scores=[] if scores is None else [float(s) for s in scores[i][: len(row)]])
        )
    return SearchResponse(
        collection=pair.collection,
        model_version=pair.model_version,
        index_version=pair.index_version,
        k=k,
        results=hits,
    )


__all__ = ["MAX_BATCH", "MAX_K", "create_app"]
