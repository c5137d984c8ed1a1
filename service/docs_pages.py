"""The API's pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with every asset from this service.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google), so
without internet, as many ML deployments run, they are blank. Here the scripts, the stylesheet
and the favicon are the files the `fastapi-offline` package ships (Swagger UI 5 and ReDoc 2
builds, pinned in pyproject.toml), served at `/docs/assets/`; the page asks no other host for
anything (tests/test_docs_browser.py checks it in a browser).

Every URL in the pages starts with the request's root path, so that they also work behind a
proxy that serves the API under a prefix (`uvicorn --root-path /kexue`).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
# The package and its folder holding swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js
# and favicon.png.
ASSETS_PACKAGE = ("fastapi_offline", "static")
# What the pages may load, enforced by the browser: only this origin (plus the inline script
# FastAPI's pages start with, inline styles, images as data: URIs, and ReDoc's search worker,
# which it starts from a blob: URL). ReDoc's menu always shows Redocly's logo from
# cdn.redoc.ly; with this the browser never asks for it, and ReDoc drops the image.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'self'",
    ]
)
SWAGGER_UI_PARAMETERS = {
    # Swagger UI's default validator shows a badge image fetched from validator.swagger.io for a
    # document served from any host but localhost: a request to another host, and a leak of
    # the document's URL.
    "validatorUrl": None,
}


def install_docs_pages(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets; `app` must be built with docs_url=None and
    redoc_url=None (FastAPI's CDN-loading pages)."""
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), **SWAGGER_UI_PARAMETERS},
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # The system's fonts: Google's would be a request to another host.
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page
