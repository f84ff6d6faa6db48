"""The pages people read: ``GET /`` (the dashboard), ``/compare`` (two model versions side by side),
``/map`` (a 2-D map of a version's gallery) and ``/reports/drift/{id}`` (stored HTML drift reports)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from core.errors import NotFoundError, StewardError
from monitoring.alerts import prefect_ui_url
from steward.api import views
from steward.api.gallery_map import MAX_POINTS, umap_available
from steward.api.service import ApiService, Service
from steward.api.templating import TEMPLATES

router = APIRouter()
log = logging.getLogger(__name__)

# The dashboard's sections, in order: templates/sections/<name>.html each. A feature that adds a
# section adds its partial and its entry here.
SECTIONS: dict[str, str] = {
    "overview": "Overview", "history": "Production history", "models": "Model versions",
    "per_class": "Per class", "groups": "Per group", "drift": "Drift", "alerts": "Alerts", "training": "Training runs",
    "indexes": "Indexes", "map": "Map", "shadow": "Shadow A/B",
}


def page_context(svc: ApiService) -> dict:
    """What every page's frame (templates/base.html) needs."""
    return {"all_names": svc.known_collections(), "prefect_ui": prefect_ui_url()}


@router.get("/reports/drift/{report_id}", response_class=HTMLResponse)
def drift_report(report_id: int, svc: Service, collection: str | None = Query(None)) -> Response:
    report = svc.workspace.registry.monitoring.get_drift_report(report_id)
    if collection is not None and report.collection != svc.pick_collection(collection):
        raise NotFoundError(f"drift check {report_id} does not exist in {collection!r}")
    if not report.report_artifact:
        raise NotFoundError(f"drift check {report_id} has no HTML report")
    return HTMLResponse(svc.workspace.artifacts.get_bytes(report.report_artifact))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request, svc: Service, collection: str | None = Query(None)) -> Response:
    names = svc.known_collections()
    if collection is not None and collection not in names:
        raise NotFoundError(f"collection {collection!r} does not exist; known: {', '.join(names) or 'none'}")
    shown = [collection] if collection else names
    data = [views.dashboard_view(svc.workspace, svc.state, n, alpha=svc.settings.drift.alpha) for n in shown]
    from steward.api.routes.shadow import shadow_view  # its module imports this one's TEMPLATES

    return TEMPLATES.TemplateResponse(request, "dashboard.html", {
        **page_context(svc), "shadows": {n: shadow_view(svc, n) for n in shown},
        "collections": data, "token_configured": bool(svc.settings.api_token),
        "poll_seconds": svc.state.poll_seconds, "last_poll_error": svc.state.last_poll_error,
        "sections": list(SECTIONS), "section_titles": SECTIONS, "max_points": MAX_POINTS,
    })


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
def compare(request: Request, svc: Service, a: int = Query(..., ge=1), b: int = Query(..., ge=1),
            collection: str | None = Query(None)) -> Response:
    """Version ``b`` against version ``a``: headline numbers, per class, gate reasons and training."""
    name = svc.pick_collection(collection)
    return TEMPLATES.TemplateResponse(request, "compare.html", {
        **page_context(svc), **views.compare_view(svc.workspace, name, a, b)})


@router.get("/map", response_class=HTMLResponse, include_in_schema=False)
def gallery_map(request: Request, svc: Service, version: int | None = Query(None, ge=1),
                projection: Literal["pca", "umap"] = Query("pca"), collection: str | None = Query(None)) -> Response:
    """A 2-D map of a sample of the version's gallery (production's by default)."""
    name = svc.pick_collection(collection)
    models = svc.workspace.registry.models
    if version is None:
        target = svc.workspace.production.target(name)
        if target is None:
            raise NotFoundError(f"{name!r} has no production model; name a version (?version=N)")
        version = target.model_version
    models.get_model(name, version)  # NotFoundError -> 404
    context = {**page_context(svc), "name": name, "version": version, "projection": projection,
               "umap": umap_available(), "versions": sorted(m.version for m in models.list_models(name)),
               "m": None, "error": None}
    status = 200
    try:
        context["m"] = svc.maps.get(svc.workspace, name, version, method=projection, reader=svc.gallery_reader)
    except NotFoundError as e:
        context["error"], status = str(e), 404
    except StewardError as e:  # an artifact that fails its checksum, say: the page says so
        context["error"], status = str(e), 409
    except Exception as e:  # a map that cannot be drawn must not take the page down with it
        log.exception("could not map v%s of %s", version, name)
        context["error"], status = f"the map could not be drawn: {type(e).__name__}: {e}", 500
    return TEMPLATES.TemplateResponse(request, "map.html", context, status_code=status)
