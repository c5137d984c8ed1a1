"""API keys: `Authorization: Bearer <key>` on every endpoint but the open ones, when keys are set.

Keys come from API_KEYS (separated by commas) and API_KEYS_FILE (one a line, `#` comments), and
ADMIN_TOKEN counts as one. The file is read again whenever it changes (its size, modification
time or inode; one `stat` per request, about a microsecond), so keys rotate without a restart: add
the new key, move the clients, remove the old one. A file that cannot be read or holds a line
that is no key leaves the keys as they were (logged, by line number); a file that holds no key
refuses every request, never lets every one in.

Closed by default: every path is closed but the `OPEN_PATHS` (health, readiness, the API's
document and pages) and /metrics unless METRICS_REQUIRE_KEY. A route added later is closed too.
The check is a pure ASGI middleware, before the body is read: a request without a key costs no
parsing and learns nothing of the body's rules (no 413, no 422).

Timing: the presented key is hashed (SHA-256) and its digest compared with every key's digest by
`hmac.compare_digest`, with no early exit, so the time taken says neither which key matched, nor
how long the keys are, nor how many leading bytes were right. Only the keys' digests are kept;
no key is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ERROR_DESCRIPTIONS, error_body
from service.settings import Settings

log = logging.getLogger(__name__)

# RFC 6750's b64token (RFC 7235's token68): what a bearer token may be made of.
KEY_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/playground"})
# Their assets (/docs/assets/...), and the playground's, if it has any.
OPEN_PREFIXES = ("/docs/", "/playground/")
METRICS_PATH = "/metrics"
SECURITY_SCHEME = "HTTPBearer"  # FastAPI's name for it, as the admin routes declare it
REALM = "kexue-serve"
# How long after its last change the keys file is read at every request (see KeyRing._load).
SETTLE_S = 2.0


class BadKey(ValueError):
    """A configured key that cannot be a bearer token; says where, never what."""


def parse_keys(text: str, where: str) -> list[str]:
    """The keys of a keys file: one a line; blank lines and `#` comments are skipped."""
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.split("#", 1)[0].strip()
        if not key:
            continue
        if not KEY_PATTERN.fullmatch(key):
            raise BadKey(
                f"{where} line {number}: not a bearer token (letters, digits and -._~+/, "
                "then any '=' padding)"
            )
        keys.append(key)
    return keys


def split_keys(value: str, where: str) -> list[str]:
    """The keys of API_KEYS: separated by commas (blanks around them are dropped)."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    for number, key in enumerate(keys, start=1):
        if not KEY_PATTERN.fullmatch(key):
            raise BadKey(
                f"{where}: key {number} is not a bearer token (letters, digits and -._~+/, "
                "then any '=' padding)"
            )
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """The accepted keys, as digests: those given, and the file's as it last read well."""

    def __init__(self, keys: Iterable[str] = (), keys_file: Path | None = None) -> None:
        self._fixed = tuple(_digest(k) for k in keys)
        self._file = keys_file
        self._from_file: tuple[bytes, ...] = ()
        self._seen: tuple[int, int, int, int] | None = None
        self._trouble: str | None = None  # the last problem logged, so that it is logged once
        if keys_file is not None:
            # At start a missing or bad file is an error: the service does not start.
            self._load(keys_file, os.stat(keys_file))
            if not self._from_file and not self._fixed:
                log.warning("API_KEYS_FILE %s holds no key: every request will get 401", keys_file)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing | None:
        """The settings' keys, or None when no key is configured (every endpoint open)."""
        if settings.api_keys is None and settings.api_keys_file is None:
            return None
        keys = []
        if settings.api_keys is not None:
            keys += split_keys(settings.api_keys.get_secret_value(), "API_KEYS")
        if settings.admin_token is not None:
            keys.append(settings.admin_token.get_secret_value())
        return cls(keys, settings.api_keys_file)

    def _load(self, path: Path, st: os.stat_result) -> None:
        keys = parse_keys(path.read_text(encoding="utf-8"), f"API_KEYS_FILE {path}")
        self._from_file = tuple(_digest(k) for k in keys)
        # A file changed twice within one tick of the filesystem's clock, to the same size,
        # looks unchanged: one modified in the last SETTLE_S is read again at the next request.
        settled = time.time_ns() - st.st_mtime_ns > SETTLE_S * 1e9
        self._seen = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev) if settled else None

    def _refresh(self) -> None:
        assert self._file is not None
        try:
            st = os.stat(self._file)
            if (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev) == self._seen:
                return
            changed = self._seen is not None  # not merely settling after a change
            self._load(self._file, st)
        except (OSError, UnicodeDecodeError, BadKey) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            self._warn(f"API_KEYS_FILE {self._file}: {reason}; the keys stay as they were")
            return
        if changed or self._trouble is not None:
            log.info("API_KEYS_FILE %s read again: %d key(s)", self._file, len(self._from_file))
        self._trouble = None

    def _warn(self, message: str) -> None:
        if message != self._trouble:
            self._trouble = message
            log.warning("%s", message)

    def accepts(self, key: str) -> bool:
        if self._file is not None:
            self._refresh()
        presented = _digest(key)
        match = False
        for known in self._fixed + self._from_file:
            # `|` (not `or`): every digest is compared, whichever matches.
            match |= hmac.compare_digest(presented, known)
        return match


