"""uvicorn's httptools protocol with the request head bounded in size, field count and time.

uvicorn (0.54, httptools) takes a request head of any size and for any time: a 16 MiB header is
answered, a head that never ends is buffered whole inside the parser, and a connection that
sends nothing, or a byte now and then, is kept for ever. nginx bounds all three
(large_client_header_buffers, client_header_timeout); this does the same at the connection, before
any of it reaches the app:

- MAX_HEADER_BYTES: a head (request line and fields) over it gets 431 and the connection is
  closed. Counted on the bytes as they arrive while a head is unfinished, so at most one read
  (256 KiB) more than the limit is ever buffered; and exactly on the parsed fields once the head
  is complete (a head that arrived whole in one read).
- MAX_HEADER_COUNT: more fields than that gets 431 (counted once the head is complete: the byte
  limit bounds how many there can be before).
- HEADER_TIMEOUT_S: from when a connection opens, or the first bytes of a later head arrive, to
  the end of that head; past it the connection is closed (with 408 if a head had begun: the
  client is told why; an idle one is just closed, as nginx does). Between requests an idle
  connection is closed by uvicorn's keep-alive timeout (5 s) first. Request bodies and responses
  are not timed here: only a connection waiting for a head is.
"""

from __future__ import annotations

import asyncio
import json
from itertools import chain
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
    _arrived = 0  # bytes of the reads that began while waiting for this head
    _carried = 0  # the length of the read in which the last message ended
    _chunk = 0  # the length of the read being parsed
    _refused: tuple[int, str, str] | None = None  # (status, code, detail) once refused
    # One timer per connection, moved on lazily (a deadline to check when it fires) rather than
    # cancelled and made anew for every request.
    _head_deadline = 0.0
    _head_timer: asyncio.TimerHandle | None = None
    _clock_on = False  # the current head's deadline is set

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # the parser is mid-head of a refused request: nothing more is read
        self._chunk = len(data)
        if self._awaiting_head:
            if not self._clock_on:
                self._start_head_clock()  # the first bytes of a head after a message
            self._arrived += self._chunk
        super().data_received(data)
        if self._awaiting_head and self._arrived > self.limits.max_bytes and self._refused is None:
            # Still unfinished (a whole head is counted exactly when it completes), and what
            # arrived of it is over the limit already.
            self._refuse_head("MAX_HEADER_BYTES", self.limits.max_bytes, "bytes")
        if self._refused is not None and not self.transport.is_closing():
            # (closing: uvicorn has answered already, a malformed request's 400)
            self._answer_refusal()

    # httptools callbacks (uvicorn's on_header has appended every field to self.headers).
    def on_headers_complete(self) -> None:
        bound = self._arrived + self._carried  # at least the head's size
        self._awaiting_head = self._clock_on = False
        self._arrived = self._carried = 0
        fields = self.headers
        if len(fields) > self.limits.max_count:
            self._refuse_head("MAX_HEADER_COUNT", self.limits.max_count, "fields")
            return  # no request cycle: the app never sees it
        if bound > self.limits.max_bytes:  # else it is under the limit for sure: not counted
            # "name: value\r\n" a field, and the request line's target (method, version: a few).
            size = len(self.url) + 4 * len(fields) + sum(map(len, chain.from_iterable(fields)))
            if size > self.limits.max_bytes:
                self._refuse_head("MAX_HEADER_BYTES", self.limits.max_bytes, "bytes")
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused is None:
            super().on_message_complete()
            self._awaiting_head = True
            # The next head may begin in this read: it bounds how much of it is in this read.
            self._carried = self._chunk

    # Refusals
    def _refuse_head(self, setting: str, limit: int, unit: str) -> None:
        detail = f"request head over {limit} {unit} ({setting})"
        self._refused = (431, "request_header_fields_too_large", detail)

    def _answer_refusal(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head refused while the request before it still runs: let that response
            # finish, then close, rather than write into the middle of it.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        assert self._refused is not None
        self._send_and_close(*self._refused)

    def _send_and_close(self, status: int, code: str, detail: str) -> None:
        body = json.dumps(error_body(code, detail, status)).encode()
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
    def _start_head_clock(self) -> None:
        self._clock_on = True
        self._head_deadline = self.loop.time() + self.limits.timeout_s
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._awaiting_head or self._refused is not None:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request runs; the next head's first bytes start the clock again
        if self.loop.time() < self._head_deadline:  # moved on since it was set
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)
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
