"""Time of one XLA-compiled training step of the demo QA model's shape with each exact-match
feature (`--overlap-feature none / bigram / ngram`), interleaved so that every feature meets the
same load.

    .venv/bin/python bench/qa_overlap_step.py [--rounds 6] [--steps 40] [--batch-size 16]

Batches are the demo's own (`training.qa.DEMO_MIXTURE`, padded as the job pads them); each round
runs `--steps` steps of every feature in turn; prints JSON with the median milliseconds a step
per feature and every round's figure, and the load average before and after.
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
    import tensorflow as tf

    from models.bert.overlap import DEFAULT_MAX_MATCH_LENGTH
    from models.bert.tokenizer import BertTokenizer
    from models.qa.samples import build_sample, pad_samples
    from models.qa.seq2seq import answer_window_loss, build_qa_model, small_qa_config
    from models.qa.synthetic import make_mixed_examples
    from training.common.loop import bert_adamw
    from training.common.text import build_char_vocab, write_vocab
    from training.qa import (
        DEMO_MAX_ANSWER_TOKENS,
        DEMO_MAX_PASSAGE_TOKENS,
        DEMO_MAX_QUESTION_TOKENS,
        DEMO_MIXTURE,
        DEMO_NUM_HEADS,
        DEMO_NUM_LAYERS,
        _example_texts,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--features", default="bigram,ngram")
    args = parser.parse_args(argv)
    examples = make_mixed_examples(400, 0, DEMO_MIXTURE)
    vocab_path = Path("/tmp") / f"qa_overlap_step_vocab_{os.getpid()}.txt"
    write_vocab(vocab_path, build_char_vocab(_example_texts(examples), 1))
    tokenizer = BertTokenizer(vocab_path, lowercase=True)
    limits = (DEMO_MAX_PASSAGE_TOKENS, DEMO_MAX_QUESTION_TOKENS, DEMO_MAX_ANSWER_TOKENS)
    samples = [
        build_sample(tokenizer, p.text, e.question, p.answer, *limits)
        for e in examples
        for p in e.passages
    ]
    # Batches of alike lengths at the job's widths (multiples of 32).
    samples.sort(key=lambda s: len(s.token_ids))
    batches = []
    for start in range(0, len(samples) - args.batch_size + 1, args.batch_size):
        rows = samples[start : start + args.batch_size]
        width = -(-max(len(r.token_ids) for r in rows) // 32) * 32
        batches.append(pad_samples(rows, tokenizer.pad_id, pad_to=width))
    order = np.random.default_rng(0).permutation(len(batches))
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
        )
        optimizer, _ = bert_adamw(1e-3, 10_000)

        def step(inputs: dict, model=model, optimizer=optimizer) -> tf.Tensor:  # noqa: ANN001
            with tf.GradientTape() as tape:
                loss = answer_window_loss(model, inputs, DEMO_MAX_ANSWER_TOKENS + 1, True)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        steps[feature] = tf.function(step, jit_compile=True, reduce_retracing=True)
    load_before = os.getloadavg()
    # Warm-up: every width compiled for every feature before timing.
    for batch in {b["token_ids"].shape[1]: b for b in batches}.values():
        for fn in steps.values():
            fn(batch)
    rounds: dict[str, list[float]] = {f: [] for f in steps}
    cursor = 0
    for _ in range(args.rounds):
        chosen = [batches[order[(cursor + i) % len(batches)]] for i in range(args.steps)]
        cursor += args.steps
        for feature, fn in steps.items():
            t0 = time.perf_counter()
            for batch in chosen:
                fn(batch)
            float(fn(chosen[0]))  # wait for the last step
            rounds[feature].append(1000 * (time.perf_counter() - t0) / (args.steps + 1))
    report: dict[str, object] = {
        "batch_size": args.batch_size,
        "median_ms": {f: round(statistics.median(r), 1) for f, r in rounds.items()},
        "rounds_ms": {f: [round(x, 1) for x in r] for f, r in rounds.items()},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    vocab_path.unlink()
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
