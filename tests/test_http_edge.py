"""The HTTP edge of a real `python -m service` process on 127.0.0.1: request heads bounded in
size, count and time (431, or the connection closed), a body that stops arriving is 408 and the
connection closed (a slow but steady one is not), a client that reads none of its responses is
reset after SEND_TIMEOUT_S (a slow but steady reader is not, and a shutdown does not wait on it),
a streamed body over MAX_BODY_BYTES is 413 like a declared one, a request the queue could never
hold is 413 (not a 429 to retry for ever), and SIGTERM ends in exit status 0 after the graceful
drain. Every connection the edge refuses or resets is counted on /metrics by reason. Raw
sockets where the point is what a client library would not send; every loop is bounded in count
and time."""

from __future__ import annotations

import gzip
import json
import signal
import socket
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.http_protocol import DROP_REASONS, SHUTDOWN_SEND_TIMEOUT_S
from tests.live_server import live_server_process, wait_until
from tests.tiny_store import TINY_MODELS, tiny_version

pytestmark = pytest.mark.slow

JOSE = TINY_MODELS["embedding"]
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
SEND_TIMEOUT_S = 1.0
MAX_QUEUE = 4
MAX_BODY_BYTES = 4096
# The defaults (settings.py): 32 KiB of request head, 100 header fields.
DEFAULT_MAX_HEADER_BYTES = 32768
DEFAULT_MAX_HEADER_COUNT = 100


@pytest.fixture(scope="module")
def jose_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of the tiny JoSE model only (the queue test needs a model; the rest, a server)."""
    store = tmp_path_factory.mktemp("http-edge") / "store"
    tiny_version(tmp_path_factory, "embedding", store, JOSE)
    return store


@pytest.fixture(scope="module")
def edge_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the edge server's log (its stderr) goes."""
    return tmp_path_factory.mktemp("http-edge-log") / "server.log"


