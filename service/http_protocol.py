"""uvicorn's httptools protocol with the request head bounded in size, field count and time.

uvicorn (0.54, httptools) takes a request head of any size and for any time: a 16 MiB header is
answered, a head that never ends is buffered whole inside the parser, and a connection that
sends nothing, or a byte now and then, is kept for ever. nginx bounds all three
(large_client_header_buffers, client_header_timeout); this does the same at the connection, before
any of it reaches the app:

- MAX_HEADER_BYTES: a head (request line and fields) over it gets 431 and the connection is
  closed. Counted on the bytes as they arrive while a head is unfinished, so at most one read
  (256 KiB) more than the limit is ever buffered; and exactly on the parsed fields, for a head
  that arrives whole in one read.
- MAX_HEADER_COUNT: more fields than that gets 431.
- HEADER_TIMEOUT_S: from when a connection opens, or its last response ended, to the end of the
  next head; past it the connection is closed (with 408 if a head had begun: the client is told
  why; an idle one is just closed, as nginx does). Request bodies and responses are not timed
  here: the head timer runs only while the connection waits for a head.
"""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.errors import error_body


class HeadLimits:
    def __init__(self, max_bytes: int, max_count: int, timeout_s: float) -> None:
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.timeout_s = timeout_s


def bounded_http_protocol(limits: HeadLimits) -> type[HttpToolsProtocol]:
    """The protocol class to pass as `uvicorn.Config(http=...)`, with these limits."""

    class Bounded(BoundedHttpToolsProtocol):
        pass

    Bounded.limits = limits
    return Bounded


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HeadLimits]

    # uvicorn's own state is untouched; these say where this connection is in the current head.
    _awaiting_head = True  # between the end of one message (or the connection's start) and a head
    _arrived = 0  # bytes received since the head began arriving (a bound on its size)
    _head_bytes = 0  # exact size of the parsed request line and fields
    _head_fields = 0
    _refused: tuple[int, str, str] | None = None  # (status, code, detail) once refused
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # the parser is mid-head of a refused request: nothing more is read
        if self._awaiting_head:
            self._arrived += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return  # uvicorn answered it (a malformed request: 400)
        if self._refused is None and self._awaiting_head and self._arrived > self.limits.max_bytes:
            # The head is still unfinished (a whole one would have been counted exactly): what
            # arrived of it, less any body of the message before, is over the limit.
            self._refuse_head("MAX_HEADER_BYTES", self.limits.max_bytes, "bytes")
        if self._refused is not None:
            self._answer_refusal()

    # httptools callbacks, in the order it calls them.
    def on_message_begin(self) -> None:
        self._head_bytes = self._head_fields = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_bytes:
            self._refuse_head("MAX_HEADER_BYTES", self.limits.max_bytes, "bytes")
        if self._refused is None:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # "name: value\r\n"
        self._head_fields += 1
        if self._head_fields > self.limits.max_count:
            self._refuse_head("MAX_HEADER_COUNT", self.limits.max_count, "fields")
        elif self._head_bytes > self.limits.max_bytes:
            self._refuse_head("MAX_HEADER_BYTES", self.limits.max_bytes, "bytes")
        if self._refused is None:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused is not None:
            return  # no request cycle: the app never sees it
        self._awaiting_head = False
        self._arrived = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused is None:
            super().on_message_complete()
            self._awaiting_head = True

    def on_response_complete(self) -> None:
        # Idle again, unless a pipelined request is waiting to run (its head is in already).
        idle = not self.pipeline
        super().on_response_complete()
        if idle and self._awaiting_head and not self.transport.is_closing():
            self._arm_head_timer()

    # Refusals
    def _refuse_head(self, setting: str, limit: int, unit: str) -> None:
        if self._refused is None:
            detail = f"request head over {limit} {unit} ({setting})"
            self._refused = (431, "request_header_fields_too_large", detail)

    def _answer_refusal(self) -> None:
        self._cancel_head_timer()
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head refused while the request before it still runs: let that response
            # finish, then close, rather than write into the middle of it.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        assert self._refused is not None
        self._send_and_close(*self._refused)

    def _send_and_close(self, status: int, code: str, detail: str) -> None:
        body = json.dumps(error_body(code, detail)).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # The head timer
    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or (self.cycle and not self.cycle.response_complete):
            return
        if self._arrived:
            self._refused = (
                408,
                "request_timeout",
                f"request head not complete within {self.limits.timeout_s:g} s (HEADER_TIMEOUT_S)",
            )
            self._send_and_close(*self._refused)
        else:
            self.transport.close()
