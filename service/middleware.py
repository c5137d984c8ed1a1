"""Pure ASGI middleware (no BaseHTTPMiddleware: it breaks disconnect detection and streaming)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.metrics import Metrics


class HeadAsGet:
    """HEAD answered as GET without the body (RFC 9110 9.3.2), which FastAPI's routes do not do
    themselves: uptime checkers and `curl -I` probe /healthz with HEAD. The headers, Content-
    Length included, are the GET's; a path with no GET route still answers 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send_headers_only)
        finally:
            # The route the router found, for the request metrics outside (by route template):
            # it set it in the copy, and HEAD /healthz was counted as an unmatched path.
            if "route" in as_get:
                scope["route"] = as_get["route"]


# What a page of an allowed origin may send, and read beyond the CORS-safelisted response headers.
CORS_METHODS = ("GET", "HEAD", "POST")
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type")
CORS_EXPOSED_HEADERS = (
    "Retry-After",
    "WWW-Authenticate",
    "X-Model-Version",
    "X-Queue-Time-Ms",
    "X-Compute-Time-Ms",
)


class Cors(CORSMiddleware):
    """Starlette's CORSMiddleware for CORS_ALLOW_ORIGINS, with the API's methods and headers. It
    sits outside the API-key, body and coding checks, so that a preflight (which never carries a
    key) is answered, and their 401, 413 and 415 carry `Access-Control-Allow-Origin` for an
    allowed origin: the page can read why. A preflight it refuses (an origin, method or header
    not allowed) gets the service's JSON 400 instead of Starlette's text/plain one, with no
    `Access-Control-Allow-Origin`, so the browser blocks the request."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        # Starlette's body names what failed: "Disallowed CORS origin, method, headers".
        failed = bytes(response.body).decode().removeprefix("Disallowed CORS ").split(", ")
        reasons = {
            "origin": f"the origin {request_headers['origin']!r} is not in CORS_ALLOW_ORIGINS",
            "method": f"the method {request_headers['access-control-request-method']!r} is not "
            f"one of {', '.join(CORS_METHODS)}",
            "headers": f"the headers {request_headers.get('access-control-request-headers')!r} "
            f"are not all among {', '.join(CORS_REQUEST_HEADERS)} and the safelisted ones",
            "private-network": "private network access is not allowed",
        }
        detail = "CORS preflight refused: " + "; ".join(reasons.get(f, f) for f in failed)
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        return JSONResponse(error_body("bad_request", detail, 400), 400, headers=headers)


class IdentityBody:
    """415 for a body sent compressed (any Content-Encoding but identity, or a Transfer-Encoding
    coding before `chunked`), before it is read.

    The service reads bodies as they come: a gzip or deflate body was read as JSON and answered
    400 "There was an error parsing the body" (or 422 at character 0), and one under a coding the
    service has never heard of was read as if it had none. RFC 9110 15.5.16: 415, with
    `Accept-Encoding: identity` naming the only coding taken. The HTTP parser refuses any
    Transfer-Encoding that does not end in `chunked` and takes that one off; a coding before it
    (`gzip, chunked`) was left on the body unread. A request with no body is left alone whatever
    it says.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sent: dict[str, list[str]] = {"Content-Encoding": [], "Transfer-Encoding": []}
            has_body = False
            for key, value in scope.get("headers", []):
                if key in (b"content-encoding", b"transfer-encoding"):
                    codings = [c.strip().lower() for c in value.decode("latin-1").split(",")]
                    taken = ("", "identity") if key == b"content-encoding" else ("", "chunked")
                    header = (
                        "Content-Encoding" if key == b"content-encoding" else "Transfer-Encoding"
                    )
                    sent[header] += [c for c in codings if c not in taken]
                if key == b"transfer-encoding" or (
                    key == b"content-length" and value.strip() not in (b"", b"0")
                ):
                    has_body = True
            named = [f"{header}: {', '.join(c)}" for header, c in sent.items() if c]
            if has_body and named:
                detail = (
                    f"the body is sent with {'; '.join(named)}; this service reads only "
                    "uncompressed bodies: send it without that coding"
                )
                body = json.dumps(error_body("unsupported_media_type", detail, 415)).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    (b"accept-encoding", b"identity"),
                ]
                await send({"type": "http.response.start", "status": 415, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over MAX_BODY_BYTES, by Content-Length at once or by counting a stream.

    A streamed (chunked) body is counted as the app reads it; the 413 is sent from inside that
    read, and whatever the app answers after it is dropped. Raising alone would not do: FastAPI
    turns any exception while it reads a body into 400 "There was an error parsing the body".
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = False
                if too_large:
                    await _send_413(send, limit)
                    return
        received = 0
        started = False
        refused = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; this is the app's answer to the failed read
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def receive_counting() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not refused:
                        refused = True
                        await _send_413(send, limit)
                    raise _TooLarge
            return message

        try:
            await self.app(scope, receive_counting, send_tracking)
        except _TooLarge:
            pass  # answered in receive_counting (or too late to answer: the response had begun)


class _TooLarge(Exception):
    pass


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body("payload_too_large", f"request body over {limit} bytes (MAX_BODY_BYTES)", 413)
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# The scope's state key under which the HTTP edge leaves the status it answered for the app (a
# 408 for a body that stopped arriving), and the status counted when the client went away first.
EDGE_STATUS = "edge_status"
CLIENT_CLOSED_REQUEST = 499


def _route_of(scope: Scope) -> str | None:
    """The route template of a request the router never saw (refused before it: a 415, a 413 by
    Content-Length, a 401), from the API's paths in the app's OpenAPI document; None for a path
    none has."""
    app = scope.get("app")
    if app is None or not hasattr(app, "openapi"):
        return None
    templates: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, _TEMPLATES, None)
    if templates is None:
        templates = [
            (re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in app.openapi()["paths"]
        ]
        setattr(app.state, _TEMPLATES, templates)
    path = scope.get("path", "")
    return next((template for pattern, template in templates if pattern.match(path)), None)


# Where `_route_of` keeps the app's route templates, once made.
_TEMPLATES = "route_templates"


class RequestMetrics:
    """Counts and times every request by route template, model (set by the route) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500
        answered = disconnected = False
        scope.setdefault("state", {})

        async def receive_watching() -> Message:
            nonlocal disconnected
            message = await receive()
            disconnected = disconnected or message["type"] == "http.disconnect"
            return message

        async def send_recording(message: Message) -> None:
            nonlocal status, answered
            # After a disconnect the app's answer (FastAPI's 400 for a body it could not read)
            # reaches nobody: the status counted is the edge's, below.
            if message["type"] == "http.response.start" and not disconnected:
                status, answered = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive_watching, send_recording)
        finally:
            if disconnected and not answered:
                # The 408 the HTTP edge sent for a stalled body (service/http_protocol.py), or
                # nginx's 499: the client went away before an answer.
                status = scope["state"].get(EDGE_STATUS, CLIENT_CLOSED_REQUEST)
            route = scope.get("route")
            path = getattr(route, "path", None) or _route_of(scope) or "unmatched"
            model = scope["state"].get("model", "")
            self.metrics.requests.labels(path, model, str(status)).inc()
            self.metrics.request_latency.labels(path, model).observe(time.monotonic() - started)
