"""What JoSE's "basic" tokenizer (punctuation split off) costs against "whitespace" (`str.split`).

    nice .venv/bin/python bench/jose_tokenizer.py --concurrency 1,16 --rounds 5

Three parts, all on English reviews with punctuation and two JoSE versions that differ only in
their manifest's tokenizer (same word vectors; the vocabulary holds the words of both splittings;
random vectors, not trained: what is timed is the request path, not their quality):
1. `Tokenizer.tokenize` alone, microseconds a text, the two kinds timed in alternating rounds.
2. In one process, the runtime's request side (`prepare`: tokenise, look up, cut) a text, and the
   model call of a batch of 16 texts (fold-in), per version: what the splitting adds to a batch.
3. /v1/embeddings of one `python -m service` process serving both versions, closed loops against
   each in alternating rounds (bench/load.py's), each side's median round and basic/whitespace,
   with the lowest and highest per-round ratio (on a shared machine, the spread says how much of
   a difference is noise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import load  # noqa: E402
from models.jose.tokenizer import Tokenizer, basic_split_by_library  # noqa: E402
from tests.live_server import live_server  # noqa: E402
from tests.tiny_store import export_tiny_jose  # noqa: E402

REVIEWS = [
    "The room was clean, the staff were friendly, and breakfast was included.",
    "Terrible service: we waited 40 minutes, and nobody apologised.",
    "Great value for money! I'd stay here again, no question.",
    "The battery died after two days; the seller refused a refund.",
    "Fast delivery, well packed. The kids love it (so do I).",
    "Not as described. The colour is off, and the size runs small...",
    "Honestly? It's fine, nothing special, but it does the job.",
    "Five stars: quiet, central, spotless; the bed was very comfortable.",
    "The screen has a dead pixel, and returning it was a nightmare.",
    "Good book, well written; the ending, though, felt rushed.",
    "Customer support was rude. I will never order from them again!",
    "Lovely little cafe -- great coffee, friendly owner, fair prices.",
]
KINDS = ("whitespace", "basic")
DIM = 64  # a small model's word vectors; the fold-in's cost grows with it


def tokenize_cost(rounds: int, repeats: int) -> dict[str, float]:
    """Median over alternating rounds of microseconds a text, per tokenizer kind."""
    splitters = {kind: Tokenizer(kind).tokenize for kind in KINDS}
    # The library's way, which the basic tokenizer takes for text that is not plain ASCII.
    normalizer = Tokenizer("basic")._normalizer
    splitters["basic, library"] = lambda text: basic_split_by_library(normalizer, text)
    names = list(splitters)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        for kind in names if index % 2 == 0 else names[::-1]:
            tokenize = splitters[kind]
            started = time.perf_counter()
            for _ in range(repeats):
                for text in REVIEWS:
                    tokenize(text)
            runs[kind].append((time.perf_counter() - started) / (repeats * len(REVIEWS)) * 1e6)
    return {kind: statistics.median(values) for kind, values in runs.items()}


def request_side(store: Path, rounds: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Per kind: median microseconds of `prepare` a text, and milliseconds of a 16-text batch."""
    from service.runtimes.jose import JoseEmbeddingRuntime
    from service.settings import Settings

    settings = Settings(model_store=store)
    runtimes = {}
    for kind in KINDS:
        runtime = JoseEmbeddingRuntime(f"en-{kind}", 1, store / f"en-{kind}" / "1", settings)
        runtime.load()
        runtimes[kind] = runtime
    batch = (REVIEWS * 2)[:16]
    runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    for index in range(rounds):
        for kind in KINDS if index % 2 == 0 else KINDS[::-1]:
            runtime = runtimes[kind]
            started = time.perf_counter()
            for _ in range(repeats):
                for text in REVIEWS:
                    runtime.prepare(text, None)
            prepare_us = (time.perf_counter() - started) / (repeats * len(REVIEWS)) * 1e6
            items = [runtime.prepare(text, None) for text in batch]
            runtime.run_batch(items)
            started = time.perf_counter()
            for _ in range(10):
                runtime.run_batch(items)
            runs[kind].append((prepare_us, (time.perf_counter() - started) / 10 * 1e3))
    return {
        kind: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
        for kind, v in runs.items()
    }