@pytest.fixture(scope="module")
def edge_server(jose_store: Path, edge_log: Path) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of a server with short head, body and send timeouts and small queue and
    body limits."""
    settings = {
        "HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "SEND_TIMEOUT_S": str(SEND_TIMEOUT_S),
        "MAX_QUEUE": str(MAX_QUEUE),
        "MAX_BATCH_SIZE": str(MAX_QUEUE),
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    with live_server_process(jose_store, log_path=edge_log, **settings) as (url, proc):
        yield url, proc.pid


def connect(url: str, timeout_s: float = 10) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)


def read_response(sock: socket.socket) -> bytes:
    """One whole response (a Content-Length body), or what came before the server closed or
    reset the connection (b"" for nothing)."""
    data = b""
    try:
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                lengths = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")[1:]
                    if line.lower().startswith(b"content-length:")
                ]
                if lengths and len(body) >= lengths[0]:
                    return data
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def get_with_headers(url: str, headers: list[tuple[str, str]]) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    with connect(url) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n{lines}\r\n".encode())
        return read_response(sock)


def send_unfinished_head(sock: socket.socket, size: int, deadline: float) -> int:
    """Send a request head that never ends: one header value of up to `size` bytes, in 256 KiB
    writes. Stops early when the server closes the connection; returns the bytes sent."""
    sent = 0
    piece = b"a" * 262144
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ")
        while sent < size and time.monotonic() < deadline:
            sock.sendall(piece)
            sent += len(piece)
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        pass
    return sent


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# ------------------------------------------------------------------------ request heads (431)
def test_ordinary_heads_and_keep_alive_pass_the_limits(edge_server: tuple[str, int]) -> None:
    url, _ = edge_server
    # 60 fields of 300 bytes: 18 KB, under both defaults.
    ok = get_with_headers(url, [(f"x-field-{i}", "v" * 300) for i in range(60)])
    assert status_and_body(ok)[0] == 200
    # Two requests one after the other and two pipelined, on one connection each.
    request = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    with connect(url) as sock:
        for _ in range(2):
            sock.sendall(request)
            assert status_and_body(read_response(sock))[0] == 200
    with connect(url) as sock:
        sock.sendall(request * 2)
        both = b""
        while both.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(65536)
            assert chunk, both
            both += chunk


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/embeddings HTTP/1.1\r\nhost: a\r\ncontent-length: abc\r\n\r\n",
        b"POST /v1/embeddings HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n"
        b"content-length: 3\r\n\r\n{}",
        b"POST /v1/embeddings HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01 not http at all\r\n\r\n",
    ],
    ids=["bad-length", "two-lengths", "bad-chunk", "garbage"],
)
def test_unparsable_requests_get_the_json_400(
    edge_server: tuple[str, int], request_bytes: bytes
) -> None:
    url, _ = edge_server
    with connect(url) as sock:
        sock.sendall(request_bytes)
        response = read_response(sock)
    status, body = status_and_body(response)
    assert status == 400, response[:300]
    assert body["code"] == "bad_request" and body["error"]["type"] == "invalid_request_error"
    assert b"application/json" in response.split(b"\r\n\r\n", 1)[0].lower()


@pytest.mark.parametrize(
    ("request_bytes", "said"),
    [
        (
            b"POST /v1/embeddings HTTP/1.1\r\nhost: a\r\ncontent-length: +2\r\n\r\n{}",
            "Invalid HTTP request received: Invalid character in Content-Length",
        ),
        (
            b"POST /v1/embeddings HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n"
            b"transfer-encoding: chunked\r\n\r\n{}",
            "Transfer-Encoding can't be present with Content-Length",
        ),
        (b"GET /healthz HTTP/1.2\r\nhost: a\r\n\r\n", "Invalid HTTP version"),
        (b"GET /healthz HTTP/1.1\r\nhost: a\r\nx-a: \x00\r\n\r\n", "Invalid header value char"),
        # A TLS ClientHello: https:// to this plain-HTTP port.
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32), "not TLS: use http://"),
    ],
    ids=["plus-length", "length-and-chunked", "version", "nul-in-header", "tls"],
)
def test_an_unparsable_request_is_told_what_the_parser_found(
    edge_server: tuple[str, int], request_bytes: bytes, said: str
) -> None:
    """Every unparsable request was answered "Invalid HTTP request received.", whatever it was."""
    url, _ = edge_server
    with connect(url) as sock:
        sock.sendall(request_bytes)
        status, body = status_and_body(read_response(sock))
    assert status == 400 and body["code"] == "bad_request"
    assert said in body["detail"], body["detail"]


@pytest.mark.parametrize(
    ("request_bytes", "said"),
    [
        (b"GET /healthz HTTP/1.1\r\n\r\n", "must carry a Host header"),
        (
            b"POST /v1/embeddings HTTP/1.1\r\ncontent-type: application/json\r\n"
            b'content-length: 13\r\n\r\n{"input":"a"}',
            "must carry a Host header",
        ),
        (b"GET /healthz HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n", "not 2"),
        (b"GET /healthz HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n", "not 2"),
    ],
    ids=["get-1.1-no-host", "post-1.1-no-host", "two-hosts", "two-hosts-1.0"],
)
def test_a_request_without_one_host_header_gets_the_json_400(
    edge_server: tuple[str, int], request_bytes: bytes, said: str
) -> None:
    """RFC 9112 3.2: an HTTP/1.1 request with no Host, or any request with two, MUST get 400;
    both were answered 200. The app never sees it, and the connection is closed."""
    url, _ = edge_server
    with connect(url) as sock:
        sock.sendall(request_bytes)
        response = read_response(sock)
        assert read_response(sock) == b""  # closed after the answer
    status, body = status_and_body(response)
    assert status == 400, response[:300]
    assert body["code"] == "bad_request" and body["error"]["type"] == "invalid_request_error"
    assert said in body["detail"] and "RFC 9112" in body["detail"], body["detail"]
    assert b"application/json" in response.split(b"\r\n\r\n", 1)[0].lower()


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET /healthz HTTP/1.0\r\n\r\n", b"GET /healthz HTTP/1.1\r\nhost:\r\n\r\n"],
    ids=["1.0-no-host", "1.1-empty-host"],
)
def test_http_1_0_without_host_and_an_empty_host_are_served(
    edge_server: tuple[str, int], request_bytes: bytes
) -> None:
    """HTTP/1.0 has no Host requirement; an empty Host is what RFC 9112 3.2 tells a client to send
    for a target with no authority."""
    url, _ = edge_server
    with connect(url) as sock:
        sock.sendall(request_bytes)
        response = read_response(sock)
    assert status_and_body(response)[0] == 200, response[:300]


def test_a_pipelined_request_without_host_is_refused_after_the_one_before(
    edge_server: tuple[str, int],
) -> None:
    """Both heads in one write: the refusal waits for the running request's answer."""
    url, _ = edge_server
    with connect(url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        first = read_response(sock)
        assert status_and_body(first)[0] == 200, first[:300]
        second = read_response(sock)
    # As for a pipelined head over the size limit: the request before it is answered, then the
    # connection closes (with the 400 if it is still writable); the one without Host is never
    # served.
    assert second == b"" or status_and_body(second)[0] == 400, second[:300]


def test_cors_is_off_by_default(edge_server: tuple[str, int]) -> None:
    """CORS_ALLOW_ORIGINS unset: a preflight gets the 405 of a method the path does not take, and
    no answer carries an Access-Control header (tests/test_cors_live.py: with it set)."""
    url, _ = edge_server
    origin = {"Origin": "https://app.example.com"}
    preflight = httpx.options(
        f"{url}/v1/embeddings",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 405, preflight.text
    assert preflight.json()["code"] == "method_not_allowed"
    post = httpx.post(f"{url}/v1/embeddings", json={"model": JOSE, "input": ["a"]}, headers=origin)
    assert post.status_code == 200, post.text
    for response in (preflight, post):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_head_answers_as_get_without_a_body(edge_server: tuple[str, int]) -> None:
    url, _ = edge_server
    get = httpx.get(f"{url}/openapi.json", timeout=10)
    head = httpx.head(f"{url}/openapi.json", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]
    refused = httpx.head(f"{url}/v1/embeddings", timeout=10)
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    # No body follows a HEAD's head: the next response on the connection is read clean.
    with connect(url) as sock:
        sock.sendall(
            b"HEAD /healthz HTTP/1.1\r\nhost: a\r\n\r\nGET /healthz HTTP/1.1\r\nhost: a\r\n\r\n"
        )
        both = b""
        deadline = time.monotonic() + 10
        while both.count(b"HTTP/1.1 200") < 2 or not both.endswith(b'{"status":"ok"}'):
            assert time.monotonic() < deadline, both
            chunk = sock.recv(65536)
            assert chunk, both
            both += chunk
    first, second = both.split(b"HTTP/1.1 200", 2)[1:]
    assert first.endswith(b"\r\n\r\n") and second.endswith(b'{"status":"ok"}')


def test_a_trailing_slash_redirects_a_get_and_names_the_path_to_a_post(
    edge_server: tuple[str, int],
) -> None:
    url, _ = edge_server
    redirected = httpx.get(f"{url}/healthz/?probe=1", timeout=10)
    assert redirected.status_code == 307 and redirected.headers["location"] == "/healthz?probe=1"
    posted = httpx.post(f"{url}/v1/embeddings/", json={"input": "a"}, timeout=10)
    assert posted.status_code == 404 and posted.json()["code"] == "not_found"
    assert "did you mean /v1/embeddings?" in posted.json()["detail"]
    unknown = httpx.post(f"{url}/v1/nothing/", json={}, timeout=10)
    assert unknown.status_code == 404 and "did you mean" not in unknown.json()["detail"]


def test_too_many_header_fields_get_431(edge_server: tuple[str, int]) -> None:
    url, _ = edge_server
    response = get_with_headers(url, [(f"x-{i}", "1") for i in range(DEFAULT_MAX_HEADER_COUNT + 1)])
    status, body = status_and_body(response)
    assert status == 431, response[:200]
    assert body["code"] == "request_header_fields_too_large"
    assert "MAX_HEADER_COUNT" in body["detail"]


def test_a_whole_head_over_the_byte_limit_gets_431(edge_server: tuple[str, int]) -> None:
    # Sent at once and complete: the server sees the whole head in one read.
    url, _ = edge_server
    response = get_with_headers(url, [("x-big", "b" * DEFAULT_MAX_HEADER_BYTES)])
    status, body = status_and_body(response)
    assert status == 431, response[:200]
    assert body["code"] == "request_header_fields_too_large"
    assert "MAX_HEADER_BYTES" in body["detail"]
    # The same head pipelined behind a good request, in the same write: the good one is
    # answered, then the connection closes (the big one never reaches the app).
    good = "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    big = f"GET /healthz HTTP/1.1\r\nhost: a\r\nx-big: {'b' * DEFAULT_MAX_HEADER_BYTES}\r\n\r\n"
    with connect(url) as sock:
        sock.sendall(f"{good}{big}".encode())
        first = read_response(sock)
        assert status_and_body(first)[0] == 200
        rest = read_response(sock)
        assert rest == b"" or status_and_body(rest)[0] == 431, rest[:200]


def test_a_16_mib_header_is_refused_or_cut_off(edge_server: tuple[str, int]) -> None:
    url, _ = edge_server
    with connect(url) as sock:
        sent = send_unfinished_head(sock, 16 << 20, deadline=time.monotonic() + 30)
        try:
            sock.sendall(b"\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
        response = read_response(sock)
    # 431, or the connection closed under the sender: never a 200 for 16 MiB of header.
    if response:
        assert status_and_body(response)[0] == 431, (sent, response[:200])
    assert sent < 16 << 20 or not response or response.startswith(b"HTTP/1.1 431")
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_big_unfinished_heads_hold_no_memory(edge_server: tuple[str, int]) -> None:
    """8 connections each sending 16 MiB of a head that never ends, all held open: the server
    keeps a bounded slice of each, not 128 MB."""
    url, pid = edge_server
    before = resident_mb(pid)
    sockets = [connect(url, timeout_s=5) for _ in range(8)]
    try:
        deadline = time.monotonic() + 60
        for sock in sockets:
            send_unfinished_head(sock, 16 << 20, deadline)
        time.sleep(0.5)
        grown = resident_mb(pid) - before
    finally:
        for sock in sockets:
            sock.close()
    assert grown < 40, f"{grown:.0f} MB more resident while 8 unfinished heads were open"


def test_unfinished_and_idle_connections_are_closed_after_the_header_timeout(
    edge_server: tuple[str, int],
) -> None:
    """20 connections dribbling a header one byte every 0.2 s, and 5 that send nothing at all:
    each is closed by the server soon after HEADER_TIMEOUT_S (1 s here), not kept for ever."""
    url, _ = edge_server
    dribblers = [connect(url, timeout_s=5) for _ in range(20)]
    idle = [connect(url, timeout_s=5) for _ in range(5)]
    closed: dict[int, bytes] = {}
    try:
        for sock in dribblers:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        for sock in [*dribblers, *idle]:
            sock.setblocking(False)
        give_up = time.monotonic() + HEADER_TIMEOUT_S + 9
        while len(closed) < len(dribblers) + len(idle) and time.monotonic() < give_up:
            for i, sock in enumerate([*dribblers, *idle]):
                if i in closed:
                    continue
                try:
                    if sock in dribblers:
                        sock.send(b"a")
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                closed[i] = data  # b"": closed; else what was sent before closing
            time.sleep(0.2)
    finally:
        for sock in [*dribblers, *idle]:
            sock.close()
    assert len(closed) == len(dribblers) + len(idle), f"{len(closed)} of 25 closed"
    # Those caught mid-head may be told why (408) before the close; the idle ones just close.
    for i, data in closed.items():
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
        if i >= len(dribblers):
            assert data == b""


def test_a_later_head_dribbled_on_a_kept_alive_connection_is_closed(
    edge_server: tuple[str, int],
) -> None:
    url, _ = edge_server
    with connect(url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        assert status_and_body(read_response(sock))[0] == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        sock.setblocking(False)
        data = None
        give_up = time.monotonic() + HEADER_TIMEOUT_S + 9
        while data is None and time.monotonic() < give_up:
            time.sleep(0.2)
            try:
                sock.send(b"a")
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                data = b""
    assert data is not None, "still open"
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]


# ---------------------------------------------------------------------- request bodies (408)
EMBED_BODY = json.dumps({"model": JOSE, "input": ["酒店很好", "手机坏了"]}).encode()


def embed_head(framing: str) -> bytes:
    return (
        "POST /v1/embeddings HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


def until_closed(sock: socket.socket, give_up_s: float) -> tuple[bytes, bool, float]:
    """What the server sends until it closes the connection: (bytes, closed, seconds waited)."""
    started = time.monotonic()
    data = b""
    try:
        while time.monotonic() - started < give_up_s:
            sock.settimeout(max(0.01, give_up_s - (time.monotonic() - started)))
            chunk = sock.recv(65536)
            if not chunk:
                return data, True, time.monotonic() - started
            data += chunk
    except ConnectionResetError:
        return data, True, time.monotonic() - started
    except TimeoutError:
        pass
    return data, False, time.monotonic() - started


def embedding_requests_counted(url: str, status: str | None = None) -> float:
    """/v1/embeddings requests the app has finished with (of `status`, or any), from /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("kexue_requests_total{")
        and 'route="/v1/embeddings"' in line
        and (status is None or f'status="{status}"' in line)
    )


@pytest.mark.parametrize(
    ("framing", "part"),
    [
        ("content-length: 500", EMBED_BODY[:20]),  # 20 bytes of the 500 announced
        ("transfer-encoding: chunked", b"%x\r\n%s\r\n" % (20, EMBED_BODY[:20])),  # no last chunk
    ],
    ids=["content-length", "chunked"],
)
def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed(
    edge_server: tuple[str, int], edge_log: Path, framing: str, part: bytes
) -> None:
    """A head, part of its body, then nothing: 408 with the service's error body soon after
    BODY_TIMEOUT_S (1 s here), the connection closed, and the app's handler finished (counted
    in /metrics) with nothing logged as an error."""
    url, _ = edge_server
    counted, timed_out = embedding_requests_counted(url), embedding_requests_counted(url, "408")
    with connect(url) as sock:
        sock.sendall(embed_head(framing) + part)
        data, closed, waited = until_closed(sock, BODY_TIMEOUT_S + 9)
    assert closed, f"still open after {waited:.1f} s: {data[:200]!r}"
    assert waited >= 0.8 * BODY_TIMEOUT_S, f"closed after {waited:.2f} s"
    status, body = status_and_body(data)
    assert status == 408, data[:200]
    assert b"connection: close" in data.partition(b"\r\n\r\n")[0].lower().split(b"\r\n")
    assert body["code"] == "request_timeout"
    assert "BODY_TIMEOUT_S" in body["detail"]
    wait_until(lambda: embedding_requests_counted(url) == counted + 1, 10, "the handler finished")
    assert embedding_requests_counted(url, "408") == timed_out + 1  # counted as what was sent
    log = edge_log.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_a_client_gone_mid_body_is_counted_as_499(edge_server: tuple[str, int]) -> None:
    """Nobody got an answer: /metrics counts nginx's 499, not the 400 the app wrote to nobody."""
    url, _ = edge_server
    gone, bad = embedding_requests_counted(url, "499"), embedding_requests_counted(url, "400")
    with connect(url) as sock:
        sock.sendall(embed_head("content-length: 500") + EMBED_BODY[:20])
    wait_until(lambda: embedding_requests_counted(url, "499") == gone + 1, 10, "counted")
    assert embedding_requests_counted(url, "400") == bad


def test_a_slow_but_steady_body_is_not_cut(edge_server: tuple[str, int]) -> None:
    """The timeout is between two reads, not for the whole body (nginx's client_body_timeout):
    a body sent in 6 pieces, each BODY_TIMEOUT_S / 2 after the last, taking 3 x BODY_TIMEOUT_S in
    all, is answered; the same pieces stopped after the third (1.5 x BODY_TIMEOUT_S in) get 408
    about BODY_TIMEOUT_S after it: the time counts from the last read."""
    url, _ = edge_server
    step = -(-len(EMBED_BODY) // 6)
    pieces = [EMBED_BODY[i : i + step] for i in range(0, len(EMBED_BODY), step)]
    assert len(pieces) == 6
    answers = []
    for sent in (pieces, pieces[:3]):
        with connect(url) as sock:
            sock.sendall(embed_head(f"content-length: {len(EMBED_BODY)}"))
            started = time.monotonic()
            for piece in sent:
                time.sleep(0.5 * BODY_TIMEOUT_S)
                sock.sendall(piece)
            last = time.monotonic()
            answers.append((read_response(sock), last - started, time.monotonic() - last))
    (steady, steady_s, _), (stopped, _, waited) = answers
    assert steady_s > 2.5 * BODY_TIMEOUT_S
    status, body = status_and_body(steady)
    assert status == 200, steady[:300]
    assert len(body["data"]) == 2
    assert status_and_body(stopped)[0] == 408, stopped[:300]
    assert waited >= 0.8 * BODY_TIMEOUT_S, f"408 {waited:.2f} s after the last piece"


# ------------------------------------------------------------------ response writing (reset)
# Each answer to GET /openapi.json is about 44 KB: 200 of them pipelined on one connection are
# more than the server's socket and the client's (a 4 KiB receive buffer) hold together (about
# 3 MB on loopback), so the rest waits in the server's transport and writing is paused.
OPENAPI_GET = b"GET /openapi.json HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
PIPELINED = 200
# The slow reader's: 5.6 MB, past the server's socket (at most 4 MB: tcp_wmem) and fewer to read.
PIPELINED_SLOWLY = 128
TCP_STATES = {1: "ESTABLISHED", 7: "CLOSE", 8: "CLOSE_WAIT"}


def non_reader(url: str, receive_buffer: int = 4096, requests: int = PIPELINED) -> socket.socket:
    """A connection with a small receive buffer that has sent `requests` pipelined requests for
    the API document and reads nothing."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(OPENAPI_GET * requests)
    return sock


def tcp_state(sock: socket.socket) -> int:
    """The connection's TCP state as the kernel sees it (tcp_info's first byte), read without
    taking any of the data the client has not read: 1 established, 7 closed (reset)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def test_a_client_that_reads_nothing_is_reset_after_the_send_timeout(
    edge_server: tuple[str, int], edge_log: Path
) -> None:
    """It was held for ever: the server's socket full (about 3 MB), the next response waiting in
    the transport, and the pipelined requests' task waiting for it to drain. Now reset soon after
    SEND_TIMEOUT_S (1 s here) of taking nothing, logged once; another client is served meanwhile,
    and nothing is logged as an error (the running request, woken by the reset, wrote to the
    closed transport: "the handler is closed")."""
    url, _ = edge_server
    with non_reader(url) as sock:
        port = sock.getsockname()[1]
        started = time.monotonic()
        # Served while the connection is held (it is reset no sooner than 0.8 x SEND_TIMEOUT_S).
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert tcp_state(sock) == 1, "reset before the other client was served"
        embedded = httpx.post(
            f"{url}/v1/embeddings", json={"model": JOSE, "input": ["酒店很好"]}, timeout=10
        )
        assert embedded.status_code == 200, embedded.text
        give_up = started + SEND_TIMEOUT_S + 10
        while tcp_state(sock) == 1 and time.monotonic() < give_up:
            time.sleep(0.05)
        waited = time.monotonic() - started
        state = tcp_state(sock)
        assert state == 7, f"{TCP_STATES.get(state, state)} after {waited:.1f} s"
        assert waited >= 0.8 * SEND_TIMEOUT_S, f"reset after {waited:.2f} s"
        # Looked at 4 times a period: at most 1.25 x SEND_TIMEOUT_S, and time for a loaded CPU.
        assert waited < 1.25 * SEND_TIMEOUT_S + 3, f"reset after {waited:.2f} s"
        received, closed, _ = until_closed(sock, 10)
    assert closed and received.count(b"HTTP/1.1 200 ") < PIPELINED
    wait_until(lambda: f":{port} took nothing" in edge_log.read_text(), 5, "the reset logged")
    log = edge_log.read_text(errors="replace")
    assert log.count(f":{port} took nothing") == 1 and "SEND_TIMEOUT_S" in log
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]


def test_a_slow_but_steady_reader_is_not_cut(edge_server: tuple[str, int]) -> None:
    """A client reading 64 KiB every SEND_TIMEOUT_S / 5 (a 64 KiB receive buffer): the server's
    writing stays paused far longer than SEND_TIMEOUT_S at a time (its socket asks for more only
    once a third of what it holds is taken, about 1 MB here), but the client takes some all the
    while, and it gets all PIPELINED_SLOWLY responses."""
    url, _ = edge_server
    with connect(url) as sock:  # one whole response's bytes, head and body
        sock.sendall(OPENAPI_GET)
        one = len(read_response(sock))
    received = 0
    with non_reader(url, receive_buffer=65536, requests=PIPELINED_SLOWLY) as sock:
        started = time.monotonic()
        give_up = started + 120
        sock.settimeout(5)
        while time.monotonic() < give_up:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += len(chunk)
            if received >= PIPELINED_SLOWLY * one:
                break
            time.sleep(SEND_TIMEOUT_S / 5)
        took = time.monotonic() - started
        state = tcp_state(sock)
    whole = PIPELINED_SLOWLY * one
    assert received >= whole, f"{received} bytes of {whole} in {took:.1f} s"
    # Open, or closed by uvicorn's keep-alive timeout after the last response (a FIN behind all
    # of it): not reset.
    assert state in (1, 8), f"{TCP_STATES.get(state, state)} once all was read"
    assert took > 3 * SEND_TIMEOUT_S  # slow enough for the reset to have come had it been due


def server_sockets_to(server_port: int, client_port: int) -> list[str]:
    """The TCP states (hex, /proc/net/tcp) of the server's sockets to one client port: what the
    kernel still holds for it, closed by the server or not (01 established, 04 FIN-WAIT-1)."""
    states = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            states.append(state)
    return states


def test_answers_that_fit_in_the_kernel_are_dropped_by_it_for_a_client_that_reads_nothing(
    edge_server: tuple[str, int], edge_log: Path
) -> None:
    """20 answers (0.9 MB) fit in the server's socket: writing never pauses and the process is
    done with them, but the kernel kept the connection with its queue (established, then
    FIN-WAIT-1 after the keep-alive close) for about 5.5 min. TCP_USER_TIMEOUT (2 x
    SEND_TIMEOUT_S) now bounds that: the kernel drops it, and the service logs it once."""
    url, _ = edge_server
    server_port = int(url.rsplit(":", 1)[1])
    before = dropped(url)
    with non_reader(url, requests=20) as sock:
        port = sock.getsockname()[1]
        started = time.monotonic()
        wait_until(lambda: server_sockets_to(server_port, port), 5, "the server's socket seen")
        give_up = started + 2 * SEND_TIMEOUT_S + 10
        while server_sockets_to(server_port, port) and time.monotonic() < give_up:
            time.sleep(0.1)
        waited = time.monotonic() - started
        held = server_sockets_to(server_port, port)
    assert not held, f"the server's socket still in state {held} after {waited:.1f} s"
    assert waited >= 1.5 * SEND_TIMEOUT_S, f"dropped after {waited:.2f} s"
    log = edge_log.read_text(errors="replace")
    assert log.count(f":{port} took nothing for") == 1, log[-2000:]
    assert dropped(url)["kernel_timeout"] == before["kernel_timeout"] + 1


def shut_down_with_a_non_reader(tmp_path: Path, **settings: str) -> tuple[float, str]:
    """SIGTERM to a server (an empty store, `settings`) while a non-reader's connection is held
    with the server's socket full: the seconds to exit status 0, and the server's log."""
    (tmp_path / "store").mkdir()
    log_path = tmp_path / "server.log"
    with (
        live_server_process(tmp_path / "store", log_path=log_path, **settings) as (url, proc),
        non_reader(url) as sock,
    ):
        time.sleep(0.5)  # written until the socket is full
        assert tcp_state(sock) == 1
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        took = time.monotonic() - stopped
    return took, log_path.read_text(errors="replace")


def test_a_shutdown_resets_a_non_reader_long_before_the_send_timeout(tmp_path: Path) -> None:
    """SIGTERM with a non-reading connection held and the default SEND_TIMEOUT_S (60 s, longer
    than the graceful shutdown's own limit, REQUEST_TIMEOUT_S + 5 s): the shutdown waited 35 s
    for it, then cancelled its task with an ERROR. Once shutting down, the send timeout is
    SHUTDOWN_SEND_TIMEOUT_S (5 s), so the process exits 0 soon after that."""
    took, log = shut_down_with_a_non_reader(tmp_path)
    assert took < SHUTDOWN_SEND_TIMEOUT_S + 10, f"exited {took:.1f} s after SIGTERM"
    assert "SHUTDOWN_SEND_TIMEOUT_S, shutting down" in log, log[-2000:]
    assert "ERROR" not in log, log[-2000:]


def test_an_idle_connection_is_kept_keep_alive_s_for_the_next_request(tmp_path: Path) -> None:
    """KEEP_ALIVE_S reaches uvicorn (its own default is 5 s): a connection idle after a response
    still serves a request sent within it, and is closed, without a word, about KEEP_ALIVE_S
    after its last response."""
    keep_alive_s = 1.5
    (tmp_path / "store").mkdir()
    with (
        live_server_process(tmp_path / "store", KEEP_ALIVE_S=str(keep_alive_s)) as (url, _),
        connect(url) as sock,
    ):
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            assert status_and_body(read_response(sock))[0] == 200
            time.sleep(keep_alive_s / 3)
        data, closed, waited = until_closed(sock, give_up_s=10)
    assert closed and data == b"", data[:100]
    assert keep_alive_s / 3 < waited < keep_alive_s + 1.5, f"closed {waited:.2f} s later"


def dropped(url: str) -> dict[str, float]:
    """kexue_connections_dropped_total by reason, from /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("kexue_connections_dropped_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


def test_connections_the_edge_drops_are_counted_by_reason(edge_server: tuple[str, int]) -> None:
    """A refused head, an unparsable request, https:// to the port, a head or a body that stops,
    and a client that reads nothing: each counted once under its reason (every reason is on
    /metrics from the start); a connection closed while idle, or served, is not."""
    url, _ = edge_server
    before = dropped(url)
    assert set(before) == set(DROP_REASONS)
    get_with_headers(url, [(f"x-{i}", "1") for i in range(DEFAULT_MAX_HEADER_COUNT + 1)])
    for request in (
        b"GET /healthz HTTP/1.2\r\nhost: a\r\n\r\n",  # unparsable
        b"GET /healthz HTTP/1.1\r\n\r\n",  # no Host
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # TLS
    ):
        with connect(url) as sock:
            sock.sendall(request)
            assert read_response(sock).startswith(b"HTTP/1.1 400 ")
    with connect(url) as head, connect(url) as idle, connect(url) as body:
        head.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        body.sendall(embed_head("content-length: 500") + EMBED_BODY[:20])
        for sock in (head, idle, body):
            assert until_closed(sock, HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 9)[1]
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    with non_reader(url) as sock:
        wait_until(lambda: tcp_state(sock) == 7, SEND_TIMEOUT_S + 10, "the non-reader reset")
    after = dropped(url)
    assert {reason: after[reason] - before[reason] for reason in DROP_REASONS} == {
        "bad_request": 2,
        "tls": 1,
        "header_too_large": 1,
        "header_timeout": 1,
        "body_timeout": 1,
        "send_timeout": 1,
        "kernel_timeout": 0,
    }


def test_a_shutdown_does_not_wait_on_a_client_that_reads_nothing(tmp_path: Path) -> None:
    """SIGTERM with a non-reading connection held: the graceful shutdown waited for it until its
    own limit (REQUEST_TIMEOUT_S + 5 s, 35 s by default), then logged an ERROR cancelling the
    task; now the connection is reset after SEND_TIMEOUT_S and the process exits 0 soon after."""
    took, log = shut_down_with_a_non_reader(tmp_path, SEND_TIMEOUT_S=str(SEND_TIMEOUT_S))
    assert took < SEND_TIMEOUT_S + 10, f"exited {took:.1f} s after SIGTERM"
    assert "SEND_TIMEOUT_S" in log and "ERROR" not in log, log[-2000:]


# ------------------------------------------------------------------------------- upgrades
UPGRADES = {
    "h2c": "connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n"
    "http2-settings: AAMAAABkAARAAAAAAAIAAAAA",
    "websocket": "connection: Upgrade\r\nupgrade: websocket\r\n"
    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13",
}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("upgrade", list(UPGRADES))
def test_an_upgrade_request_with_a_body_is_refused_not_read_without_it(
    edge_server: tuple[str, int], upgrade: str, framing: str
) -> None:
    """`curl --http2 -d ...` over http:// asks for h2c with a POST body. The parser ends such a
    request at its head, so its body never reached the app: h2c got 422 "Field required" for a
    body that was sent, and a WebSocket upgrade of a POST was never answered (the connection
    held past every timeout). Now: a JSON 400 saying what to change, and the connection closed."""
    url, _ = edge_server
    body = (
        EMBED_BODY
        if framing == "content-length"
        else b"%x\r\n%s\r\n0\r\n\r\n" % (len(EMBED_BODY), EMBED_BODY)
    )
    length = (
        f"content-length: {len(EMBED_BODY)}"
        if framing == "content-length"
        else "transfer-encoding: chunked"
    )
    with connect(url) as sock:
        sock.sendall(embed_head(f"{UPGRADES[upgrade]}\r\n{length}") + body)
        data, closed, waited = until_closed(sock, 10)
    assert closed and waited < 5, (waited, data[:300])
    status, answer = status_and_body(data)
    assert status == 400, data[:300]
    assert answer["code"] == "bad_request"
    assert f"Upgrade: {upgrade}" in answer["detail"] and "HTTP/1.1" in answer["detail"]
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (f"GET /healthz HTTP/1.1\r\nhost: a\r\n{UPGRADES['websocket']}\r\n\r\n", 200),
        (f"GET /healthz HTTP/1.1\r\nhost: a\r\n{UPGRADES['h2c']}\r\n\r\n", 200),
        ("CONNECT /v1/embeddings HTTP/1.1\r\nhost: a\r\n\r\n", 405),
    ],
    ids=["websocket", "h2c", "connect"],
)
def test_an_upgrade_request_without_a_body_is_answered_as_http_then_closed(
    edge_server: tuple[str, int], head: str, status: int
) -> None:
    """No protocol switch: the request is answered as HTTP/1.1 with the service's JSON (a
    WebSocket handshake got uvicorn's empty text/plain 403), and the connection closes after it:
    a request pipelined behind it in the same write is gone with the parser's upgrade, and one on
    a connection kept after a CONNECT got 400 "Invalid HTTP request"."""
    url, _ = edge_server
    with connect(url) as sock:
        sock.sendall((head + "GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n").encode())
        data, closed, waited = until_closed(sock, 10)
    assert closed and waited < 5, (waited, data[:300])
    assert data.count(b"HTTP/1.1 ") == 1, data[:600]
    got, answer = status_and_body(data)
    assert got == status, data[:300]
    assert b"application/json" in data.partition(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in data.partition(b"\r\n\r\n")[0].lower().split(b"\r\n")
    assert answer == {"status": "ok"} if status == 200 else answer["code"] == "method_not_allowed"


# ------------------------------------------------------------------- content codings (415)
@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", lambda body: body),
        ("x-unheard-of", lambda body: body),
        ("identity, gzip", gzip.compress),
    ],
    ids=["gzip", "deflate", "br", "unknown", "identity-then-gzip"],
)
def test_a_compressed_body_gets_415_naming_the_coding(
    edge_server: tuple[str, int], coding: str, compress: Callable[[bytes], bytes]
) -> None:
    """A gzip body was read as JSON: 400 "There was an error parsing the body", and a body
    under a coding the service does not know was read as if it had none (a 200 for bytes that
    claim to be something else). Now 415 with the coding named and Accept-Encoding: identity."""
    url, _ = edge_server
    r = httpx.post(
        f"{url}/v1/embeddings",
        content=compress(EMBED_BODY),
        headers={"content-type": "application/json", "content-encoding": coding},
        timeout=10,
    )
    assert r.status_code == 415, r.text
    assert r.json()["code"] == "unsupported_media_type"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "Content-Encoding" in r.json()["detail"] and coding.split(", ")[-1] in r.json()["detail"]
    assert r.headers["accept-encoding"] == "identity"
    # Uncompressed, said or not: served; a coding named on a request with no body: ignored.
    for said in ({"content-encoding": "identity"}, {}):
        plain = httpx.post(
            f"{url}/v1/embeddings",
            content=EMBED_BODY,
            headers={"content-type": "application/json", **said},
            timeout=10,
        )
        assert plain.status_code == 200, plain.text
    bodiless = httpx.get(f"{url}/healthz", headers={"content-encoding": "gzip"}, timeout=10)
    assert bodiless.status_code == 200


def test_a_transfer_coding_before_chunked_gets_415(edge_server: tuple[str, int]) -> None:
    """`Transfer-Encoding: gzip, chunked`: the parser takes `chunked` off and left the gzip on the
    body, which the app read as JSON."""
    url, _ = edge_server
    packed = gzip.compress(EMBED_BODY)
    with connect(url) as sock:
        sock.sendall(
            embed_head("transfer-encoding: gzip, chunked")
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
        )
        status, body = status_and_body(read_response(sock))
    assert status == 415, body
    assert body["code"] == "unsupported_media_type"
    assert "Transfer-Encoding: gzip" in body["detail"]


# ------------------------------------------------------------------ bodies and queue (413)
def test_a_chunked_body_over_the_limit_is_413(edge_server: tuple[str, int]) -> None:
    url, _ = edge_server

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield b'{"model": "' + JOSE.encode() + b'", "input": ["'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"]}'

    r = httpx.post(
        f"{url}/v1/embeddings",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large"
    assert "MAX_BODY_BYTES" in r.json()["detail"]
    # The same body, declared by Content-Length: the same answer.
    declared = httpx.post(f"{url}/v1/embeddings", content=b"".join(chunks()), timeout=30)
    assert declared.status_code == 413 and declared.json() == r.json()


def test_a_request_the_queue_could_never_hold_is_413(edge_server: tuple[str, int]) -> None:
    url, _ = edge_server
    texts = ["酒店很好", "手机坏了", "这本书不错", "服务太差"]
    fits = httpx.post(f"{url}/v1/embeddings", json={"model": JOSE, "input": texts}, timeout=30)
    assert fits.status_code == 200, fits.text
    r = httpx.post(
        f"{url}/v1/embeddings", json={"model": JOSE, "input": texts + texts[:1]}, timeout=30
    )
    assert r.status_code == 413, r.text
    assert "retry-after" not in r.headers  # not "come back later": it never fits
    assert r.json()["code"] == "payload_too_large"
    assert f"MAX_QUEUE={MAX_QUEUE}" in r.json()["detail"]


# --------------------------------------------------------------------------- exit status
@pytest.mark.parametrize(
    ("drain_s", "signals"),
    [("0", 1), ("1", 1), ("30", 2)],
    ids=["no-drain", "drain", "second-sigterm-skips-drain"],
)
def test_sigterm_exits_0_after_the_graceful_shutdown(
    tmp_path: Path, drain_s: str, signals: int
) -> None:
    (tmp_path / "store").mkdir()
    with live_server_process(tmp_path / "store", DRAIN_S=drain_s) as (url, proc):
        for sent in range(1, signals + 1):
            proc.send_signal(signal.SIGTERM)
            if sent < signals:  # the next signal once this one is handled: the drain has begun
                give_up = time.monotonic() + 30
                while httpx.get(f"{url}/readyz", timeout=5).status_code != 503:
                    assert time.monotonic() < give_up, "readiness still on after SIGTERM"
                    time.sleep(0.05)
        # 143 in a shell ("make: *** Error 143") would read as a failure.
        assert proc.wait(timeout=60) == 0
