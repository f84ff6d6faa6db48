"""``GET /shadow`` (the shadow A/B report, JSON) and ``GET /partials/shadow`` (the dashboard's piece of it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from monitoring.shadow import shadow_report
from steward.api.routes.dashboard import TEMPLATES
from steward.api.service import ApiService, Service

router = APIRouter()


def shadow_view(svc: ApiService, collection: str, version: int | None = None) -> dict[str, Any]:
    """The ``shadow_report`` shape, plus ``live``: this service's mirror counters (null when it mirrors nothing)."""
    if svc.shadow is not None:
        svc.shadow.flush()  # what the worker has answered so far is part of the report
    report = shadow_report(svc.workspace.registry, collection, shadow_model=version)
    return {**report.to_dict(), "live": None if svc.shadow is None else svc.shadow.stats()}


@router.get("/shadow")
def shadow(svc: Service, collection: str | None = Query(None),
           version: int | None = Query(None, ge=1, description="shadow model version (default: the newest recorded)"),
           ) -> dict[str, Any]:
    return shadow_view(svc, svc.pick_collection(collection), version)


@router.get("/partials/shadow", response_class=HTMLResponse, include_in_schema=False)
def shadow_partial(request: Request, svc: Service, collection: str | None = Query(None)) -> Response:
    name = svc.pick_collection(collection)
    return TEMPLATES.TemplateResponse(request, "partials/shadow.html", {"shadow": shadow_view(svc, name)})
