"""``GET /health`` (liveness), ``/ready`` (readiness), ``/versions`` and ``/status``: what is served, what production is, what happened."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from steward.api import views
from steward.api.service import Service
from storage.serialization import iso_utc

router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/health")
def health(svc: Service) -> JSONResponse:
    state = svc.state
    serving = state.snapshot()
    missing, registry_error = [], None
    try:
        for c in svc.workspace.registry.catalog.list_collections():
            if c.name not in serving and svc.workspace.production.target(c.name) is not None:
                missing.append(c.name)
    except Exception as e:  # noqa: BLE001 - health must answer even when the registry does not
        log.warning("health check could not read the registry: %s", e)
        registry_error = f"{type(e).__name__}: {e}"
    body = {
        "status": "unavailable" if missing else "degraded" if registry_error else "ok",
        "registry_error": registry_error,
        "serving": {name: pair.describe() for name, pair in sorted(serving.items())},
        "not_serving": missing,
        "last_poll_at": iso_utc(state.last_poll_at),
        "last_poll_error": state.last_poll_error,
        "poll_seconds": state.poll_seconds,
    }
    return JSONResponse(body, status_code=200 if not missing else 503)


@router.get("/ready")
def ready(svc: Service) -> JSONResponse:
    """Readiness: 200 only while every collection with production serves exactly its production pair.

    ``/health`` is liveness (the process answers; 503 only when a collection serves nothing). A
    service still answering with an earlier pair, because production moved to a pair that does
    not load (altered or missing artifacts), is alive but not ready: take it out of rotation.
    """
    serving = svc.state.snapshot()
    problems: dict[str, str] = {}
    try:
        for c in svc.workspace.registry.catalog.list_collections():
            target = svc.workspace.production.target(c.name)
            if target is None:
                continue
            pair = serving.get(c.name)
            wanted = (target.model_version, target.index_version)
            if pair is None:
                problems[c.name] = f"production is model {wanted[0]}, index {wanted[1]}; nothing is served"
            elif pair.model_version != wanted[0] or (wanted[1] is not None and pair.index_version != wanted[1]):
                problems[c.name] = (f"production is model {wanted[0]}, index {wanted[1]}; serving model "
                                    f"{pair.model_version}, index {pair.index_version}")
    except Exception as e:  # noqa: BLE001 - readiness must answer even when the registry does not
        problems["registry"] = f"{type(e).__name__}: {e}"
    body = {"ready": not problems, "not_ready": problems, "last_poll_error": svc.state.last_poll_error}
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/versions")
def versions(svc: Service, collection: str | None = Query(None)) -> dict[str, Any]:
    names = [svc.pick_collection(collection)] if collection else svc.known_collections()
    return {"collections": {n: views.versions_view(svc.workspace, svc.state, n) for n in names}}


def wants_html(request: Request, format: str | None) -> bool:
    """HTML for a browser (its Accept header puts text/html before JSON), JSON for everything else;
    ``?format=json`` or ``?format=html`` decides outright."""
    if format is not None:
        return format == "html"
    accept = request.headers.get("accept", "").lower()
    if "text/html" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/html") < accept.index("application/json")


@router.get("/status", response_model=None, responses={200: {
    "description": "JSON (the `steward status --json` shape per collection, plus what this service serves); "
                   "a readable HTML page when the client asks for text/html or ?format=html",
    "content": {"application/json": {}, "text/html": {}}}})
def status(request: Request, svc: Service, collection: str | None = Query(None),
           format: Literal["json", "html"] | None = Query(None)) -> Response:
    names = [svc.pick_collection(collection)] if collection else svc.known_collections()
    state = svc.state
    body = {
        "collections": {n: views.status_view(svc.workspace, state, n) for n in names},
        "watcher": {
            "poll_seconds": state.poll_seconds,
            "last_poll_at": iso_utc(state.last_poll_at),
            "last_poll_error": state.last_poll_error,
            "recent_swaps": state.swaps[-10:],
        },
    }
    if not wants_html(request, format):
        return JSONResponse(jsonable_encoder(body))
    from monitoring.status import CollectionStatus
    from steward.api.routes.dashboard import page_context
    from steward.api.templating import TEMPLATES

    extra_keys = ("serving", "serving_matches_production", "last_load_failure")
    statuses = [(CollectionStatus.from_dict({k: v for k, v in d.items() if k not in extra_keys}),
                 {k: d.get(k) for k in extra_keys}) for d in body["collections"].values()]
    return TEMPLATES.TemplateResponse(request, "status.html", {
        **page_context(svc), "statuses": statuses, "watcher": body["watcher"]})


@router.get("/models")
def models(svc: Service, collection: str | None = Query(None)) -> list[dict[str, Any]]:
    """Every model version of the collection, oldest first (as `steward models list --json`)."""
    from steward import shapes

    name = svc.pick_collection(collection)
    return [shapes.model_version(m) for m in svc.workspace.registry.models.list_models(name)]


@router.get("/models/{version}")
def model(version: int, svc: Service, collection: str | None = Query(None)) -> dict[str, Any]:
    """One model version with its report and indexes (as `steward models show --json`)."""
    from steward import shapes

    name = svc.pick_collection(collection)
    registry = svc.workspace.registry.models
    return shapes.model_version(registry.get_model(name, version), registry.list_indexes(name, version))


@router.get("/alerts")
def alerts(svc: Service, collection: str | None = Query(None), open_only: bool = Query(False),
           limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
    """The alert history, newest first: open, or answered by a production change (as `steward alerts list --json`)."""
    from monitoring.alerts import alert_history
    from steward import shapes

    name = svc.pick_collection(collection)
    return [shapes.alert(r) for r in alert_history(svc.workspace, name, open_only=open_only, limit=limit)]


@router.get("/labels/suspect")
def suspect_labels(svc: Service, collection: str | None = Query(None),
                   batch: int | None = Query(None, description="only the items this batch brought")) -> dict[str, Any]:
    """Items whose label disagrees with most of their nearest neighbours under production (as
    ``steward labels suspect --json``; k and the agreement from the ``labels`` settings)."""
    from embedding.label_noise import check_collection

    name = svc.pick_collection(collection)
    s = svc.settings.labels
    return check_collection(svc.workspace, name, batch=batch, k=s.k, min_agreement=s.min_agreement,
                            device=svc.settings.device or "cpu").to_dict()


@router.get("/runs")
def training_runs(svc: Service, collection: str | None = Query(None)) -> list[dict[str, Any]]:
    """A collection's training runs with their experiment records (as ``steward runs list --json``)."""
    from steward import shapes

    name = svc.pick_collection(collection)
    return [shapes.training_run(r) for r in svc.workspace.registry.runs.list_training_runs(name)]
