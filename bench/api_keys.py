"""What checking an API key costs a request, in one process, side by side in alternating rounds.

    nice .venv/bin/python bench/api_keys.py --rounds 7 --calls 20000

1. `KeyRing.accepts` alone, microseconds a call: 1 key and 10 keys from API_KEYS, and 1 key from a
   settled API_KEYS_FILE (the `stat` a request costs on top), each against a good key.
2. A whole request through the ASGI stack in process (no sockets): a trivial app alone, and behind
   `RequireKey` with a good key, microseconds a request and keyed/open.
Each line prints the median round and the lowest and highest round; a shared machine's spread says
how much of a difference is noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from service.auth import KeyRing, RequireKey  # noqa: E402

KEY = "bench-key-0123456789abcdefghijklmnop"


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


async def trivial_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def request_us(app: Any, calls: int) -> float:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/embeddings",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {KEY}".encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def run() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / calls * 1e6

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    keys_file = folder / "keys.txt"
    keys_file.write_text(f"# bench\n{KEY}\n")
    settled = time.time() - 60  # older than SETTLE_S: only a stat per call
    os.utime(keys_file, (settled, settled))
    rings = {
        "1 key (API_KEYS)": KeyRing([KEY]),
        "10 keys (API_KEYS)": KeyRing([f"other-{i}" for i in range(9)] + [KEY]),
        "1 key (API_KEYS_FILE)": KeyRing(keys_file=keys_file),
    }
    stacks = {
        "open (no keys)": trivial_app,
        "keyed (1 key, file)": RequireKey(trivial_app, KeyRing(keys_file=keys_file), True),
    }
    ring_times: dict[str, list[float]] = {name: [] for name in rings}
    stack_times: dict[str, list[float]] = {name: [] for name in stacks}
    for _ in range(args.rounds):
        for name, ring in rings.items():
            assert ring.accepts(KEY)
            ring_times[name].append(per_call_us(lambda r=ring: r.accepts(KEY), args.calls))
        for name, app in stacks.items():
            stack_times[name].append(request_us(app, args.calls))

    def line(name: str, times: list[float]) -> str:
        return (
            f"  {name:24s} {statistics.median(times):7.2f} us "
            f"(rounds {min(times):.2f}-{max(times):.2f})"
        )

    print(f"KeyRing.accepts, a good key ({args.rounds} rounds x {args.calls} calls):")
    for name, times in ring_times.items():
        print(line(name, times))
    base = statistics.median(ring_times["1 key (API_KEYS)"])
    file_cost = statistics.median(ring_times["1 key (API_KEYS_FILE)"])
    print(f"  file/no file: {file_cost / base:.2f}x")
    print("A request through the ASGI stack in process (trivial app):")
    for name, times in stack_times.items():
        print(line(name, times))
    open_times, keyed_times = stack_times["open (no keys)"], stack_times["keyed (1 key, file)"]
    ratios = [k / o for o, k in zip(open_times, keyed_times, strict=True)]
    added = statistics.median(keyed_times) - statistics.median(open_times)
    print(
        f"  keyed/open: {statistics.median(ratios):.2f}x "
        f"(rounds {min(ratios):.2f}-{max(ratios):.2f}); the key check adds {added:.1f} us"
    )


if __name__ == "__main__":
    main()
