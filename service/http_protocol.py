"""uvicorn's httptools protocol with the request head bounded in size, field count and time, the
request body in time, and the writing of a response in time.

uvicorn (0.54, httptools) takes a request head of any size and for any time: a 16 MiB header is
answered, a head that never ends is buffered whole inside the parser, and a connection that
sends nothing, or a byte now and then, is kept for ever; so is one that sends a head and then
part of the body it announced (or a chunked body that stops). nginx bounds all of these
(large_client_header_buffers, client_header_timeout, client_body_timeout); this does the same at
the connection, before any of it reaches the app. A client that sends requests and never reads
the answers is kept for ever too: once the socket's send buffer is full, the response waits in the
transport and the request's task (or a pipelined request's) waits for it to drain; nginx's
send_timeout bounds that, and SEND_TIMEOUT_S here:

- MAX_HEADER_BYTES: a head (request line and fields) over it gets 431 and the connection is
  closed. Counted on the bytes as they arrive while a head is unfinished, so at most one read
  (256 KiB) more than the limit is ever buffered; and exactly on the parsed fields once the head
  is complete (a head that arrived whole in one read).
- MAX_HEADER_COUNT: more fields than that gets 431 (counted once the head is complete: the byte
  limit bounds how many there can be before).
- HEADER_TIMEOUT_S: from when a connection opens, or the first bytes of a later head arrive, to
  the end of that head; past it the connection is closed (with 408 if a head had begun: the
  client is told why; an idle one is just closed, as nginx does). Between requests an idle
  connection is closed by uvicorn's keep-alive timeout (5 s) first.
- BODY_TIMEOUT_S: while a request's body is being read, the longest time between two reads that
  bring some of it (nginx's client_body_timeout: not a bound on the whole body, so a slow but
  steady upload is never cut). Past it the client gets 408 and the connection is closed, or it
  is only closed if the app has begun to answer; the app sees a disconnect (its `receive` gives
  `http.disconnect`, whatever it sends is dropped). Time while reading is paused on the server's
  side (a pipelined request behind a running one, a body the app has not yet asked for past
  uvicorn's 64 KiB buffer, a client waiting for `100 Continue`) is not counted against the client.
- Host: an HTTP/1.1 request without a Host header field, or any request with more than one,
  gets 400 before the app sees it (RFC 9112 3.2: a server MUST). An HTTP/1.0 request may still
  come without one.
- Upgrade: the service switches to no other protocol (no WebSocket, no h2c). llhttp ends a
  request that asks for an upgrade (or a CONNECT) at its head, so one that also announces a body
  gets 400 before the app sees it (its body would be lost and then read as the next request);
  one without a body is answered as plain HTTP/1.1, and the connection closed after it.
- SEND_TIMEOUT_S: while some of a response waits in the server (writing is paused: the
  transport's buffer over its high-water mark, so the app's next send waits; or a response has
  ended with its last bytes still in the transport, below that mark, which the keep-alive close
  waits for), the longest time the client may take none of it (nginx's send_timeout: between two
  writes that make progress, not for the whole response, so a slow but steady reader is never
  cut). Progress is the kernel's count of bytes the client acknowledged going up (Linux's
  tcp_info), so bytes the client reads count at once, not only when the kernel next wants more
  (about a third of a send queue of up to 4 MB); where the kernel does not tell, the transport's
  buffer going down. Past it the connection is reset (SO_LINGER 0: the kernel drops what it still
  holds rather than keep it for a client that does not read, as nginx's
  reset_timedout_connection) and logged once; the app sees a disconnect, a pipelined request not
  yet started is dropped. The request is counted in /metrics with the status the app answered, as
  nginx logs it. Looked at SEND_LOOKS times a period, so the reset comes between SEND_TIMEOUT_S
  and 1.25 x SEND_TIMEOUT_S after the client last took a byte. A graceful shutdown waits on such
  a connection no longer. Answers that fit in the kernel's buffers (up to 4 MB a connection)
  never wait in the server: the connection is closed by the keep-alive timeout with them still
  queued, and the kernel kept it (FIN-WAIT-1, its queue held) for minutes for a client that reads
  nothing. The kernel is given a bound of its own (TCP_USER_TIMEOUT, how long sent data may go
  unacknowledged or the client's window stay shut: USER_TIMEOUT_PERIODS x SEND_TIMEOUT_S, so the
  reset above comes first while some of a response waits in the server); when it drops a
  connection that is still the server's, that is logged once too. Once a graceful shutdown has
  begun, the limit is SHUTDOWN_SEND_TIMEOUT_S if that is shorter: a client that takes nothing
  would otherwise hold the exit up to uvicorn's own limit (REQUEST_TIMEOUT_S + 5 s), which then
  cancels the request with an ERROR; a reader that makes progress is still never cut.

Every connection the server closes or resets by one of these limits (a 400, 408 or 431 the app
never sees, a reset, the kernel's drop) is counted once, by reason (`DROP_REASONS`), through the
`on_drop` callback: /metrics' kexue_connections_dropped_total, the edge's part that the requests
counted by the app cannot show.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import sys
from collections.abc import Callable
from itertools import chain
from typing import ClassVar

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from service.errors import error_body
from service.middleware import EDGE_STATUS

log = logging.getLogger(__name__)

# Linux's struct tcp_info (linux/tcp.h): tcpi_bytes_acked, a u64 at byte 120 (since Linux 4.1).
TCP_INFO_BYTES_ACKED = struct.Struct("=Q")
TCP_INFO_BYTES_ACKED_AT = 120

# How many times a SEND_TIMEOUT_S period a paused write is looked at: the reset comes at most a
# quarter period late, for 4 timer callbacks a period on a paused connection only.
SEND_LOOKS = 4
# The kernel's bound (TCP_USER_TIMEOUT) in SEND_TIMEOUT_S periods: past the service's own reset.
USER_TIMEOUT_PERIODS = 2
# The send timeout once a graceful shutdown has begun, when shorter than SEND_TIMEOUT_S: well
# inside uvicorn's limit (REQUEST_TIMEOUT_S + 5 s), long enough for a client that reads at all.
SHUTDOWN_SEND_TIMEOUT_S = 5.0

# Why the server closed or reset a connection (the `on_drop` callback's argument).
DROP_REASONS = (
    "bad_request",  # 400 before the app: unparsable, no or two Host fields, upgrade with a body
    "tls",  # 400: a TLS handshake on the plain-HTTP port
    "header_too_large",  # 431: MAX_HEADER_BYTES or MAX_HEADER_COUNT
    "header_timeout",  # 408: HEADER_TIMEOUT_S with a head begun
    "body_timeout",  # 408 (or closed if the answer had begun): BODY_TIMEOUT_S
    "send_timeout",  # reset: SEND_TIMEOUT_S (or SHUTDOWN_SEND_TIMEOUT_S) without progress
    "kernel_timeout",  # dropped by the kernel: TCP_USER_TIMEOUT
)


class HeadLimits:
    """The head's bounds, the body's time between reads (body_timeout_s), and the response's
    time without progress (send_timeout_s); `on_drop` is told each connection closed or reset by
    one of them, with its reason (one of `DROP_REASONS`)."""

    def __init__(
        self,
        max_bytes: int,
        max_count: int,
        timeout_s: float,
        body_timeout_s: float,
        send_timeout_s: float,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.timeout_s = timeout_s
        self.body_timeout_s = body_timeout_s
        self.send_timeout_s = send_timeout_s
        self.on_drop = on_drop


def bounded_http_protocol(limits: HeadLimits) -> type[HttpToolsProtocol]:
    """The protocol class to pass as `uvicorn.Config(http=...)`, with these limits."""

    class Bounded(BoundedHttpToolsProtocol):
        pass

    Bounded.limits = limits
    return Bounded


# A TLS record of the handshake, version 3.x: a client that speaks https:// to this port.
TLS_HANDSHAKE = b"\x16\x03"


def _declares_body(fields: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request head announces a body (a Content-Length over 0, or any
    Transfer-Encoding)."""
    for name, value in fields:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


