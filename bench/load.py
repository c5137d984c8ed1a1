"""Closed-loop load on /v1/embeddings, /v1/qa or /v1/density/score: batching vs MAX_BATCH_SIZE=1.

    .venv/bin/python bench/load.py --store model_store --model demo-jose
    .venv/bin/python bench/load.py --endpoint qa --store model_store --model demo-qa
    .venv/bin/python bench/load.py --endpoint density --store model_store --model demo-digits

(`density` sends rows of scikit-learn's 8x8 digits, so it needs a 64-dimensional model.)
`--plot docs/img/x.png` also draws throughput and p50/p95/p99 latency against concurrency.

Starts two servers on 127.0.0.1 from the same store (one batching, one with MAX_BATCH_SIZE=1) and,
for each concurrency level, runs the same closed loop against each in turn (interleaved, so that
noise on this shared machine hits both alike). Every run is bounded by a request count and a time
limit. Prints a markdown table of throughput, p50/p95/p99 latency, and the ratio batched/unbatched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.live_server import live_server  # noqa: E402

SENTENCES = [
    "这家酒店的服务很好，房间也很干净",
    "质量太差了，用了两天就坏了",
    "物流很快，包装完好，非常满意",
    "客服态度恶劣，再也不会买了",
    "性价比很高，推荐大家购买",
    "the room was clean and the staff were friendly",
    "书的内容很有意思，孩子很喜欢",
    "屏幕有坏点，退货很麻烦",
]


QA_QUESTIONS = [
    ("张伟住在哪里？", ["张伟住在北京。张伟的职业是医生。", "李娜住在上海。李娜的职业是教师。"]),
    ("李娜的职业是什么？", ["李娜住在上海。李娜的职业是教师。"]),
    ("王芳多大了？", ["王芳今年三十岁。王芳住在广州。", "张伟住在北京。"]),
]


DIGITS: list[list[float]] = []


def digits_rows() -> list[list[float]]:
    from sklearn.datasets import load_digits

    return load_digits().data.tolist()  # type: ignore[no-any-return]


def request_body(endpoint: str, model: str, rng: random.Random, texts: int) -> tuple[str, dict]:
    if endpoint == "density":
        rows = rng.sample(DIGITS, texts)
        return "/v1/density/score", {"model": model, "inputs": rows}
    if endpoint == "qa":
        question, passages = rng.choice(QA_QUESTIONS)
        return "/v1/qa", {"model": model, "question": question, "passages": passages}
    return "/v1/embeddings", {"model": model, "input": rng.sample(SENTENCES, texts)}


class KeepAliveConnection:
    """One HTTP/1.1 keep-alive connection that POSTs JSON and reads Content-Length answers.

    The load generator shares the server's cores, so what it spends per request is taken from the
    server: httpx's AsyncClient costs about 2 ms of CPU per request here, this about a tenth of
    that. It reads only what the service sends (Content-Length bodies, no chunking).
    """

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        # A base path (an application's route prefix behind a proxy) goes before every path.
        self.prefix = parts.path.rstrip("/")
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: dict) -> int:
        """The response's status code (its body is read and dropped)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        data = json.dumps(body).encode()
        writer.write(
            f"POST {self.prefix}{path} HTTP/1.1\r\nhost: {self.host}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked responses are not read by this load generator")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def closed_loop(
    url: str,
    endpoint: str,
    model: str,
    concurrency: int,
    requests: int,
    max_seconds: float,
    texts_per_request: int,
    client: str = "raw",
) -> dict[str, float]:
    """`concurrency` callers, each sending its next request when its last one is answered.

    `client`: "raw" (one `KeepAliveConnection` per caller) or "httpx" (one pooled AsyncClient).
    The result holds this process's CPU time per answered request (`client_cpu_ms`).
    """
    latencies: list[float] = []
    errors = 0
    sent = 0
    rng = random.Random(0)
    end = time.monotonic() + max_seconds

    async def user(post: Callable[[str, dict], Awaitable[int]]) -> None:
        nonlocal sent, errors
        while sent < requests and time.monotonic() < end:
            sent += 1
            path, body = request_body(endpoint, model, rng, texts_per_request)
            started = time.monotonic()
            status = await post(path, body)
            if status == 200:
                latencies.append(time.monotonic() - started)
            else:
                errors += 1

    cpu = time.process_time()
    started = time.monotonic()
    if client == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as pool:

            async def post(path: str, body: dict) -> int:
                return (await pool.post(path, json=body)).status_code

            started = time.monotonic()
            await asyncio.gather(*(user(post) for _ in range(concurrency)))
            wall = time.monotonic() - started
    else:
        connections = [KeepAliveConnection(url) for _ in range(concurrency)]
        try:
            await asyncio.gather(*(user(c.post) for c in connections))
            wall = time.monotonic() - started
        finally:
            for c in connections:
                await c.close()
    cpu_ms = (time.process_time() - cpu) * 1000
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return {
        "rps": len(latencies) / wall,
        "answered": len(latencies),
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
        "errors": errors,
        "client_cpu_ms": cpu_ms / max(1, len(latencies)),
    }


