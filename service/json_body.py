"""Request bodies read as JSON whose objects name each key once.

Python's (and FastAPI's) JSON reader keeps the last of two equal keys, `{"model": "a", "model":
"b"}` is model b; other readers keep the first or refuse. RFC 8259 4 leaves the meaning of such
an object to the reader, which is how a proxy or an authorising layer in front of the service and
the service itself come to act on different requests (Bishop Fox, "An Exploration of JSON
Interoperability Vulnerabilities", 2021). So the service refuses them, as Rust's serde does for
the fields of a struct: 400, naming the key. Routes with a JSON body take `StrictJSONRoute` as
their router's `route_class`; FastAPI turns the reader's `ValueError` into its 400 for an
unreadable body, which `service.errors` explains with the exception's message.

The body must be UTF-8 (RFC 8259 8.1: JSON exchanged between systems that are not part of a closed
ecosystem MUST be), with or without a byte order mark. Python's reader also takes UTF-16 and
UTF-32, guessed from a BOM or the NUL bytes among the first four; such a body is refused (400)
instead, for the same reason: a layer in front that reads it as UTF-8 sees another request, or
none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DuplicateKeyError(ValueError):
    """An object of the body names a key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class NotUTF8Error(ValueError):
    """The body is UTF-16 or UTF-32, by its byte order mark or its NUL bytes."""

    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`' object_pairs_hook: the object as a dict, or DuplicateKeyError."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return obj


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            encoding = json.detect_encoding(body)
            if encoding not in ("utf-8", "utf-8-sig"):
                raise NotUTF8Error(encoding)
            self._json = json.loads(body, object_pairs_hook=unique_keys)
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON body is read with `unique_keys`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