# Authorization is a field a request sends once (RFC 9110 11.6.2). Sent twice, readers differ on
# which counts (this service read the first; a proxy in front may read the last, or join them): a
# key checked, logged or billed in front would not be the key the service acted for. Refused, as
# a Host field twice is (service/http_protocol.py).
AUTHORIZATION_TWICE = (
    "the request has the Authorization header field twice: send one (Authorization: Bearer <key>)"
)


def authorization_fields(scope: Scope) -> int:
    """How many Authorization header fields the request has."""
    return sum(1 for name, _ in scope.get("headers", ()) if name == b"authorization")


def bearer_token(scope: Scope) -> str | None:
    """The token of the request's `Authorization: Bearer <token>`, else None."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def is_open(path: str, metrics_open: bool) -> bool:
    return (
        path in OPEN_PATHS
        or path.startswith(OPEN_PREFIXES)
        or (metrics_open and path == METRICS_PATH)
    )


class RequireKey:
    """401 with `WWW-Authenticate: Bearer` for a request to a closed path without a good key."""

    def __init__(self, app: ASGIApp, keys: KeyRing, metrics_open: bool) -> None:
        self.app = app
        self.keys = keys
        self.metrics_open = metrics_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_open(
            route_path(scope), self.metrics_open
        ):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        twice = authorization_fields(scope) > 1
        if scope["type"] == "websocket":  # none is served today; closed all the same
            if token is None or twice or not self.keys.accepts(token):
                await send({"type": "websocket.close", "code": 1008})  # policy violation
            else:
                await self.app(scope, receive, send)
        elif twice:
            await _send_401(
                send, AUTHORIZATION_TWICE, f'Bearer realm="{REALM}", error="invalid_request"'
            )
        elif token is None:
            await _send_401(
                send,
                "this endpoint wants an API key: send 'Authorization: Bearer <key>'",
                f'Bearer realm="{REALM}"',
            )
        elif not self.keys.accepts(token):
            await _send_401(
                send, "the API key is not valid", f'Bearer realm="{REALM}", error="invalid_token"'
            )
        else:
            await self.app(scope, receive, send)


async def _send_401(send: Send, detail: str, challenge: str) -> None:
    body = json.dumps(error_body("unauthorized", detail, 401)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def declare_security(app: FastAPI, metrics_open: bool) -> None:
    """The OpenAPI document names the bearer scheme and, on every closed operation, wants it and
    lists its 401; so do /docs (its Authorize button) and generated clients. Declared whether or
    not keys are set: the document is the same on every instance."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, wanted when the service has keys (API_KEYS, "
            "API_KEYS_FILE); on the admin endpoints, ADMIN_TOKEN.",
        }
        for path, operations in document.get("paths", {}).items():
            if is_open(path, metrics_open):
                continue
            for operation in operations.values():
                operation["security"] = [{SECURITY_SCHEME: []}]
                responses = operation.setdefault("responses", {})
                responses.setdefault(
                    "401",
                    {
                        "description": ERROR_DESCRIPTIONS[401],
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}
                            }
                        },
                    },
                )
                operation["responses"] = dict(sorted(responses.items()))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
