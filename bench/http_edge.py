"""Throughput with the request-head limits (MAX_HEADER_BYTES, MAX_HEADER_COUNT, HEADER_TIMEOUT_S)
against stock uvicorn (httptools, no limits), side by side.

    .venv/bin/python bench/http_edge.py --store model_store --model demo-jose

Starts two servers on 127.0.0.1 from the same store: `python -m service` as shipped, and the same
service on uvicorn's stock httptools protocol (`--serve-stock`, only for this comparison). For
each workload runs the same closed loop against each in turn, alternating round by round (noise
on this shared machine hits both alike). It prints each one's median throughput, the median and
quartiles of the per-round ratio (limits / stock, the two runs of one round side by side), and
the server process's CPU time per answered request (from /proc, less sensitive than throughput to
what else the machine runs):

- GET /healthz with a browser-sized head (12 fields, about 700 bytes): the cheapest request, so
  what the per-connection and per-field bookkeeping costs shows most here;
- POST /v1/embeddings of one text (bench/load.py's closed loop): a request that does work.

Then, in this process and free of the network and of the other processes' noise (CPU time of
this thread, not wall time), the same GET driven through a keep-alive connection of each
protocol class with a stand-in transport: into an app that answers "ok" at once (the protocol's
own cost, where the limits' share is largest) and into the service's app (/healthz through
FastAPI and the middleware, as served).

Every run is bounded by a request count and a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.load import closed_loop  # noqa: E402
from tests.live_server import live_server_process  # noqa: E402

# What a browser or an SDK sends, give or take: 12 fields, about 700 bytes of head.
HEAD_FIELDS = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "zh-CN,zh;q=0.9,en;q=0.8"),
    ("accept-encoding", "gzip, deflate, br"),
    ("cache-control", "no-cache"),
    ("pragma", "no-cache"),
    ("x-request-id", "5f2b8c1e-4d3a-4b7f-9e61-0c2d8a7b3f10"),
    ("x-forwarded-for", "203.0.113.7, 198.51.100.23"),
    ("x-forwarded-proto", "https"),
    ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("cookie", "session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl; theme=dark"),
]  # fmt: skip


def serve_stock() -> None:
    """The service exactly as `python -m service`, but on uvicorn's stock httptools protocol."""
    from service.__main__ import DrainingServer, server_config
    from service.app import create_app
    from service.settings import get_settings

    settings = get_settings()
    app = create_app(settings)
    config = server_config(app, settings, http="httptools")
    DrainingServer(config, app.state.registry, settings.drain_s).run()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(store: Path, stock: bool) -> Iterator[tuple[str, int]]:
    command = ("bench/http_edge.py", "--serve-stock") if stock else ("-m", "service")
    with live_server_process(store, command=command) as (url, proc):
        yield url, proc.pid


async def get_loop(
    url: str, concurrency: int, requests: int, max_seconds: float
) -> dict[str, float]:
    """`concurrency` keep-alive connections, each GETting /healthz with HEAD_FIELDS in turn."""
    parts = urllib.parse.urlsplit(url)
    head = "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in HEAD_FIELDS
    )
    request = (head + "\r\n").encode()
    latencies: list[float] = []
    sent = errors = 0
    end = time.monotonic() + max_seconds

    async def user() -> None:
        nonlocal sent, errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while sent < requests and time.monotonic() < end:
                sent += 1
                started = time.monotonic()
                writer.write(request)
                response = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in response.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if response.startswith(b"HTTP/1.1 200"):
                    latencies.append(time.monotonic() - started)
                else:
                    errors += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    wall = time.monotonic() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return {"rps": len(latencies) / wall, "answered": len(latencies), "p50": q[49] * 1000,
            "p99": q[98] * 1000, "errors": errors}  # fmt: skip


class _Transport(asyncio.Transport):
    """A connection's transport that drops what is written (the protocol-only rounds)."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

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


async def _ok(scope: dict, receive: object, send: Callable[[dict], Awaitable[None]]) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


async def _protocol_round(protocol: type[asyncio.Protocol], app: object, requests: int) -> float:
    """CPU microseconds per request through one keep-alive connection of `protocol`."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(app, http=protocol, lifespan="off", log_level="warning")
    config.load()
    state = ServerState()
    connection = protocol(config=config, server_state=state, app_state={})  # type: ignore[call-arg]
    transport = _Transport()
    connection.connection_made(transport)
    request = (
        "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in HEAD_FIELDS)
        + "\r\n"
    ).encode()
    started = time.thread_time()
    for _ in range(requests):
        connection.data_received(request)  # type: ignore[attr-defined]
        while state.tasks:  # the request's task, until it has answered
            await asyncio.sleep(0)
    elapsed = time.thread_time() - started
    assert not transport.closing and state.total_requests == requests
    connection.connection_lost(None)
    return elapsed / requests * 1e6


