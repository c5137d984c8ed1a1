"""BODY_TIMEOUT_S and SEND_TIMEOUT_S inside one connection of the bounded protocol
(service/http_protocol.py), in process with a transport that keeps what is written: what the app
sees when a body stops arriving, that a wait of the server's own (a client waiting for
`100 Continue`) is not counted against the client, and that a paused write is aborted after a
period without progress and never while its buffer goes down. tests/test_http_edge.py checks the
same on a real socket."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, TypeVar

import pytest
import uvicorn
from uvicorn.server import ServerState

from service import http_protocol
from service.http_protocol import HeadLimits, bounded_http_protocol

BODY_TIMEOUT_S = 0.1
HEAD = b"POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 10\r\n"


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closing = False
        self.wrote = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)
        self.wrote.set()

    def get_write_buffer_size(self) -> int:
        return 0  # all of it written at once

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


TransportT = TypeVar("TransportT", bound=Transport)


class EchoApp:
    """Reads the whole body (after `delay_s`), records every message, answers 200."""

    def __init__(self, delay_s: float = 0) -> None:
        self.delay_s = delay_s
        self.received: list[dict[str, Any]] = []
        self.finished = asyncio.Event()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(self.delay_s)
            while True:
                message = await receive()
                self.received.append(message)
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.finished.set()


def connection(
    app: EchoApp, transport: TransportT, send_timeout_s: float = 60.0
) -> tuple[asyncio.Protocol, TransportT]:
    limits = HeadLimits(32768, 100, 60.0, BODY_TIMEOUT_S, send_timeout_s)
    config = uvicorn.Config(app, http=bounded_http_protocol(limits), lifespan="off")
    config.load()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}
    )
    protocol.connection_made(transport)
    return protocol, transport


def test_the_app_sees_a_disconnect_when_the_body_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    asyncio.run(_stops())
    assert not caplog.records, caplog.text


async def _stops() -> None:
    app = EchoApp()
    protocol, transport = connection(app, Transport())
    protocol.data_received(HEAD + b"\r\n" + b"abc")  # type: ignore[attr-defined]
    await asyncio.wait_for(app.finished.wait(), 20 * BODY_TIMEOUT_S)
    assert [m["type"] for m in app.received] == ["http.request", "http.disconnect"]
    assert app.received[0]["body"] == b"abc"
    # The 408 and nothing after it (the app's 200 went nowhere), and the connection closed.
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["code"] == "request_timeout"
    assert transport.closing
    protocol.connection_lost(None)


def test_a_body_read_slowly_by_the_app_is_not_the_clients_stall() -> None:
    """Expect: 100-continue, and an app that asks for the body only after 4 x BODY_TIMEOUT_S:
    the client sends the body once told to continue, and is answered."""
    asyncio.run(_read_slowly())


async def _read_slowly() -> None:
    app = EchoApp(delay_s=4 * BODY_TIMEOUT_S)
    protocol, transport = connection(app, Transport())
    protocol.data_received(HEAD + b"expect: 100-continue\r\n\r\n")  # type: ignore[attr-defined]
    await asyncio.wait_for(transport.wrote.wait(), 20 * BODY_TIMEOUT_S)
    assert transport.written == b"HTTP/1.1 100 Continue\r\n\r\n" and not transport.closing
    protocol.data_received(b"0123456789")  # type: ignore[attr-defined]
    await asyncio.wait_for(app.finished.wait(), 20 * BODY_TIMEOUT_S)
    assert app.received == [{"type": "http.request", "body": b"0123456789", "more_body": False}]
    assert b"HTTP/1.1 200 " in transport.written and b" 408 " not in transport.written
    assert not transport.closing
    protocol.connection_lost(None)


# SEND_TIMEOUT_S: a transport whose buffer the test sets, paused and resumed by the test as the
# real one is at its water marks.
SEND_TIMEOUT_S = 0.5


class SlowTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.buffered = 0
        self.aborted = asyncio.Event()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.closing = True
        self.aborted.set()


def writing_connection() -> tuple[asyncio.Protocol, SlowTransport]:
    return connection(EchoApp(), SlowTransport(), SEND_TIMEOUT_S)


def test_a_paused_write_that_makes_no_progress_is_aborted_after_the_timeout() -> None:
    asyncio.run(_no_progress())


async def _no_progress(send_timeout_s: float = SEND_TIMEOUT_S, shut_down: bool = False) -> None:
    """A write paused with no progress (after a graceful shutdown began, with `shut_down`) is
    aborted SEND_TIMEOUT_S (the test's) after it paused."""
    protocol, transport = connection(EchoApp(), SlowTransport(), send_timeout_s)
    if shut_down:
        protocol.shutdown()  # type: ignore[attr-defined]
    transport.buffered = 1 << 20
    started = asyncio.get_running_loop().time()
    protocol.pause_writing()
    await asyncio.wait_for(transport.aborted.wait(), 20 * SEND_TIMEOUT_S)
    waited = asyncio.get_running_loop().time() - started
    # Looked at 4 times a period: between 1 and 1.25 periods (and the event loop's slack).
    assert SEND_TIMEOUT_S <= waited < 1.25 * SEND_TIMEOUT_S + 0.5, waited
    protocol.connection_lost(None)


def test_a_write_that_stalls_once_shutting_down_is_looked_at_on_the_shutdown_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SEND_TIMEOUT_S of 60 s, a graceful shutdown begun, then a response that stalls: aborted
    after SHUTDOWN_SEND_TIMEOUT_S (here 0.5 s), not first looked at after 60 / 4 s."""
    monkeypatch.setattr(http_protocol, "SHUTDOWN_SEND_TIMEOUT_S", SEND_TIMEOUT_S)
    asyncio.run(_no_progress(send_timeout_s=60.0, shut_down=True))


def test_a_paused_write_that_drains_a_little_each_period_is_never_aborted() -> None:
    """Paused for 3 periods, its buffer going down a little every fifth of a period: not
    aborted; then no more progress: aborted a period after the last."""
    asyncio.run(_slow_progress())


async def _slow_progress() -> None:
    loop = asyncio.get_running_loop()
    protocol, transport = writing_connection()
    transport.buffered = 1 << 20
    protocol.pause_writing()
    for _ in range(15):
        await asyncio.sleep(SEND_TIMEOUT_S / 5)
        transport.buffered -= 100
        assert not transport.aborted.is_set()
    last = loop.time()
    await asyncio.wait_for(transport.aborted.wait(), 20 * SEND_TIMEOUT_S)
    waited = loop.time() - last
    assert 0.75 * SEND_TIMEOUT_S <= waited < 1.5 * SEND_TIMEOUT_S + 0.5, waited
    protocol.connection_lost(None)


def test_writing_resumed_and_drained_stops_the_clock() -> None:
    asyncio.run(_resumed())


async def _resumed() -> None:
    protocol, transport = writing_connection()
    transport.buffered = 1 << 20
    protocol.pause_writing()
    await asyncio.sleep(SEND_TIMEOUT_S / 2)
    transport.buffered = 0  # all of it taken
    protocol.resume_writing()
    await asyncio.sleep(3 * SEND_TIMEOUT_S)
    assert not transport.aborted.is_set()
    # Paused again: a whole period from now, not from the first pause.
    transport.buffered = 1 << 20
    protocol.pause_writing()
    await asyncio.sleep(0.5 * SEND_TIMEOUT_S)
    assert not transport.aborted.is_set()
    await asyncio.wait_for(transport.aborted.wait(), 20 * SEND_TIMEOUT_S)
    protocol.connection_lost(None)


@pytest.mark.parametrize("left", [0, 1000])
def test_a_response_ended_with_bytes_left_in_the_transport_is_watched_too(left: int) -> None:
    """Under the high-water mark writing never paused, and the keep-alive close waits for those
    bytes to be written: with `left` bytes that the client never takes, aborted after a period;
    with none left, the connection is the keep-alive timeout's (not aborted)."""
    asyncio.run(_left_in_the_transport(left))


async def _left_in_the_transport(left: int) -> None:
    app = EchoApp()
    protocol, transport = connection(app, SlowTransport(), SEND_TIMEOUT_S)
    transport.buffered = left
    protocol.data_received(HEAD + b"\r\n" + b"0123456789")  # type: ignore[attr-defined]
    await asyncio.wait_for(app.finished.wait(), 20 * SEND_TIMEOUT_S)
    assert b"HTTP/1.1 200 " in transport.written
    try:
        await asyncio.wait_for(transport.aborted.wait(), 4 * SEND_TIMEOUT_S)
    except TimeoutError:
        pass
    assert transport.aborted.is_set() == bool(left)
    protocol.connection_lost(None)
