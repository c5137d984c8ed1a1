"""Examples a second of the XLA-compiled training step of the demo QA model's shape at several
batch sizes, interleaved so that every batch size meets the same load.

    .venv/bin/python bench/qa_batch_step.py [--rounds 5] [--examples 640] [--batch-sizes 16,32,64] \
        [--num-heads 8[,4]]

Batches are the demo's own (`training.qa.DEMO_MIXTURE`, the bigram exact-match feature, padded
to multiples of 32 as the job pads them); each round runs `--examples` examples at every batch
size (and head count: `--num-heads 8,4` times 8 heads of 16 against 4 of 32) in turn; prints
JSON with the median milliseconds a step and examples a second per batch size (and heads), every
round's figure, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict[str, object]:
    import numpy as np

    from bench.qa_step import demo_samples, jit_train_step, width_batches
    from models.qa.seq2seq import build_qa_model, small_qa_config
    from training.qa import (
        DEMO_MAX_ANSWER_TOKENS,
        DEMO_MAX_PASSAGE_TOKENS,
        DEMO_MAX_QUESTION_TOKENS,
        DEMO_NUM_HEADS,
        DEMO_NUM_LAYERS,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=640, help="examples a round and size")
    parser.add_argument("--batch-sizes", default="16,32,64")
    parser.add_argument("--num-heads", default=str(DEMO_NUM_HEADS), help="head counts, e.g. 8,4")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    heads = [int(h) for h in args.num_heads.split(",")]
    tokenizer, samples = demo_samples(1200)
    limits = (DEMO_MAX_PASSAGE_TOKENS, DEMO_MAX_QUESTION_TOKENS, DEMO_MAX_ANSWER_TOKENS)
    # Every (batch size, heads) pair: its batches in a random order, and its own model and
    # optimizer.
    batches: dict[str, list[dict]] = {}
    steps = {}
    for size in sizes:
        sized = width_batches(samples, size, tokenizer.pad_id)
        order = np.random.default_rng(0).permutation(len(sized))
        for head_count in heads:
            label = f"{size}" if len(heads) == 1 else f"batch {size}, {head_count} heads"
            batches[label] = [sized[i] for i in order]
            config = small_qa_config(
                tokenizer.vocab_size,
                max_position=sum(limits) + 4,
                num_layers=DEMO_NUM_LAYERS,
                num_heads=head_count,
                dropout=0.0,
            )
            model = build_qa_model(config, overlap_sep_id=tokenizer.sep_id)
            steps[label] = (size, jit_train_step(model))
    load_before = os.getloadavg()
    # Warm-up: every width compiled for every pair before timing.
    for label, (_, fn) in steps.items():
        for batch in {b["token_ids"].shape[1]: b for b in batches[label]}.values():
            fn(batch)
    rounds: dict[str, list[float]] = {label: [] for label in steps}
    cursor = {label: 0 for label in steps}
    for _ in range(args.rounds):
        for label, (size, fn) in steps.items():
            n = max(1, args.examples // size)
            pool = batches[label]
            chosen = [pool[(cursor[label] + i) % len(pool)] for i in range(n)]
            cursor[label] += n
            t0 = time.perf_counter()
            for batch in chosen:
                fn(batch)
            float(fn(chosen[0]))  # wait for the last step
            rounds[label].append(1000 * (time.perf_counter() - t0) / (n + 1))
    report: dict[str, object] = {
        "num_heads": heads,
        "median_ms_a_step": {k: round(statistics.median(r), 1) for k, r in rounds.items()},
        "examples_per_s": {
            k: round(1000 * steps[k][0] / statistics.median(r), 1) for k, r in rounds.items()
        },
        "rounds_ms": {k: [round(x, 1) for x in r] for k, r in rounds.items()},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
