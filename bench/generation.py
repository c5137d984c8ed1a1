"""Tokens per second of /v1/generate, continuous batching vs one request at a time, side by side.

    .venv/bin/python bench/generation.py --store model_store --model demo-cln

Starts two servers on 127.0.0.1 from the same store: one decoding up to MAX_BATCH_SIZE rows together
(continuous batching), one with MAX_BATCH_SIZE=1 (requests decode one after another). For each
concurrency level it runs the same closed loop of streamed requests against each in turn
(alternating rounds, median round reported, so that noise on this shared machine hits both alike).
Every run is bounded by a request count and a time limit. Tokens are counted from each sample's
last chunk; time to first token is from sending the request to its first chunk. With `--no-stream`
the requests are plain JSON (one response with the whole text), which measures decoding without
the per-token Server-Sent Events that the server writes and the load generator, on the same cores,
parses; time to first token is then not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.live_server import live_server  # noqa: E402


async def streamed(client: httpx.AsyncClient, url: str, body: dict) -> tuple[float, float, int]:
    """(time to first chunk, total time, tokens) of one streamed request."""
    started = time.monotonic()
    first = None
    tokens = 0
    async with client.stream("POST", f"{url}/v1/generate", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {await r.aread()!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if first is None:
                first = time.monotonic() - started
            chunk = json.loads(line.removeprefix("data: "))
            if chunk["finish_reason"] is not None:
                tokens += chunk["tokens"]
    return first or 0.0, time.monotonic() - started, tokens


async def plain(client: httpx.AsyncClient, url: str, body: dict) -> tuple[float, float, int]:
    """(nan, total time, tokens) of one request answered in one JSON body."""
    started = time.monotonic()
    r = await client.post(f"{url}/v1/generate", json={**body, "stream": False})
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.text}")
    tokens = sum(sample["tokens"] for sample in r.json()["samples"])
    return float("nan"), time.monotonic() - started, tokens


async def closed_loop(
    url: str, model: str, label: str, concurrency: int, requests: int, max_seconds: float,
    max_new_tokens: int, stream: bool = True,
) -> dict[str, float]:  # fmt: skip
    ttft: list[float] = []
    tokens = 0
    errors = 0
    sent = 0
    end = time.monotonic() + max_seconds

    async def user(client: httpx.AsyncClient) -> None:
        nonlocal sent, errors, tokens
        while sent < requests and time.monotonic() < end:
            sent += 1
            body = {"model": model, "condition": {"label": label}, "seed": sent,
                    "max_new_tokens": max_new_tokens, "stream": True}  # fmt: skip
            try:
                first, _, count = await (streamed if stream else plain)(client, url, body)
            except (RuntimeError, httpx.HTTPError):
                errors += 1
                continue
            ttft.append(first)
            tokens += count

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(user(client) for _ in range(concurrency)))
        wall = time.monotonic() - started
    q = statistics.quantiles(ttft, n=100) if len(ttft) >= 2 else [ttft[0] if ttft else 0.0] * 99
    return {"tps": tokens / wall, "requests": len(ttft), "ttft50": q[49] * 1000,
            "ttft95": q[94] * 1000, "errors": errors}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--label", default=None, help="condition label (default: the first)")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=None, help="per run (default 3 x level)")
    parser.add_argument("--max-seconds", type=float, default=15, help="per run, at most")
    parser.add_argument("--batch-size", default="64")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per level")
    parser.add_argument(
        "--no-stream", dest="stream", action="store_false", help="plain JSON responses"
    )
    args = parser.parse_args()

    versions = sorted((args.store / args.model).iterdir(), key=lambda p: int(p.name))
    manifest = json.loads((versions[-1] / "manifest.json").read_text(encoding="utf-8"))
    label = args.label or manifest["labels"][0]
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = []
    env = {"MAX_NEW_TOKENS": str(args.max_new_tokens), "MAX_QUEUE": "4096"}
    with (
        live_server(args.store, MAX_BATCH_SIZE=args.batch_size, **env) as batched,
        live_server(args.store, MAX_BATCH_SIZE="1", **env) as single,
    ):
        for c in levels:
            runs: dict[str, list[dict[str, float]]] = {"batched": [], "single": []}
            for _ in range(args.rounds):
                for key, url in (("batched", batched), ("single", single)):
                    runs[key].append(asyncio.run(closed_loop(
                        url, args.model, label, c, args.requests or 3 * c, args.max_seconds,
                        args.max_new_tokens, args.stream,
                    )))  # fmt: skip
            a, b = (sorted(runs[k], key=lambda r: r["tps"])[len(runs[k]) // 2] for k in runs)
            rows.append((c, a, b))
            print(f"concurrency {c}: batched {a['tps']:.0f} tok/s, one at a time "
                  f"{b['tps']:.0f} tok/s", file=sys.stderr)  # fmt: skip

    print(
        f"\n/v1/generate, model {args.model} ({manifest['config'].get('hidden_size')} wide, "
        f"{manifest['config'].get('num_layers')} layers), up to {args.max_new_tokens} new tokens "
        f"per request, {'streamed' if args.stream else 'plain JSON'}; "
        f"MAX_BATCH_SIZE={args.batch_size} vs 1, median of {args.rounds} "
        f"alternating rounds, {os.cpu_count()} CPUs shared by server and load generator\n"
    )
    print("| concurrency | batched tok/s | TTFT p50 ms | TTFT p95 ms | one-at-a-time tok/s "
          "| TTFT p50 ms | TTFT p95 ms | throughput ratio | errors |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, a, b in rows:
        ratio = a["tps"] / b["tps"] if b["tps"] else float("nan")
        print(
            f"| {c} | {a['tps']:.0f} | {a['ttft50']:.0f} | {a['ttft95']:.0f} | {b['tps']:.0f} "
            f"| {b['ttft50']:.0f} | {b['ttft95']:.0f} | {ratio:.2f}x "
            f"| {int(a['errors'] + b['errors'])} |"
        )


if __name__ == "__main__":
    main()
