"""One endpoint's throughput on Ray Serve with 1 and 2 replicas, next to plain uvicorn, and the
proxy's overhead per request.

    .venv/bin/python bench/ray_serve.py --store model_store --model demo-jose
    .venv/bin/python bench/ray_serve.py --endpoint qa --store model_store --model demo-qa

Needs the `ray` extra (`pip install '.[ray]'`). Starts `python -m service` on 127.0.0.1 and a
local Ray instance whose proxy (also on 127.0.0.1) serves two applications of the same store:
`/one` with 1 replica and `/two` with 2. For each concurrency level the same closed loop as
bench/load.py runs against the three in turn, round after round (the median round is reported),
so that noise on this shared machine hits all alike. Every run is bounded in requests and time.

The proxy overhead is the difference of median latencies at concurrency 1 between Ray (1 replica)
and uvicorn: on `GET /healthz`, which does no model work, and on the endpoint itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.load import DIGITS, add_closed_loop_args, closed_loop, digits_rows  # noqa: E402
from tests.live_server import live_server, local_ray_serve  # noqa: E402


def wait_ready(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready within {timeout_s} s")


def health_p50_ms(url: str, count: int) -> float:
    """Median latency of `GET /healthz` over `count` sequential requests on one connection."""
    latencies = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get(f"{url}/healthz").raise_for_status()
            latencies.append(time.perf_counter() - started)
    return statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_closed_loop_args(parser, concurrency="1,4,16,32")
    args = parser.parse_args()

    from ray import serve

    from service.ray_app import RayServeSettings, kexue_deployment

    if args.endpoint == "density":
        DIGITS.extend(digits_rows())
    levels = [int(c) for c in args.concurrency.split(",")]
    store = str(args.store.resolve())
    # Ray's CPUs are scheduling tokens: 3 replicas of 1 "CPU" share this machine's cores as the
    # uvicorn process does.
    with local_ray_serve(num_cpus=4, MODEL_STORE=store, LOG_LEVEL="warning") as proxy:
        for name, replicas in (("one", 1), ("two", 2)):
            deployment = kexue_deployment(RayServeSettings(replicas=replicas))
            serve.run(deployment.bind(), name=name, route_prefix=f"/{name}")
        targets = {
            "ray, 1 replica": f"{proxy}/one",
            "ray, 2 replicas": f"{proxy}/two",
        }
        for url in targets.values():
            wait_ready(url)
        with live_server(args.store) as plain:
            targets = {"uvicorn": plain, **targets}
            health = {key: health_p50_ms(url, 200) for key, url in targets.items()}
            rows = []
            for c in levels:
                runs: dict[str, list[dict[str, float]]] = {key: [] for key in targets}
                for _ in range(args.rounds):
                    for key, url in targets.items():
                        result = asyncio.run(
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
                        runs[key].append(result)
                medians = {
                    key: sorted(r, key=lambda x: x["rps"])[len(r) // 2] for key, r in runs.items()
                }
                rows.append((c, medians))
                print(
                    f"concurrency {c}: "
                    + ", ".join(f"{k} {m['rps']:.0f} req/s" for k, m in medians.items()),
                    file=sys.stderr,
                )

    print(
        f"\n{args.endpoint}, model {args.model}, {args.texts_per_request} input(s) per request, "
        f"median of {args.rounds} rounds, {os.cpu_count()} CPUs shared by every server and the "
        "load generator\n"
    )
    print(
        "| concurrency | uvicorn req/s | p50 ms | Ray 1 replica req/s | p50 ms | Ray 2 replicas "
        "req/s | p50 ms | Ray 1 / uvicorn | Ray 2 / Ray 1 | errors |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, m in rows:
        u, one, two = m["uvicorn"], m["ray, 1 replica"], m["ray, 2 replicas"]
        errors = int(u["errors"] + one["errors"] + two["errors"])
        print(
            f"| {c} | {u['rps']:.0f} | {u['p50']:.1f} | {one['rps']:.0f} | {one['p50']:.1f} "
            f"| {two['rps']:.0f} | {two['p50']:.1f} | {one['rps'] / u['rps']:.2f}x "
            f"| {two['rps'] / one['rps']:.2f}x | {errors} |"
        )
    print(
        "\nProxy overhead per request (median latency at concurrency 1, Ray 1 replica − uvicorn):\n"
    )
    print("| request | uvicorn p50 ms | Ray p50 ms | overhead ms |")
    print("|---|---:|---:|---:|")
    print(
        f"| GET /healthz | {health['uvicorn']:.2f} | {health['ray, 1 replica']:.2f} "
        f"| {health['ray, 1 replica'] - health['uvicorn']:.2f} |"
    )
    if levels[0] == 1:
        u, one = rows[0][1]["uvicorn"], rows[0][1]["ray, 1 replica"]
        print(
            f"| {args.endpoint} | {u['p50']:.2f} | {one['p50']:.2f} | {one['p50'] - u['p50']:.2f} |"
        )


if __name__ == "__main__":
    main()
