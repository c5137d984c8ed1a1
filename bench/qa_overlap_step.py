"""Time of one XLA-compiled training step of the demo QA model's shape with each exact-match
feature (`--overlap-feature none / bigram / ngram`; `sentence`: the bigram marks and
`--sentence-feature count`), interleaved so that every feature meets the same load.

    .venv/bin/python bench/qa_overlap_step.py [--rounds 6] [--steps 40] [--batch-size 16]

Batches are the demo's own (`training.qa.DEMO_MIXTURE`, padded as the job pads them); each round
runs `--steps` steps of every feature in turn; prints JSON with the median milliseconds a step
per feature and every round's figure (wall and process CPU time), and the load average before
and after.
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
    from models.bert.overlap import DEFAULT_MAX_MATCH_LENGTH
    from models.qa.seq2seq import build_qa_model, small_qa_config
    from training.qa import (
        DEMO_MAX_ANSWER_TOKENS,
        DEMO_MAX_PASSAGE_TOKENS,
        DEMO_MAX_QUESTION_TOKENS,
        DEMO_NUM_HEADS,
        DEMO_NUM_LAYERS,
        sentence_end_ids,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--features", default="bigram,ngram")
    args = parser.parse_args(argv)
    tokenizer, samples = demo_samples(400)
    batches = width_batches(samples, args.batch_size, tokenizer.pad_id)
    order = np.random.default_rng(0).permutation(len(batches))
    limits = (DEMO_MAX_PASSAGE_TOKENS, DEMO_MAX_QUESTION_TOKENS, DEMO_MAX_ANSWER_TOKENS)
    config = small_qa_config(
        tokenizer.vocab_size,
        max_position=sum(limits) + 4,
        num_layers=DEMO_NUM_LAYERS,
        num_heads=DEMO_NUM_HEADS,
        dropout=0.0,
    )
    steps = {}
    for feature in args.features.split(","):
        model = build_qa_model(
            config,
            overlap_sep_id=None if feature == "none" else tokenizer.sep_id,
            overlap_max_length=DEFAULT_MAX_MATCH_LENGTH if feature == "ngram" else None,
            sentence_end_ids=sentence_end_ids(tokenizer) if feature == "sentence" else None,
        )
        steps[feature] = jit_train_step(model)
    load_before = os.getloadavg()
    # Warm-up: every width compiled for every feature before timing.
    for batch in {b["token_ids"].shape[1]: b for b in batches}.values():
        for fn in steps.values():
            fn(batch)
    rounds: dict[str, list[float]] = {f: [] for f in steps}
    cpu: dict[str, list[float]] = {f: [] for f in steps}
    cursor = 0
    for _ in range(args.rounds):
        chosen = [batches[order[(cursor + i) % len(batches)]] for i in range(args.steps)]
        cursor += args.steps
        for feature, fn in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for batch in chosen:
                fn(batch)
            float(fn(chosen[0]))  # wait for the last step
            rounds[feature].append(1000 * (time.perf_counter() - t0) / (args.steps + 1))
            cpu[feature].append(1000 * (time.process_time() - c0) / (args.steps + 1))
    report: dict[str, object] = {
        "batch_size": args.batch_size,
        "median_ms": {f: round(statistics.median(r), 1) for f, r in rounds.items()},
        "rounds_ms": {f: [round(x, 1) for x in r] for f, r in rounds.items()},
        # CPU time of the process (all its threads) a step: less moved by other jobs than wall
        # time, though threads that spin while waiting for a core count too.
        "median_cpu_ms": {f: round(statistics.median(r), 1) for f, r in cpu.items()},
        "rounds_cpu_ms": {f: [round(x, 1) for x in r] for f, r in cpu.items()},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
