"""Series log-determinant vs exact, side by side: time and error at input sizes 16, 64 and 256.

    .venv/bin/python bench/iresnet_logdet.py
    .venv/bin/python bench/iresnet_logdet.py --dims 16,64 --terms 2,5,10,20 --rows 16

For each size D, two residual blocks whose kernels start far above the bound, so that spectral
normalisation pins every layer at sigma = c (0.9 by default):

- "linear": g = SNDense(D), so J_g = W with ||W||_2 = c exactly: the hard case for the series,
  whose terms then decay slowest;
- "mlp": g = SNDense(D) -> LipSwish -> SNDense(D), an i-ResNet block as trained, whose Jacobian
  norm at real inputs is well under the bound.

On a batch of Gaussian inputs it times and compares, all in one run:

- exact: the batch Jacobian and slogdet (the reference);
- the n-term power series with exact traces of J^k (its error is the truncation error alone);
- the n-term series with Hutchinson's estimator, 1 and 4 probes (truncation plus probe noise),
  which is what the service's `logdet: "series"` computes.

Errors are mean absolute differences from the exact log-determinant over the rows; times are the
median of several calls of a compiled function, reported as a ratio to the exact method's time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.iresnet.logdet import (  # noqa: E402
    exact_logdet,
    hutchinson_logdet,
    power_series_logdet_from_jacobian,
    truncation_error_bound,
)
from models.iresnet.residual_block import InvertibleResidualBlock  # noqa: E402


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def saturated_block(kind: str, dim: int, lipschitz: float, seed: int) -> InvertibleResidualBlock:
    """A block whose every layer sits at the spectral-norm bound (sigma = c after rescaling)."""
    hidden = [] if kind == "linear" else [dim]
    block = InvertibleResidualBlock(hidden, lipschitz_coefficient=lipschitz, seed=seed)
    block.build((None, dim))
    rng = np.random.default_rng(seed)
    for dense in block.dense_layers:
        kernel = dense.kernel
        kernel.assign(rng.normal(0, 3 / np.sqrt(kernel.shape[0]), kernel.shape).astype("float32"))
    block.update_spectral_norms(200)
    return block


def bench_block(
    kind: str, dim: int, terms: list[int], rows: int, lipschitz: float, repeats: int, seed: int
) -> list[str]:
    block = saturated_block(kind, dim, lipschitz, seed)
    x = tf.constant(np.random.default_rng(seed + 1).normal(size=(rows, dim)).astype("float32"))
    generator = tf.random.Generator.from_seed(seed)

    exact_fn = tf.function(lambda x: exact_logdet(block.residual, x)[1])
    exact = exact_fn(x).numpy()
    exact_ms = median_ms(lambda: exact_fn(x).numpy(), repeats)

    with tf.GradientTape() as tape:
        tape.watch(x)
        gx = block.residual(x)
    jacobian = tape.batch_jacobian(gx, x)
    spectral = float(tf.reduce_max(tf.linalg.svd(jacobian, compute_uv=False)).numpy())

    lines = [
        f"\n{kind} block, D = {dim}: {rows} rows, Lip(g) <= {lipschitz}, "
        f"measured max ||J_g||_2 = {spectral:.3f}, "
        f"mean |log det| = {np.mean(np.abs(exact)):.3f}, exact {exact_ms:.2f} ms per batch\n",
        "| terms | series, exact traces: error | bound (2) at measured norm | "
        "Hutchinson 1 probe: error | time / exact | Hutchinson 4 probes: error | time / exact |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in terms:
        truncated = power_series_logdet_from_jacobian(jacobian, n).numpy()
        cells = [
            f"{n}",
            f"{np.mean(np.abs(truncated - exact)):.2e}",
            f"{truncation_error_bound(min(spectral, 0.999), dim, n):.2e}",
        ]
        for probes in (1, 4):
            fn = tf.function(
                lambda x, n=n, probes=probes: hutchinson_logdet(
                    block.residual, x, n_terms=n, n_probes=probes, generator=generator
                )[1]
            )
            # Error over several independent probe draws, so noise is not one lucky draw.
            errors = [np.mean(np.abs(fn(x).numpy() - exact)) for _ in range(5)]
            ms = median_ms(lambda fn=fn: fn(x).numpy(), repeats)
            cells += [f"{np.mean(errors):.2e}", f"{ms / exact_ms:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="16,64,256")
    parser.add_argument("--terms", default="2,3,4,5,6,8,10,12,15,20")
    parser.add_argument("--rows", type=int, default=32, help="inputs per batch")
    parser.add_argument("--blocks", default="linear,mlp")
    parser.add_argument("--lipschitz", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per cell (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    terms = [int(n) for n in args.terms.split(",")]
    print(
        f"log det(I + J_g): series vs exact, float32, {os.cpu_count()} CPUs, "
        f"TensorFlow {tf.__version__}"
    )
    for dim in (int(d) for d in args.dims.split(",")):
        for kind in args.blocks.split(","):
            lines = bench_block(
                kind, dim, terms, args.rows, args.lipschitz, args.repeats, args.seed
            )
            print("\n".join(lines))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
