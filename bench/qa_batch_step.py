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
    import tensorflow as tf

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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=640, help="examples a round and size")
    parser.add_argument("--batch-sizes", default="16,32,64")
    parser.add_argument("--num-heads", default=str(DEMO_NUM_HEADS), help="head counts, e.g. 8,4")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    heads = [int(h) for h in args.num_heads.split(",")]
    examples = make_mixed_examples(1200, 0, DEMO_MIXTURE)
    vocab_path = Path("/tmp") / f"qa_batch_step_vocab_{os.getpid()}.txt"
    write_vocab(vocab_path, build_char_vocab(_example_texts(examples), 1))
    tokenizer = BertTokenizer(vocab_path, lowercase=True)
    limits = (DEMO_MAX_PASSAGE_TOKENS, DEMO_MAX_QUESTION_TOKENS, DEMO_MAX_ANSWER_TOKENS)
    samples = [
        build_sample(tokenizer, p.text, e.question, p.answer, *limits)
        for e in examples
        for p in e.passages
    ]
    samples.sort(key=lambda s: len(s.token_ids))
    # Every (batch size, heads) pair: its batches of alike lengths at the job's widths
    # (multiples of 32) in a random order, and its own model and optimizer.
    batches: dict[str, list[dict]] = {}
    steps = {}
    for size in sizes:
        sized = []
        for start in range(0, len(samples) - size + 1, size):
            rows = samples[start : start + size]
            width = -(-max(len(r.token_ids) for r in rows) // 32) * 32
            sized.append(pad_samples(rows, tokenizer.pad_id, pad_to=width))
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
            optimizer, _ = bert_adamw(1e-3, 10_000)

            def step(inputs: dict, model=model, optimizer=optimizer) -> tf.Tensor:  # noqa: ANN001
                with tf.GradientTape() as tape:
                    loss = answer_window_loss(model, inputs, DEMO_MAX_ANSWER_TOKENS + 1, True)
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
                return loss

            steps[label] = (size, tf.function(step, jit_compile=True, reduce_retracing=True))
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
    vocab_path.unlink()
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