def _host_refusal(http_version: str, fields: list[tuple[bytes, bytes]]) -> str | None:
    """Why the request's Host header fields break RFC 9112 3.2, else None: an HTTP/1.1 request
    must carry exactly one (HTTP/1.0, none or one)."""
    count = sum(1 for name, _ in fields if name == b"host")
    if count > 1:
        return f"a request carries one Host header, not {count} (RFC 9112 3.2)"
    if count == 0 and http_version == "1.1":
        return (
            "an HTTP/1.1 request must carry a Host header (RFC 9112 3.2): "
            "send 'Host: <host>[:<port>]'"
        )
    return None


def _upgrade_refusal(method: str, fields: list[tuple[bytes, bytes]]) -> str:
    asked = next((value for name, value in fields if name == b"upgrade"), None)
    what = f"Upgrade: {asked.decode('latin-1')}" if asked is not None else method
    return (
        f"a request with {what} and a body is not served: this service speaks HTTP/1.1 only "
        "and does not switch protocols; send the request without it (curl: --http1.1)"
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HeadLimits]

    # These say where this connection is in the current request. uvicorn's own state is only
    # touched when a body times out: the request cycle is marked disconnected, as uvicorn does.
    _awaiting_head = True  # between the end of one message (or the connection's start) and a head
    _arrived = 0  # bytes of the reads that began while waiting for this head
    _carried = 0  # the length of the read in which the last message ended
    _chunk = 0  # the length of the read being parsed
    _head_start = b""  # the first two bytes of the current head
    _refused: tuple[int, str, str] | None = None  # (status, code, detail) once refused
    _in_body = False  # a request's head was passed on and its body has not all arrived
    _server_waited = False  # the body's timer found the server not reading (see _body_timed_out)
    # One timer per connection for both the head's and the body's deadline, moved on lazily (a
    # deadline to check when it fires) rather than cancelled and made anew for every request or
    # every read of a body; made anew only when a deadline comes before the one it is set for.
    _deadline = 0.0
    _timer: asyncio.TimerHandle | None = None
    _clock_on = False  # the current head's deadline is set
    # While some of a response waits in the server: a timer of its own (it runs whatever the
    # head's and body's state, a closing transport's included), how much the client had taken at
    # the last look (_taken), and when a look last found it more.
    _send_timer: asyncio.TimerHandle | None = None
    _taken_then = 0
    _taken_at = 0.0
    # The request whose task runs: uvicorn's self.cycle is the last one parsed, which may be a
    # pipelined one waiting its turn.
    _running: RequestResponseCycle | None = None
    _dropped = False  # counted once (`_drop`): a refusal may be answered after a pipelined request
    _shutting_down = False  # uvicorn's graceful shutdown has begun (the send timeout shortens)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()
        sock = transport.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
            user_timeout_ms = int(USER_TIMEOUT_PERIODS * self.limits.send_timeout_s * 1000)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
            except OSError:  # not TCP (a Unix socket)
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_send_timer()
        self._disconnect_running()
        if isinstance(exc, TimeoutError):  # ETIMEDOUT: the kernel's bound (TCP_USER_TIMEOUT)
            self._drop("kernel_timeout")
            log.warning(
                "%s took nothing for %g s: connection dropped by the kernel (TCP_USER_TIMEOUT, "
                "%d x SEND_TIMEOUT_S)",
                self._client_name(),
                USER_TIMEOUT_PERIODS * self.limits.send_timeout_s,
                USER_TIMEOUT_PERIODS,
            )
        super().connection_lost(exc)

    def _drop(self, reason: str) -> None:
        """Counts this connection as closed or reset by the server for `reason`, once."""
        if not self._dropped:
            self._dropped = True
            if self.limits.on_drop is not None:
                self.limits.on_drop(reason)

    def shutdown(self) -> None:
        # uvicorn's graceful shutdown: a response already waiting on a client that takes none of
        # it is looked at now, against the shutdown's shorter limit.
        self._shutting_down = True
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
            self._look_at_send()
        super().shutdown()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def _disconnect_running(self) -> None:
        """Tell the running request the client is gone. uvicorn's connection_lost tells only the
        last request parsed (self.cycle): with requests pipelined behind it, the running one,
        if it waits for the send buffer to drain, was woken still connected and wrote to the
        closed transport (uvloop raises: "the handler is closed", logged as the app's error)."""
        running = self._running
        if running is not None and not running.response_complete:
            running.disconnected = True
            running.message_event.set()

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # the parser is mid-head of a refused request: nothing more is read
        self._chunk = len(data)
        if self._awaiting_head:
            if not self._clock_on:
                self._start_head_clock()  # the first bytes of a head after a message
            if not self._arrived:
                self._head_start = data[:2]
            self._arrived += self._chunk
        super().data_received(data)
        if self._awaiting_head and self._arrived > self.limits.max_bytes and self._refused is None:
            # Still unfinished (a whole head is counted exactly when it completes), and what
            # arrived of it is over the limit already.
            self._refuse_head("MAX_HEADER_BYTES", self.limits.max_bytes, "bytes")
        if self._refused is not None and not self.transport.is_closing():
            # (closing: uvicorn has answered already, a malformed request's 400)
            self._answer_refusal()
        elif self._in_body:  # some of a body arrived (or its head did): the next read is due by
            self._set_deadline(self.loop.time() + self.limits.body_timeout_s)

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
        why = _host_refusal(self.parser.get_http_version(), fields)
        if why is not None:
            self._refused = (400, "bad_request", why)
            self._drop("bad_request")
            return  # no request cycle: the app never sees it
        upgrade = self.parser.should_upgrade()
        if upgrade and _declares_body(fields):
            # llhttp ends an Upgrade (or CONNECT) request at its head and takes what follows for
            # the new protocol's bytes: the body would never reach the app (which would answer
            # 422 "Field required" to a request that sent one), and its bytes would be parsed
            # as the next request. Refused before the app sees it, with what to change.
            self._refused = (
                400,
                "bad_request",
                _upgrade_refusal(self.parser.get_method().decode("ascii"), fields),
            )
            self._drop("bad_request")
            return
        cycle = self.cycle
        super().on_headers_complete()
        # A new request cycle: its body, if any, is timed from the end of this read (a request
        # with no body completes in this same read).
        self._in_body = self.cycle is not cycle
        self._server_waited = False
        if upgrade and self._in_body:
            # Answered as plain HTTP/1.1 (RFC 9110 7.8: a server may ignore Upgrade), then the
            # connection closes: the parser stops at the upgrade, and whatever was sent after
            # this head in the same read is gone; a client is told so rather than left waiting.
            self.cycle.keep_alive = False

    def _should_upgrade(self) -> bool:
        # The service serves no WebSocket: an `Upgrade: websocket` request is answered as the
        # HTTP request it also is (uvicorn would hand the connection to its WebSocket protocol,
        # which answers a text/plain 403, or nothing at all to a POST, and keeps the
        # connection past every timeout of this module).
        return False

    def on_body(self, body: bytes) -> None:
        if self._refused is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._refused is None:
            super().on_message_complete()
            self._awaiting_head = True
            # The next head may begin in this read: it bounds how much of it is in this read.
            self._carried = self._chunk

    # Refusals
    def _refuse_head(self, setting: str, limit: int, unit: str) -> None:
        detail = f"request head over {limit} {unit} ({setting})"
        self._refused = (431, "request_header_fields_too_large", detail)
        self._drop("header_too_large")

    def _answer_refusal(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head refused while the request before it still runs: let that response
            # finish, then close, rather than write into the middle of it.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        assert self._refused is not None
        self._send_and_close(*self._refused)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to bytes it cannot parse as HTTP (a Content-Length that is no number or
        # given twice, a broken chunk, a garbage request line) is text/plain; every other error
        # of the service is its JSON error body, so this one is too. uvicorn calls this while it
        # handles the parser's error, whose text says what was wrong ("Invalid character in
        # Content-Length"): it is added to uvicorn's "Invalid HTTP request received.".
        if self._head_start == TLS_HANDSHAKE:
            msg = "this port speaks plain HTTP/1.1, not TLS: use http://, not https://"
            self._drop("tls")
        elif isinstance(reason := sys.exc_info()[1], httptools.HttpParserError) and str(reason):
            msg = f"{msg.rstrip('.')}: {reason}"
        self._drop("bad_request")
        self._send_and_close(400, "bad_request", msg)

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

    # The timer: the head's deadline, or the body's
    def _start_head_clock(self) -> None:
        self._clock_on = True
        self._set_deadline(self.loop.time() + self.limits.timeout_s)

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is not None and self._timer.when() > deadline:
            # Set for a later deadline (the head's, when the body's timeout is shorter).
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._refused is not None:
            return
        if self._in_body:
            self._body_timed_out()
            return
        if not self._clock_on:
            # Between a message and the next head's first bytes (the deadline passed may be a
            # body's): an idle connection there is left to uvicorn's keep-alive timeout.
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A head pipelined behind a request that still runs: looked at again later.
            self._timer = self.loop.call_later(self.limits.timeout_s, self._timed_out)
            return
        if self.loop.time() < self._deadline:  # moved on since it was set
            self._timer = self.loop.call_at(self._deadline, self._timed_out)
            return
        if self._arrived:
            self._drop("header_timeout")  # (an idle connection's close is not: nginx's neither)
            self._refused = (
                408,
                "request_timeout",
                f"request head not complete within {self.limits.timeout_s:g} s (HEADER_TIMEOUT_S)",
            )
            self._send_and_close(*self._refused)
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        cycle = self.cycle
        now = self.loop.time()
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # The wait is the server's (see the module's docstring): the client's time starts
            # again when reading does, which is seen at the next look at the latest.
            self._server_waited = True
            self._deadline = now + self.limits.body_timeout_s
        elif self._server_waited:  # it has ended since the last look: a whole period from now
            self._server_waited = False
            self._deadline = now + self.limits.body_timeout_s
        if now < self._deadline:  # moved on since it was set
            self._timer = self.loop.call_at(self._deadline, self._timed_out)
            return
        self._in_body = False
        self._drop("body_timeout")
        detail = (
            f"request body: nothing received for {self.limits.body_timeout_s:g} s (BODY_TIMEOUT_S)"
        )
        self._refused = (408, "request_timeout", detail)
        # What /metrics counts for the request: the app's own answer goes to nobody.
        cycle.scope.setdefault("state", {})[EDGE_STATUS] = 408
        started = cycle.response_started
        if not cycle.response_complete:
            # The app sees the disconnect now (its receive returns, its sends are dropped), not
            # only once the transport reports the close; as uvicorn's connection_lost does.
            cycle.disconnected = True
            cycle.message_event.set()
        if started:
            self.transport.close()  # too late to say why: the app's answer has begun
        else:
            self._send_and_close(*self._refused)

    # Writing: what waits for the client is watched while writing is paused, and once a response
    # has ended with some of it still in the transport
    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_send()

    def on_response_complete(self) -> None:
        # Its last bytes may be left in the transport below the high-water mark, which never
        # paused: the keep-alive close (or a Connection: close) waits for them to be written, for
        # ever if the client reads nothing.
        if self.transport.get_write_buffer_size():
            self._watch_send()
        super().on_response_complete()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            # Under the low-water mark: the kernel took bytes, which it has room for only as the
            # client takes them (what the transport's count alone would miss if it filled again
            # before the next look).
            self._taken_then, self._taken_at = self._taken(), self.loop.time()

    def _watch_send(self) -> None:
        if self._send_timer is None:
            self._taken_then = self._taken()
            self._taken_at = self.loop.time()
            self._send_timer = self.loop.call_later(
                self._send_limit()[0] / SEND_LOOKS, self._look_at_send
            )

    def _send_limit(self) -> tuple[float, str]:
        """The send timeout now and the setting it comes from: shorter once shutting down."""
        if self._shutting_down and SHUTDOWN_SEND_TIMEOUT_S < self.limits.send_timeout_s:
            return SHUTDOWN_SEND_TIMEOUT_S, "SHUTDOWN_SEND_TIMEOUT_S, shutting down"
        return self.limits.send_timeout_s, "SEND_TIMEOUT_S"

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _taken(self) -> int:
        """A count that goes up whenever the client takes some of what was written: the bytes it
        acknowledged (tcp_info), or where the kernel does not tell, minus the transport's buffer
        (which also goes down when the kernel takes bytes, but only when it has room for them)."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            except (AttributeError, OSError, ValueError):  # no TCP_INFO, not TCP, or closed
                info = b""
            if len(info) >= TCP_INFO_BYTES_ACKED_AT + TCP_INFO_BYTES_ACKED.size:
                return int(TCP_INFO_BYTES_ACKED.unpack_from(info, TCP_INFO_BYTES_ACKED_AT)[0])
        return -self.transport.get_write_buffer_size()

    def _client_name(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def _look_at_send(self) -> None:
        self._send_timer = None
        waiting = self.transport.get_write_buffer_size()
        if not (self.flow.write_paused or waiting):  # all of it is in the kernel, or taken
            return
        now = self.loop.time()
        taken = self._taken()
        if taken > self._taken_then:  # the client took some since the last look
            self._taken_then, self._taken_at = taken, now
        stalled = now - self._taken_at
        limit, setting = self._send_limit()
        if stalled < limit:
            self._send_timer = self.loop.call_later(
                min(limit / SEND_LOOKS, limit - stalled), self._look_at_send
            )
            return
        log.warning(
            "%s took nothing of a response for %g s (%s): connection reset, "
            "%d bytes of it still waiting in the server",
            self._client_name(),
            limit,
            setting,
            waiting,
        )
        self._drop("send_timeout")
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:  # a reset: the kernel drops the queued bytes instead of trying to deliver them
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except (OSError, ValueError):
                pass
        # The app sees a disconnect, its wait on the buffer ends (uvicorn's connection_lost), and
        # a pipelined request not yet started is never run.
        self._disconnect_running()
        self.transport.abort()
