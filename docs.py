"""Self-hosted API docs: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

By default FastAPI loads the Swagger UI and ReDoc assets from a CDN, so the docs
pages stay blank without internet access. This module serves those assets from
the local ``static/`` directory instead, so the docs work in offline workshops.
See ``static/README.md`` for where the asset files come from.
"""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"
FAVICON_FILE = STATIC_DIR / "favicon.png"


def _root_path(request: Request) -> str:
    """Return the ASGI root path (set behind a proxy) without a trailing slash."""
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


async def swagger_ui_html(request: Request) -> HTMLResponse:
    """Serve the Swagger UI page using the local assets."""
    app: FastAPI = request.app
    root, redirect_url = _root_path(request), app.swagger_ui_oauth2_redirect_url
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        oauth2_redirect_url=root + redirect_url if redirect_url else None,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


async def swagger_ui_redirect() -> HTMLResponse:
    """Serve the page Swagger UI's OAuth2 *Authorize* flow redirects to."""
    return get_swagger_ui_oauth2_redirect_html()


async def redoc_html(request: Request) -> HTMLResponse:
    """Serve the ReDoc page using the local bundle and no Google Fonts."""
    app: FastAPI = request.app
    root = _root_path(request)
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
    )


async def favicon() -> FileResponse:
    """Serve the favicon browsers request on their own."""
    return FileResponse(FAVICON_FILE, media_type="image/png")


def mount_docs(app: FastAPI) -> None:
    """Register ``/docs``, ``/redoc``, ``/favicon.ico`` and ``/static`` on ``app``.

    Use it with an app created as ``FastAPI(docs_url=None, redoc_url=None)`` so
    FastAPI's own CDN-based docs routes are not registered.
    """
    if app.openapi_url is None:
        raise ValueError("mount_docs needs the OpenAPI schema (app.openapi_url)")
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    app.get("/docs", include_in_schema=False)(swagger_ui_html)
    if app.swagger_ui_oauth2_redirect_url:
        app.get(app.swagger_ui_oauth2_redirect_url, include_in_schema=False)(swagger_ui_redirect)
    app.get("/redoc", include_in_schema=False)(redoc_html)
    app.get("/favicon.ico", include_in_schema=False)(favicon)
