"""``GET /docs`` (Swagger UI) and ``GET /redoc`` (ReDoc) that work offline.

FastAPI's default pages load their JavaScript and CSS from a CDN, so they are blank on a machine
without internet access. These pages load the same assets from the installed ``fastapi-offline``
package (Swagger UI and ReDoc bundles, MIT licensed) through ``/docs-assets/``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from core.errors import NotFoundError

router = APIRouter(include_in_schema=False)
ASSETS_URL = "/docs-assets"
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


@router.get(ASSETS_URL + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:  # a fixed list: nothing else of the file system is reachable
        raise NotFoundError(f"no documentation asset {name!r}")
    return FileResponse(assets_dir() / name, media_type=_MEDIA[Path(name).suffix],
                        headers={"Cache-Control": "public, max-age=86400"})


def _root(request: Request) -> str:
    return request.scope.get("root_path", "")


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                               swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                               swagger_ui_parameters=app.swagger_ui_parameters)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                          redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                          redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False)