def in_process(app: object, rounds: int, requests: int) -> tuple[float, float]:
    """Median CPU microseconds per request: (with the limits, stock httptools)."""
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from service.http_protocol import HeadLimits, bounded_http_protocol

    bounded = bounded_http_protocol(HeadLimits(32768, 100, 60.0, 60.0, 60.0))
    times: dict[type, list[float]] = {bounded: [], HttpToolsProtocol: []}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for round_ in range(rounds):
            for protocol in list(times)[:: 1 if round_ % 2 else -1]:
                times[protocol].append(runner.run(_protocol_round(protocol, app, requests)))
    return statistics.median(times[bounded]), statistics.median(times[HttpToolsProtocol])


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    if sys.argv[1:] == ["--serve-stock"]:
        serve_stock()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--model", required=True, help="an embedding model of the store")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--requests", type=int, default=4000, help="per run, at most")
    parser.add_argument("--max-seconds", type=float, default=2, help="per run, at most")
    parser.add_argument("--rounds", type=int, default=11, help="alternating runs per level")
    parser.add_argument(
        "--in-process-requests", type=int, default=2000, help="per in-process round"
    )
    args = parser.parse_args()

    # The service's app, never started (no lifespan: no model loads); /healthz needs none.
    os.environ["MODEL_STORE"] = str(args.store)
    from service.app import create_app

    in_process_rows = [
        (name, *in_process(app, 2 * args.rounds, args.in_process_requests))
        for name, app in (("protocol alone (app answers at once)", _ok),
                          ("service app, GET /healthz", create_app()))
    ]  # fmt: skip

    workloads = {
        "GET /healthz": lambda url, c: get_loop(url, c, args.requests, args.max_seconds),
        "POST /v1/embeddings": lambda url, c: closed_loop(
            url, "embeddings", args.model, c, args.requests, args.max_seconds, 1
        ),
    }
    rows = []
    with server(args.store, stock=False) as bounded, server(args.store, stock=True) as stock:
        for name, run in workloads.items():
            for c in (int(level) for level in args.concurrency.split(",")):
                runs: dict[str, list[dict[str, float]]] = {"bounded": [], "stock": []}
                for round_ in range(args.rounds):
                    # Alternate which goes first, too.
                    order = [("bounded", bounded), ("stock", stock)][:: 1 if round_ % 2 else -1]
                    for key, (url, pid) in order:
                        cpu = cpu_seconds(pid)
                        result = asyncio.run(run(url, c))
                        cpu = cpu_seconds(pid) - cpu
                        result["cpu_us"] = cpu / max(1, result["answered"]) * 1e6
                        runs[key].append(result)
                rows.append((name, c, runs["bounded"], runs["stock"]))
                limits_rps, stock_rps = median(runs["bounded"], "rps"), median(runs["stock"], "rps")
                print(f"{name} x{c}: limits {limits_rps:.0f} req/s, stock {stock_rps:.0f} req/s",
                      file=sys.stderr)  # fmt: skip

    print(
        f"\nRequest-head limits (32 KiB, 100 fields, 60 s) vs stock uvicorn httptools; model "
        f"{args.model}; {args.rounds} alternating rounds of at most {args.requests} requests / "
        f"{args.max_seconds:g} s each; {os.cpu_count()} CPUs shared by both servers and the load "
        "generator (and whatever else runs on the machine)\n"
    )
    print("| workload | callers | limits req/s | stock req/s "
          "| limits / stock, median of rounds [quartiles] "
          "| server CPU us/request, limits | stock | limits / stock | errors |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, c, a, b in rows:
        ratios = [x["rps"] / y["rps"] for x, y in zip(a, b, strict=True) if y["rps"]]
        q1, mid, q3 = statistics.quantiles(ratios, n=4)
        cpu_a, cpu_b = median(a, "cpu_us"), median(b, "cpu_us")
        errors = sum(int(r["errors"]) for r in a + b)
        print(
            f"| {name} | {c} | {median(a, 'rps'):.0f} | {median(b, 'rps'):.0f} "
            f"| {mid:.3f} [{q1:.2f}-{q3:.2f}] | {cpu_a:.0f} | {cpu_b:.0f} "
            f"| {cpu_b / cpu_a:.3f} | {errors} |"
        )
    print(
        f"\nIn process (uvloop; GET with a {len(HEAD_FIELDS) + 1}-field head; CPU time of the "
        f"thread, median of {2 * args.rounds} alternating rounds of {args.in_process_requests} "
        "requests)\n"
    )
    print(
        "| driven into | limits CPU us/request | stock CPU us/request | limits / stock throughput |"
    )
    print("|---|---:|---:|---:|")
    for name, bounded_us, stock_us in in_process_rows:
        print(f"| {name} | {bounded_us:.1f} | {stock_us:.1f} | {stock_us / bounded_us:.3f} |")


if __name__ == "__main__":
    main()
