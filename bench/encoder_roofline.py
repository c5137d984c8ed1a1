"""How much batching can give the BERT encoder on this CPU: its arithmetic rate against the peak.

    .venv/bin/python bench/encoder_roofline.py --store bench_store --model minilm

In one run, alternating rounds: the encoder's runtime (what the server drives) in process on one
sentence a call and on calls of 32 (the sentences `bench/load.py` sends, packed as the service
packs them), and XLA's float32 matrix product on this machine at the encoder's feed-forward shape
with 16 rows (one short sentence) and with 512 rows (32 of them), and on 2048 x 2048 x 2048 (the
machine's practical peak). The encoder's rate counts the multiply-adds of its dense layers and
attention over the token slots it computes, padding included (2 x (4H^2 + 2HI + 2LH) flops a slot
a layer). Batching cannot make a call faster than the peak, so peak / (rate at one sentence)
bounds what any batcher can give; the table puts the measured batch-32 / batch-1 ratio beside it.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.load import SENTENCES  # noqa: E402
from service.registry import default_runtime_factory  # noqa: E402
from service.settings import Settings  # noqa: E402


def encoder_flops(runtime: Any, shape: tuple[int, int]) -> float:
    """Multiply-adds x 2 of one call on `shape` (rows, length): dense layers and attention."""
    config = runtime.manifest["config"]["bert"]  # training.bert's manifest
    hidden, intermediate = int(config["hidden_size"]), int(config["intermediate_size"])
    layers = int(config["num_layers"])
    rows, length = shape
    per_slot = 4 * hidden * hidden + 2 * hidden * intermediate + 2 * length * hidden
    return 2.0 * per_slot * layers * rows * length


def timed(fn: Any, seconds: float) -> float:
    """Calls per second of fn() over about `seconds` (at least 3 calls)."""
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return calls / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("bench_store"))
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each")
    parser.add_argument("--seconds", type=float, default=2.0, help="per run")
    args = parser.parse_args()

    import tensorflow as tf

    version = max((args.store / args.model).iterdir(), key=lambda p: int(p.name))
    settings = Settings(model_store=args.store)
    runtime = default_runtime_factory(args.model, int(version.name), version, settings)
    runtime.load()
    runtime.warmup()
    rng = random.Random(0)
    batches = {
        size: [
            [runtime.prepare(rng.choice(SENTENCES), None) for _ in range(size)] for _ in range(8)
        ]  # fmt: skip
        for size in (1, 32)
    }
    hidden = int(runtime.manifest["config"]["bert"]["hidden_size"])
    intermediate = int(runtime.manifest["config"]["bert"]["intermediate_size"])

    def matmul(rows: int, inner: int, cols: int) -> tuple[Any, float]:
        a = tf.random.normal([rows, inner])
        b = tf.random.normal([inner, cols])
        product = tf.function(tf.linalg.matmul, jit_compile=True)
        product(a, b)
        return (lambda: product(a, b).numpy()), 2.0 * rows * inner * cols

    products = {
        f"16 x {hidden} x {intermediate} (one sentence)": matmul(16, hidden, intermediate),
        f"512 x {hidden} x {intermediate} (32 sentences)": matmul(512, hidden, intermediate),
        "2048 x 2048 x 2048 (peak)": matmul(2048, 2048, 2048),
    }
    rates: dict[str, list[float]] = {name: [] for name in [*map(str, batches), *products]}
    flops: dict[str, float] = {}
    for size, calls in batches.items():
        shapes = [runtime.call_shape([item.tokens for item in batch]) for batch in calls]
        flops[str(size)] = statistics.mean(encoder_flops(runtime, s) for s in shapes) / size
    for name, (_, work) in products.items():
        flops[name] = work
    for _ in range(args.rounds):
        for size, calls in batches.items():
            turns = itertools.cycle(calls)
            rate = timed(lambda t=turns: runtime.run_batch(next(t)), args.seconds)
            rates[str(size)].append(rate * size)  # sentences per second
        for name, (run, _) in products.items():
            rates[name].append(timed(run, args.seconds))
    gflops = {name: statistics.median(r) * flops[name] / 1e9 for name, r in rates.items()}
    peak = gflops["2048 x 2048 x 2048 (peak)"]

    print(
        f"\n{args.model} in process, TensorFlow {tf.__version__} (XLA), float32, "
        f"median of {args.rounds} alternating {args.seconds:g} s runs; sentences of "
        f"bench/load.py, packed as the service packs them\n"
    )
    print("| what | per second | GFLOP/s | share of the peak |")
    print("|---|---:|---:|---:|")
    for name in rates:
        label = f"encoder, {name} sentence(s) a call" if name in ("1", "32") else f"matmul {name}"
        unit = "sentences" if name in ("1", "32") else "products"
        rate = statistics.median(rates[name])
        print(f"| {label} | {rate:.0f} {unit} | {gflops[name]:.0f} | {gflops[name] / peak:.0%} |")
    measured = statistics.median(rates["32"]) / statistics.median(rates["1"])
    print(
        f"\nbatch 32 over batch 1 in process: {measured:.2f}x; the most any batching could give "
        f"at this machine's peak: {peak / gflops['1']:.2f}x"
    )


if __name__ == "__main__":
    main()