def write_store(root: Path) -> Path:
    words = sorted({w for kind in KINDS for t in REVIEWS for w in Tokenizer(kind).tokenize(t)})
    for kind in KINDS:
        tokenizer = Tokenizer(kind).to_config()
        export_tiny_jose(root, f"en-{kind}", words, tokenizer, dim=DIM, seed=0)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per level")
    parser.add_argument("--requests", type=int, default=1000, help="per run, at most")
    parser.add_argument("--max-seconds", type=float, default=5, help="per run, at most")
    parser.add_argument("--tokenize-repeats", type=int, default=500)
    args = parser.parse_args()

    cost = tokenize_cost(args.rounds, args.tokenize_repeats)
    print(f"Tokenizer.tokenize, median of {args.rounds} alternating rounds, µs a review:\n")
    print("| whitespace | basic | basic, library path | basic / whitespace |")
    print("|---:|---:|---:|---:|")
    print(f"| {cost['whitespace']:.1f} | {cost['basic']:.1f} | {cost['basic, library']:.1f} | "
          f"{cost['basic'] / cost['whitespace']:.1f}x |\n")  # fmt: skip

    # bench/load.py's closed loop draws its texts from load.SENTENCES: English with punctuation.
    load.SENTENCES[:] = REVIEWS
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = []
    scratch = tempfile.TemporaryDirectory()
    store = write_store(Path(scratch.name))
    side = request_side(store, args.rounds, args.tokenize_repeats // 10)
    print("In one process, median of alternating rounds:\n")
    print("| tokenizer | prepare µs a text | fold-in of 16 texts, ms | 16 prepares / batch |")
    print("|---|---:|---:|---:|")
    for kind, (prepare_us, batch_ms) in side.items():
        print(f"| {kind} | {prepare_us:.0f} | {batch_ms:.1f} | "
              f"{16 * prepare_us / 1000 / batch_ms:.0%} |")  # fmt: skip
    print()
    with scratch, live_server(store) as url:
        for concurrency in levels:
            runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
            for index in range(args.rounds):
                for kind in KINDS if index % 2 == 0 else KINDS[::-1]:
                    result = asyncio.run(
                        load.closed_loop(
                            url, "embeddings", f"en-{kind}", concurrency, args.requests,
                            args.max_seconds, args.texts_per_request,
                        )
                    )  # fmt: skip
                    runs[kind].append(result)
            medians = {k: sorted(v, key=lambda r: r["rps"])[len(v) // 2] for k, v in runs.items()}
            pairs = zip(runs["whitespace"], runs["basic"], strict=True)
            ratios = [b["rps"] / w["rps"] for w, b in pairs]
            rows.append((concurrency, medians, min(ratios), max(ratios)))
            print(f"concurrency {concurrency} done", file=sys.stderr)

    print(
        f"/v1/embeddings (fold_in, the default), {args.texts_per_request} review(s) a request, "
        f"one server with the settings' defaults, median of {args.rounds} alternating rounds, "
        f"{os.cpu_count()} CPUs shared by server and load generator:\n"
    )
    print(
        "| concurrency | whitespace req/s | p50 ms | basic req/s | p50 ms | basic / whitespace "
        "| per-round range | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for concurrency, m, low, high in rows:
        w, b = m["whitespace"], m["basic"]
        print(
            f"| {concurrency} | {w['rps']:.0f} | {w['p50']:.1f} | {b['rps']:.0f} | {b['p50']:.1f} "
            f"| {b['rps'] / w['rps']:.2f} | {low:.2f}-{high:.2f} | "
            f"{int(w['errors'] + b['errors'])} |"
        )


if __name__ == "__main__":
    main()
