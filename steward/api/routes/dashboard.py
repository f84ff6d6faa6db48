"""``GET /`` (the dashboard) and ``GET /reports/drift/{id}`` (stored HTML drift reports)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from core.errors import NotFoundError
from steward.api import views
from steward.api.service import Service

router = APIRouter()
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


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
        "shadows": {n: shadow_view(svc, n) for n in shown},
        "collections": data, "all_names": names, "token_configured": bool(svc.settings.api_token),
        "poll_seconds": svc.state.poll_seconds, "last_poll_error": svc.state.last_poll_error,
    })
