"""The service's error types and the one place that maps them to HTTP.

Every error the service raises itself answers `{"detail": str, "code": str, "error": {...}}`
(schemas.common.ErrorBody): `detail` and `code` are the service's own fields; `error` says the
same in the OpenAI API's shape (`message`, `type`, `code`, `param`), which the OpenAI SDKs read
for their exceptions' text and attributes. Request validation keeps FastAPI's standard 422 body
(`detail`: the list of errors), with such an `error` beside it. Anything unexpected is caught at
the edge and answered as a 500 with the same body, logged with its traceback, and never kills
the process.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.json_body import DuplicateKeyError, NotUTF8Error

log = logging.getLogger(__name__)


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"
    # The request field at fault, where one is (OpenAI's `error.param`).
    param: str | None = None

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, param: str | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        if param is not None:
            self.param = param


class BadInput(ServiceError):
    """Well-formed JSON that makes no sense for this model (wrong dimension, unknown label)."""

    status_code = 400
    code = "bad_input"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class ModelNotFound(ServiceError):
    status_code = 404
    code = "model_not_found"
    param = "model"


class VersionNotFound(ModelNotFound):
    """A request's `version` (a number or a label) names no loaded version of its model: TF
    Serving's NOT_FOUND, whatever the version's state (loading, failed, unloaded, unknown)."""

    code = "version_not_found"
    param = "version"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class Overloaded(ServiceError):
    status_code = 429
    code = "overloaded"

    def __init__(self, detail: str, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class NotReady(ServiceError):
    status_code = 503
    code = "not_ready"


class DeadlineExceeded(ServiceError):
    status_code = 504
    code = "deadline_exceeded"


class ClientClosedRequest(ServiceError):
    """The client went away before its answer was ready (nginx's 499; nobody reads the body)."""

    status_code = 499
    code = "client_closed_request"


class BackendError(ServiceError):
    """The model call itself failed; only the requests of that batch see it."""

    status_code = 500
    code = "backend_error"


ERROR_DESCRIPTIONS = {
    400: "Input that makes no sense for this model, a body that is not readable JSON (not "
    "UTF-8, nested too deeply, a key named twice in one object), or no `model` named where "
    "several could answer (the detail says which)",
    401: "No API key, or a wrong one, when the service has keys (API_KEYS); on an admin "
    "endpoint, no bearer token",
    403: "Wrong admin token, or admin endpoints are disabled",
    404: "Unknown model, a model of another task, none of this task in the store, or a "
    "`version` (number or label) that names no loaded version of the model",
    413: "Body, batch or text over the configured limits",
    415: "The body is not sent as JSON (`Content-Type: application/json`), or is sent "
    "compressed (`Content-Encoding`)",
    429: "The model's queue is full; retry after `Retry-After` seconds",
    500: "The model call failed",
    503: "The model is not loaded yet, or the service is shutting down",
    504: "The request's deadline passed before its batch ran",
}


# Declared on every route so that the OpenAPI document lists each status a client can meet.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    from service.schemas.common import ErrorBody

    return {s: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}

# The OpenAI API's error types, by status; the SDKs pick their exception class by status alone.
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
# A 422's `error.message` lists at most this many of the validation errors.
_VALIDATION_ERRORS_IN_MESSAGE = 5
# A 422's `detail` lists at most this many, each echoing at most this many characters of its
# input's JSON: a body of 100,000 wrong numbers (500 KB) was answered with all 100,000 errors,
# 11 MB, after 2 s of the event loop encoding them, and every other request waited.
VALIDATION_ERRORS_IN_BODY = 20
ECHOED_INPUT_CHARS = 1000


def openai_error_type(status_code: int) -> str:
    if status_code >= 500:
        return "server_error"
    return _OPENAI_TYPES.get(status_code, "invalid_request_error")


def error_body(
    code: str, detail: str, status_code: int, param: str | None = None
) -> dict[str, Any]:
    """The body of an error the service raises: its own `detail` and `code`, and the same in
    OpenAI's `error` object."""
    return {
        "detail": detail,
        "code": code,
        "error": {
            "message": detail,
            "type": openai_error_type(status_code),
            "code": code,
            "param": param,
        },
    }


def validation_error_summary(
    errors: list[dict[str, Any]], total: int | None = None
) -> dict[str, Any]:
    """OpenAI's `error` object for FastAPI's 422: each error as `field.path: message` (`total`:
    how many errors there were, when `errors` holds only the first of them)."""
    parts: list[str] = []
    for error in errors[:_VALIDATION_ERRORS_IN_MESSAGE]:
        if error.get("type") == "json_invalid":  # loc: ("body", character offset)
            where = error.get("loc", ("body", "?"))[-1]
            why = (error.get("ctx") or {}).get("error", "")
            parts.append(f"the body is not valid JSON: {why} at character {where}")
            continue
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        # Field names and list indices; not pydantic's names of a union's members
        # ('constrained-str', 'list[constrained-str]'), which no request field is called.
        loc = [part for part in loc if part.isidentifier() or part.isdigit()]
        where = ".".join(loc)
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
    more = (len(errors) if total is None else total) - _VALIDATION_ERRORS_IN_MESSAGE
    if more > 0:
        parts.append(f"and {more} more")
    first: list[Any] = list(errors[0].get("loc", ())) if errors else []
    # The top-level field; for a body that is not JSON pydantic gives the character offset.
    param = first[1] if len(first) > 1 and isinstance(first[1], str) else None
    return {
        "message": "; ".join(str(p) for p in parts) or "invalid request",
        "type": "invalid_request_error",
        "code": "validation_error",
        "param": param or None,
    }


def bounded_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The first VALIDATION_ERRORS_IN_BODY errors, an input echoed longer than
    ECHOED_INPUT_CHARS characters of JSON cut to its start (a note, as a string)."""
    kept = []
    for error in errors[:VALIDATION_ERRORS_IN_BODY]:
        error = dict(error)
        value = error.get("input")
        if isinstance(value, str | list | dict):
            text = value if isinstance(value, str) else json.dumps(value, default=repr)
            if len(text) > ECHOED_INPUT_CHARS:
                error["input"] = f"{text[:100]}... (cut: {len(text)} characters)"
        kept.append(error)
    return kept


def _finite(value: Any) -> Any:
    """NaN and infinities (valid in Python's JSON reader, not in JSON) echoed back as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class _AsciiJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _not_sent_as_json(request: Request, errors: list[dict[str, Any]]) -> str | None:
    """What the request said its body was, when FastAPI left the body unread for that reason.

    FastAPI reads a body as JSON only when the request says it is JSON (a form or text/plain
    body is what a browser may send cross-site without asking, so taking those as JSON would
    open the API to CSRF). Its 422 then says "Input should be a valid dictionary" about a body
    that is a valid JSON object: `curl -d '{...}'` without `-H 'Content-Type: application/json'`
    sends it as a form. 415 with what to change is the error a user can act on.
    """
    content_type = request.headers.get("content-type")
    if content_type is not None and _is_json(content_type):
        return None
    if not errors or tuple(errors[0].get("loc", ())) != ("body",):
        return None
    return content_type or "none"


# FastAPI's 400 for a JSON body it could not read (the reason is the exception's __cause__).
_UNREADABLE_BODY = "There was an error parsing the body"


def _why_unreadable(cause: BaseException) -> str:
    """What was wrong with a body FastAPI could not read as JSON, for the person who sent it."""
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start : cause.start + 1].hex()
        return (
            f"the body is not valid UTF-8: byte 0x{byte} at offset {cause.start} "
            f"({cause.reason}); send JSON as UTF-8"
        )
    if isinstance(cause, NotUTF8Error):
        return (
            f"the body is not UTF-8: it reads as {cause.encoding.upper()} (a byte order mark, or "
            "NUL bytes among its first four); send JSON as UTF-8"
        )
    if isinstance(cause, DuplicateKeyError):
        key = cause.key if len(cause.key) <= 80 else f"{cause.key[:80]}..."  # not echoed whole
        return (
            f"the body's JSON names the key {key!r} twice in one object: name each key "
            "once (JSON readers differ on which of the two counts)"
        )
    if isinstance(cause, RecursionError):
        return "the body's JSON nests too deeply to be read (lists or objects inside each other)"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return (
            f"a number in the body has more than {sys.get_int_max_str_digits()} digits, more "
            "than JSON numbers are read with"
        )
    return f"the body could not be read as JSON ({type(cause).__name__}: {cause})"


def _route_without_slash(request: Request) -> str | None:
    """The path without its trailing slash when a route takes that path, else None."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": path.rstrip("/") or "/"}
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            query = request.url.query
            return scope["path"] + (f"?{query}" if query else "")
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, exc.detail)
        return JSONResponse(
            error_body(exc.code, exc.detail, exc.status_code, exc.param),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own (unknown path, wrong method, undecodable body) get the same body shape.
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = str(exc.detail)
        if exc.status_code == 400 and detail == _UNREADABLE_BODY and exc.__cause__ is not None:
            detail = _why_unreadable(exc.__cause__)
        if exc.status_code == 404 and (route := _route_without_slash(request)) is not None:
            if request.method in ("GET", "HEAD"):
                # A page or a read: the browser's way, as Starlette's redirect_slashes does.
                return RedirectResponse(route, status_code=307)
            # A POST with its body: a 307 would leave the many clients that do not follow
            # redirects (httpx, curl) with an empty answer; this says what to change.
            detail = f"Not Found: no route {request.url.path}; did you mean {route}?"
        elif exc.status_code == 404 and detail == "Not Found":
            docs = request.scope.get("root_path", "") + "/docs"
            detail = f"Not Found: nothing at {request.url.path}; {docs} lists the API's paths"
        elif exc.status_code == 405 and (allowed := (exc.headers or {}).get("Allow")):
            detail = f"Method Not Allowed: {request.url.path} takes {allowed}, not {request.method}"
        return JSONResponse(
            error_body(code, detail, exc.status_code),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's standard 422 body, but rendered ASCII-safe: the errors echo the input, and a
        # lone surrogate ("\ud800", valid JSON, not valid UTF-8) would make the default one a 500.
        assert isinstance(exc, RequestValidationError)
        every = exc.errors()
        errors = _finite(jsonable_encoder(bounded_errors(every)))
        if (sent_as := _not_sent_as_json(request, errors)) is not None:
            detail = (
                f"the body must be JSON sent with Content-Type: application/json (Content-Type "
                f"was {sent_as!r}; curl -d needs -H 'Content-Type: application/json')"
            )
            return _AsciiJSONResponse(
                error_body("unsupported_media_type", detail, 415), status_code=415
            )
        return _AsciiJSONResponse(
            {"detail": errors, "error": validation_error_summary(errors, len(every))},
            status_code=422,
        )

    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal error", 500), status_code=500)

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
