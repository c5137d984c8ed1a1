"""`/playground`: a page to try every endpoint of this service in a browser.

Plain HTML, JavaScript and CSS in this package's `static/` folder (no build step, nothing from a
CDN): the page lists the models (`/v1/models`) and has a panel per task, embeddings (a cosine
similarity matrix), QA (the answer and its evidence highlighted in the passages), generation
(streamed as Server-Sent Events) and density (a heat-map of log p over a 2-D grid with samples,
or a pasted row scored). It calls the API of the origin it came from, and nothing else: its
Content-Security-Policy lets the browser load or call only that origin
(tests/test_playground_browser.py checks it in Chromium).

Its URLs start with the request's root path, so that it also works behind a proxy that serves the
API under a prefix (`uvicorn --root-path /kexue`).
"""

from __future__ import annotations

from html import escape
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

PLAYGROUND_URL = "/playground"
ASSETS_URL = "/playground/static"
# Only this origin: no inline script, no other host (the API calls included: connect-src).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'self'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
_PAGE = files(__name__).joinpath("static", "playground.html")


def install_playground(app: FastAPI) -> None:
    """Serve the page at `/playground` and its script and stylesheet under `/playground/static/`;
    neither is in the OpenAPI schema."""
    app.mount(ASSETS_URL, StaticFiles(packages=[(__name__, "static")]), name="playground-assets")
    template = _PAGE.read_text(encoding="utf-8")

    @app.get(PLAYGROUND_URL, include_in_schema=False)
    async def playground(request: Request) -> HTMLResponse:
        root = escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
        page = HTMLResponse(template.replace("{{root}}", root))
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        # The page carries no data; the API key lives in the browser's sessionStorage only.
        page.headers["Cache-Control"] = "no-cache"
        return page
