"""The service's throughput against the ceiling of the same SavedModel called in process.

    .venv/bin/python bench/ceiling.py --store model_store --model demo-jose
    .venv/bin/python bench/ceiling.py --store model_store --model demo-qa --endpoint qa
    .venv/bin/python bench/ceiling.py --store model_store --model demo-digits --endpoint density

In one run: the model's runtime (what the server drives) loaded in this process and called on
full batches of prepared requests, back to back: as many as the server's batcher puts in one call,
`--batch-size` rows, a question taking one row per passage and beam (requests per second with no
HTTP, no JSON, no queue: what HTTP and batching could at best reach); then the server started on
127.0.0.1 with `MAX_BATCH_SIZE` equal to that batch size, under the closed loop of
`bench/load.py` at several concurrencies, keeping the best. The ratio served / in process is how
much of the model's own speed reaches callers. Server and load generator share the machine's
cores, which the in-process run has to itself; so the CPU time the server process spends per
request (from /proc, the load generator's excluded) is reported beside the in-process CPU time per
request, which says what the HTTP stack itself costs; and the load generator's own CPU time per
request (`--client raw`, the default, costs about a tenth of httpx's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.load import DIGITS, closed_loop, digits_rows, request_body  # noqa: E402
from service.app import GC_GEN0_THRESHOLD  # noqa: E402
from service.registry import default_runtime_factory  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.live_server import live_server_process  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one when pid is None)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def prepared_items(runtime: Any, endpoint: str, model: str, count: int) -> list[Any]:
    """`count` requests as the routes prepare them (the same bodies `bench/load.py` sends)."""
    rng = random.Random(0)
    items = []
    for _ in range(count):
        _, body = request_body(endpoint, model, rng, 1)
        if endpoint == "embeddings":
            items.append(runtime.prepare(body["input"][0], None))
        elif endpoint == "qa":
            items.append(runtime.prepare(body["question"], body["passages"],
                                         max_answer_tokens=None, beam_size=None,
                                         extractive=False))  # fmt: skip
        else:
            items.append(runtime.prepare(body["inputs"], "series"))
    return items


def in_process_rps(
    store: Path, model: str, endpoint: str, batch: int, seconds: float
) -> tuple[float, float, int]:
    """(requests/s, CPU ms per request, requests per call) of full batches called back to back."""
    version = max((store / model).iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
    settings = Settings(model_store=store, max_batch_size=batch)
    runtime = default_runtime_factory(model, int(version.name), version, settings)
    runtime.load()
    runtime.warmup()
    # The server's collector setting (service.app), so that neither side pays for collections
    # the other is spared.
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    items = batch_as_served(prepared_items(runtime, endpoint, model, batch), settings)
    runtime.run_batch(items)
    rates, cpu_ms = [], []
    for _ in range(3):
        calls, started, cpu = 0, time.perf_counter(), cpu_seconds()
        while time.perf_counter() - started < seconds / 3:
            runtime.run_batch(items)
            calls += 1
        rates.append(calls * len(items) / (time.perf_counter() - started))
        cpu_ms.append((cpu_seconds() - cpu) * 1000 / (calls * len(items)))
    return statistics.median(rates), statistics.median(cpu_ms), len(items)


def rows_and_tokens(item: Any) -> tuple[int, int]:
    """What the routes tell the batcher an item costs: (model rows, longest row in tokens)."""
    if hasattr(item, "longest_prefix"):  # a question: passages x beams rows
        return item.rows, item.longest_prefix
    if hasattr(item, "count"):  # density rows
        return item.count, 1
    return 1, item.tokens  # a text


def batch_as_served(items: list[Any], settings: Settings) -> list[Any]:
    """The leading requests that fit one batch under the batcher's own limits.

    MAX_BATCH_SIZE counts model rows, not requests: a question over two passages takes two rows
    (times the beam), so 32 questions would be a larger call than the server ever makes.
    """
    batch: list[Any] = []
    rows, longest = 0, 0
    for item in items:
        item_rows, item_tokens = rows_and_tokens(item)
        grown_rows, grown_longest = rows + item_rows, max(longest, item_tokens)
        if batch and (
            grown_rows > settings.max_batch_size
            or grown_rows * grown_longest > settings.max_batch_tokens
        ):
            break
        batch.append(item)
        rows, longest = grown_rows, grown_longest
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--endpoint", choices=["embeddings", "qa", "density"], default="embeddings")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", default="16,32,64,128")
    # Enough requests that a run is mostly steady state: in a closed loop the last `concurrency`
    # requests drain in under-filled batches (at 600 requests that tail was a tenth of a run).
    parser.add_argument("--requests", type=int, default=4000, help="per served run, at most")
    parser.add_argument("--seconds", type=float, default=8, help="per run, at most")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator")
    args = parser.parse_args()
    if args.endpoint == "density":
        DIGITS.extend(digits_rows())

    ceiling, ceiling_cpu, per_call = in_process_rps(
        args.store, args.model, args.endpoint, args.batch_size, args.seconds
    )
    print(
        f"in process: {ceiling:.0f} requests/s, {per_call} requests per call "
        f"({args.batch_size} rows at most)",
        file=sys.stderr,
    )
    served = {}
    store, batch = args.store, str(args.batch_size)
    with live_server_process(store, MAX_BATCH_SIZE=batch) as (url, proc):
        for c in (int(c) for c in args.concurrency.split(",")):
            cpu = cpu_seconds(proc.pid)
            run = asyncio.run(closed_loop(url, args.endpoint, args.model, c, args.requests,
                                          args.seconds, 1, args.client))  # fmt: skip
            run["cpu_ms"] = (cpu_seconds(proc.pid) - cpu) * 1000 / max(1.0, run["answered"])
            served[c] = run
            print(f"served at {c}: {run['rps']:.0f} requests/s", file=sys.stderr)
    best = max(served, key=lambda c: served[c]["rps"])
    path = request_body(args.endpoint, args.model, random.Random(0), 1)[0]
    print(
        f"\n{path}, model {args.model}, one input per request, batch {args.batch_size}, "
        f"{os.cpu_count()} CPUs, {args.client} client\n"
    )
    print(
        "| in process req/s | requests per call in process "
        "| served req/s (best) | at concurrency | p50 ms | p99 ms "
        "| throughput ratio | CPU ms/request in process | CPU ms/request of the server "
        "| CPU ms/request of the load generator |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    b = served[best]
    print(
        f"| {ceiling:.0f} | {per_call} | {b['rps']:.0f} | {best} | {b['p50']:.1f} | {b['p99']:.1f} "
        f"| {b['rps'] / ceiling:.2f} | {ceiling_cpu:.2f} | {b['cpu_ms']:.2f} "
        f"| {b['client_cpu_ms']:.2f} |"
    )


if __name__ == "__main__":
    main()