def add_closed_loop_args(parser: argparse.ArgumentParser, concurrency: str) -> None:
    """The options of a `closed_loop` bench: store, model, endpoint, callers, bounds, client."""
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--endpoint", choices=["embeddings", "qa", "density"], default="embeddings")
    parser.add_argument("--concurrency", default=concurrency)
    # Enough that a run is mostly steady state: in a closed loop the last `concurrency` requests
    # drain in under-filled batches, which a short run over-weights.
    parser.add_argument("--requests", type=int, default=2000, help="per run, at most")
    parser.add_argument("--max-seconds", type=float, default=8, help="per run, at most")
    parser.add_argument(
        "--texts-per-request", type=int, default=1, help="texts (or density rows) per request"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per level")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: keep-alive sockets (cheap) or httpx (about 2 ms CPU/request)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_closed_loop_args(parser, concurrency="1,2,4,8,16,32,64")
    parser.add_argument("--batch-size", default="32")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of the table")
    args = parser.parse_args()

    if args.endpoint == "density":
        DIGITS.extend(digits_rows())
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = []
    with (
        live_server(args.store, MAX_BATCH_SIZE=args.batch_size) as batched,
        live_server(args.store, MAX_BATCH_SIZE="1") as single,
    ):
        for c in levels:
            runs: dict[str, list[dict[str, float]]] = {"batched": [], "single": []}
            # Alternate the two servers round by round; report each one's median round.
            for _ in range(args.rounds):
                for key, url in (("batched", batched), ("single", single)):
                    runs[key].append(
                        asyncio.run(
                            closed_loop(
                                url,
                                args.endpoint,
                                args.model,
                                c,
                                args.requests,
                                args.max_seconds,
                                args.texts_per_request,
                                args.client,
                            )
                        )
                    )
            a, b = (sorted(runs[k], key=lambda r: r["rps"])[len(runs[k]) // 2] for k in runs)
            rows.append((c, a, b))
            print(
                f"concurrency {c}: batched {a['rps']:.0f} req/s, unbatched {b['rps']:.0f} req/s",
                file=sys.stderr,
            )

    unit = {
        "embeddings": f"{args.texts_per_request} text(s)",
        "qa": "one question",
        "density": f"{args.texts_per_request} digit row(s), series log-det",
    }[args.endpoint]
    path = request_body(args.endpoint, args.model, random.Random(0), 1)[0]
    print(
        f"\n{path}, model {args.model}, {unit} per request, "
        f"MAX_BATCH_SIZE={args.batch_size} vs 1, median of {args.rounds} alternating rounds, "
        f"{os.cpu_count()} CPUs shared by server and load generator ({args.client} client)\n"
    )
    print(
        "| concurrency | batched req/s | p50 ms | p95 ms | p99 ms | unbatched req/s | p50 ms "
        "| p95 ms | p99 ms | throughput ratio | errors | load generator CPU ms/request |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, a, b in rows:
        ratio = a["rps"] / b["rps"] if b["rps"] else float("nan")
        print(
            f"| {c} | {a['rps']:.0f} | {a['p50']:.1f} | {a['p95']:.1f} | {a['p99']:.1f} "
            f"| {b['rps']:.0f} | {b['p50']:.1f} | {b['p95']:.1f} | {b['p99']:.1f} "
            f"| {ratio:.2f}x | {int(a['errors'] + b['errors'])} "
            f"| {a['client_cpu_ms']:.2f} / {b['client_cpu_ms']:.2f} |"
        )
    if args.plot is not None:
        plot(args.plot, f"{path}, {args.model}, {unit} per request", rows)


def plot(out: Path, title: str, rows: list[tuple[int, dict, dict]]) -> None:
    """Throughput, and p50/p95/p99 latency, against concurrency: batched and MAX_BATCH_SIZE=1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [c for c, _, _ in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for index, (label, color) in enumerate(
        (("batched", "tab:blue"), ("MAX_BATCH_SIZE=1", "tab:red"))
    ):
        runs = [r[1 + index] for r in rows]
        left.plot(levels, [r["rps"] for r in runs], "o-", color=color, label=label)
        for quantile, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            right.plot(levels, [r[quantile] for r in runs], style, color=color,
                       label=f"{label} {quantile}")  # fmt: skip
    for axis, ylabel in ((left, "requests/s"), (right, "latency, ms")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(c) for c in levels])
        axis.set_xlabel("concurrent callers")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    right.set_yscale("log")
    left.legend()
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
