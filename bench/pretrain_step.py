"""What a step of `training.pretrain` costs on CPU, part by part, and against a matmul's rate.

Issue 18's pretraining (docs/benchmarks.md, "CMRC 2018") took 5-10 s a step of the 4-layer,
128-wide character BERT at batch 24 x 192 tokens. This times, in one process and interleaved
(A B A B ..., so that every variant sees the same load), the gradient of the masked-LM loss
(`training.pretrain.masked_lm_loss_and_hits`: the head on the masked positions only) with
dropout 0.1 and 0, with and without XLA (`--jit`), the forward pass alone, the AdamW update and
the EMA update, and a [B*L, H] x [H, 4H] matmul for the rate the host gives one such product.
Each variant is traced and compiled first (not timed), then timed `--repeats` times: the median
process CPU time (the load-independent figure; wall time grows with the host's load) and wall.

The ideal step is FLOPs / matmul rate: 6 x (non-embedding parameters x tokens + attention) plus
the MLM head on the masked positions.

    TF_CPP_MIN_LOG_LEVEL=2 nice -n 5 .venv/bin/python -m bench.pretrain_step
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from models.bert.bert_backbone import BertBackbone, BertConfig
from training.common.ema import ExponentialMovingAverage
from training.common.loop import bert_adamw
from training.pretrain import MASK_RATE, MaskedLM, mask_tokens, masked_lm_loss_and_hits

SPECIALS = (0, 1, 2, 3, 4)


def build(args: argparse.Namespace, dropout: float) -> MaskedLM:
    keras.utils.set_random_seed(0)
    config = BertConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        intermediate_size=4 * args.hidden,
        max_position=512,
        dropout=dropout,
    )
    return MaskedLM(BertBackbone.from_bert_config(config), name="masked_lm")


def batch(args: argparse.Namespace) -> dict[str, tf.Tensor]:
    rng = np.random.default_rng(0)
    rows = [
        np.array([2, *rng.integers(5, args.vocab, args.length - 2), 3], np.int32)
        for _ in range(args.batch)
    ]
    predictions = int(np.ceil(args.length * MASK_RATE)) + 1
    masked = mask_tokens(rows, rng, args.vocab, 4, SPECIALS, 0, args.length, predictions)
    return {key: tf.constant(value) for key, value in masked.items()}


def gradient(model: MaskedLM, jit: bool) -> Callable[[dict[str, Any]], Any]:
    variables = model.trainable_variables

    @tf.function(jit_compile=jit)
    def step(inputs: dict[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            loss = masked_lm_loss_and_hits(model, inputs, training=True)[0]
        return tape.gradient(loss, variables)

    return step


def ideal_flops(args: argparse.Namespace) -> float:
    tokens = args.batch * args.length
    h = args.hidden
    per_layer = 4 * h * h + 2 * h * 4 * h  # Q, K, V, output; the two feed-forward matrices
    attention = 2 * args.length * h  # scores and the weighted sum, per token per layer
    masked = args.batch * (int(np.ceil(args.length * MASK_RATE)) + 1)
    head = masked * (h * h + h * args.vocab)
    return 6.0 * (args.layers * tokens * (per_layer + attention) + head)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--length", type=int, default=192)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=5330)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args(argv)

    inputs = batch(args)
    with_dropout, without = build(args, 0.1), build(args, 0.0)
    variables = without.trainable_variables
    optimizer, _ = bert_adamw(1e-3, 1000)
    optimizer.build(variables)
    ema = ExponentialMovingAverage(variables, decay=0.999)
    grads = [tf.convert_to_tensor(g) for g in gradient(without, False)(inputs)]
    a = tf.random.normal([args.batch * args.length, args.hidden])
    b = tf.random.normal([args.hidden, 4 * args.hidden])
    variants: dict[str, Callable[[], Any]] = {}
    for name, model, jit in [
        ("gradient, dropout 0.1", with_dropout, False),
        ("gradient, dropout 0", without, False),
        ("gradient, dropout 0.1, --jit", with_dropout, True),
        ("gradient, dropout 0, --jit", without, True),
    ]:
        variants[name] = (lambda f: lambda: f(inputs))(gradient(model, jit))
    forward = tf.function(lambda x: masked_lm_loss_and_hits(without, x, training=False)[0])
    variants["forward only, no dropout"] = lambda: forward(inputs)
    apply = tf.function(lambda g: optimizer.apply_gradients(zip(g, variables, strict=True)))
    variants["AdamW update"] = lambda: apply(grads)
    variants["EMA update"] = tf.function(ema.update)
    matmul = tf.function(lambda: tf.matmul(a, b))
    variants["matmul [B*L, H] x [H, 4H]"] = matmul

    def run(f: Callable[[], Any]) -> None:
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, f())

    for f in variants.values():
        run(f)  # trace and compile
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, f in variants.items():
            c, t = time.process_time(), time.perf_counter()
            run(f)
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - t)
    rate = 2 * args.batch * args.length * args.hidden * 4 * args.hidden
    rate /= float(np.median(cpu["matmul [B*L, H] x [H, 4H]"]))
    ideal = ideal_flops(args) / rate
    base = float(np.median(cpu["gradient, dropout 0.1"]))
    print(f"batch {args.batch} x {args.length} tokens, {args.layers} layers x {args.hidden}, "
          f"vocabulary {args.vocab}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"matmul rate {rate / 1e9:.1f} GFLOP/s of CPU time; ideal step (6 x FLOPs at that "
          f"rate) {ideal:.3f} s")  # fmt: skip
    print("| part | CPU s (median) | wall s (median) | CPU vs dropout 0.1 |")
    print("|---|---:|---:|---:|")
    for name in variants:
        c, w = float(np.median(cpu[name])), float(np.median(wall[name]))
        print(f"| {name} | {c:.3f} | {w:.3f} | {c / base:.2f} |")


if __name__ == "__main__":
    main()
