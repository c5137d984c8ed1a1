"""Series log-determinant vs exact, side by side: time and error at input sizes 16, 64 and 256.

    .venv/bin/python bench/density_logdet.py
    .venv/bin/python bench/density_logdet.py --dims 16,64 --terms 2,5,10,20 --rows 16

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

A second table compares, for the "mlp" block, the two ways of differentiating the series in
training: backpropagating through its n vector-Jacobian products, and Chen et al.'s Neumann-series
gradient (`LogDetConfig(neumann_gradient=True)`): time of one gradient and TensorFlow's peak CPU
memory during it (`tf.config.experimental.get_memory_info`), as ratios Neumann / backprop.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.density.logdet import (  # noqa: E402
    LogDetConfig,
    exact_logdet,
    hutchinson_logdet,
    power_series_logdet_from_jacobian,
    truncation_error_bound,
)
from models.density.residual_block import InvertibleResidualBlock  # noqa: E402


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


def gradient_cost(
    dim: int, rows: int, n_terms: int, neumann: bool, lipschitz: float, repeats: int
) -> tuple[float, float]:
    """(median ms, peak MB) of d sum(log det) / d weights of a saturated mlp block.

    Run in a fresh process (see `measure_in_child`): the peak is how far the process's maximum
    resident set rises above its resident set before the gradient calls, after a warm-up on 8 rows
    has built and traced everything, so it is the memory the gradient itself needs (Linux).
    """
    block = saturated_block("mlp", dim, lipschitz, seed=0)
    config = LogDetConfig(method="series", n_terms=n_terms, neumann_gradient=neumann)
    generator = tf.random.Generator.from_seed(0)

    @tf.function(reduce_retracing=True)
    def gradient(x: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(block.forward(x, config, generator=generator)[1])
        return tape.gradient(total, block.trainable_variables)

    rng = np.random.default_rng(1)
    gradient(tf.constant(rng.normal(size=(8, dim)).astype("float32")))
    x = tf.constant(rng.normal(size=(rows, dim)).astype("float32"))
    resident_kb = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_KB
    ms = median_ms(lambda: [g.numpy() for g in gradient(x) if g is not None], repeats)
    # ru_maxrss is the high-water mark: its rise over the resident set before the calls is what
    # the calls needed at their peak (the warm-up on 8 rows kept the earlier mark low).
    peak_kb = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - resident_kb)
    return ms, peak_kb / 1024


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def measure_in_child(*args: object) -> tuple[float, float]:
    """`gradient_cost` in a fresh process, so that one measurement's peak is not another's."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(gradient_cost, args)  # type: ignore[no-any-return]


def bench_gradients(dims: list[int], rows: int, lipschitz: float, repeats: int) -> list[str]:
    lines = [
        f"\nGradient of the series log-det (mlp block, {rows} rows, 1 Gaussian probe): "
        "backprop through the terms vs the Neumann-series gradient\n",
        "| D | terms | backprop ms | backprop peak MB | Neumann ms | Neumann peak MB "
        "| time ratio | memory ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dim in dims:
        for n in (5, 10, 20):
            a_ms, a_mb = measure_in_child(dim, rows, n, False, lipschitz, repeats)
            b_ms, b_mb = measure_in_child(dim, rows, n, True, lipschitz, repeats)
            memory_ratio = f"{b_mb / a_mb:.2f}" if a_mb > 0 else "n/a"
            lines.append(
                f"| {dim} | {n} | {a_ms:.1f} | {a_mb:.0f} | {b_ms:.1f} | {b_mb:.0f} "
                f"| {b_ms / a_ms:.2f} | {memory_ratio} |"
            )
            sys.stdout.flush()
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
    parser.add_argument(
        "--gradient-rows", type=int, default=4096, help="rows of the gradient comparison"
    )
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
    dims = [int(d) for d in args.dims.split(",")]
    print("\n".join(bench_gradients(dims, args.gradient_rows, args.lipschitz, args.repeats)))


if __name__ == "__main__":
    main()
