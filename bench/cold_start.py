"""Cold start: seconds from `python -m service` to /readyz 200, and the process's resident memory.

    .venv/bin/python bench/cold_start.py --store model_store

Starts the service on 127.0.0.1 from the store several times, alternating WARMUP=true (every
batch-size and length bucket run once before a version serves, the default) and WARMUP=false, and
reports the median of each: time to the first /readyz 200, resident memory (VmRSS) then, and after
one request to every model (what a first caller pays without warm-up). Bounded by a time limit per
start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.live_server import ROOT, free_port, wait_ready  # noqa: E402

# One small request per task: what the first caller of each model sends.
FIRST_REQUESTS = {
    "embedding": ("/v1/embeddings", {"input": ["这本书很好看"]}),
    "qa": ("/v1/qa", {"question": "张伟住在哪里？", "passages": ["张伟住在北京。"]}),
    "generation": ("/v1/generate", {"condition": {"label": "?"}, "max_new_tokens": 8, "seed": 1}),
    "density": ("/v1/density/score", {"inputs": None}),
}


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_request(url: str, model: dict) -> tuple[str, dict]:
    path, body = FIRST_REQUESTS[model["task"]]
    body = {**body, "model": model["name"]}
    manifest = model.get("manifest") or {}
    if model["task"] == "generation":
        labels = manifest.get("labels")
        body["condition"] = (
            {"label": labels[0]} if labels else {"vector": [0.0] * manifest["condition_dim"]}
        )
    if model["task"] == "density":
        body["inputs"] = [[0.0] * manifest["input_dim"]]
    return path, body


def one_start(store: Path, warmup: bool, timeout_s: float) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "MODEL_STORE": str(store), "HOST": "127.0.0.1", "PORT": str(port),
           "POLL_INTERVAL_S": "0", "LOG_LEVEL": "warning", "TF_CPP_MIN_LOG_LEVEL": "2",
           "WARMUP": "true" if warmup else "false", "DRAIN_S": "0"}  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "service"], env=env, cwd=ROOT)
    try:
        wait_ready(url, proc, timeout_s, poll_s=0.05)
        ready_s = time.monotonic() - started
        ready_mb = resident_mb(proc.pid)
        models = httpx.get(f"{url}/v1/models", timeout=10).json()["data"]
        first_ms = []
        for model in models:
            path, body = first_request(url, model)
            sent = time.monotonic()
            r = httpx.post(f"{url}{path}", json=body, timeout=120)
            first_ms.append((time.monotonic() - sent) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"{model['name']}: {r.status_code} {r.text[:200]}")
        return {"ready_s": ready_s, "ready_mb": ready_mb, "served_mb": resident_mb(proc.pid),
                "first_ms": max(first_ms), "models": len(models)}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per start, at most")
    args = parser.parse_args()

    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for warmup in (True, False):
            runs[warmup].append(one_start(args.store, warmup, args.timeout))
            print(json.dumps({"warmup": warmup, **runs[warmup][-1]}), file=sys.stderr)

    def median(warmup: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[warmup])

    names = sorted(p.name for p in args.store.iterdir() if p.is_dir())
    print(
        f"\nCold start of `python -m service` with {runs[True][0]['models']:.0f} models "
        f"({', '.join(names)}), median of {args.rounds} alternating starts, {os.cpu_count()} CPUs\n"
    )
    print("| WARMUP | seconds to /readyz 200 | RSS at ready, MB | RSS after a request to each, MB "
          "| slowest first request, ms |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for warmup in (True, False):
        print(
            f"| {str(warmup).lower()} | {median(warmup, 'ready_s'):.1f} "
            f"| {median(warmup, 'ready_mb'):.0f} | {median(warmup, 'served_mb'):.0f} "
            f"| {median(warmup, 'first_ms'):.0f} |"
        )
    ratio = median(True, "ready_s") / median(False, "ready_s")
    print(f"\nwarm-up costs {ratio:.2f}x the start-up time without it")


if __name__ == "__main__":
    main()
