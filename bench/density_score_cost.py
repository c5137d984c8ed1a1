"""What `/v1/density/score`'s two log-determinants cost: a density version's `score` (the series,
fixed probes) and `score_exact` (full Jacobians) signatures on the same rows, in turn, alternating
which goes first, for a few batch sizes. Wall time (TensorFlow runs the ops on threads of its
own, which a thread's CPU clock would miss), median of `--rounds` rounds of 5 calls each, and the
per-round ratio exact / series; also how far the series is from the exact log p on these rows.

    .venv/bin/python bench/density_score_cost.py --model model_store/demo-digits/1

The rows are uniform over the model's data range as the manifest gives it (the digits' 0-16), or
over [-2, 2] per column for models without one.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.density.reader import SavedModelDensity  # noqa: E402
from models.store import DensityManifest, read_manifest  # noqa: E402

BATCH_SIZES = (1, 8, 64, 256)


def wall(run: Callable[[], object], repeat: int = 5) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        run()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    manifest = read_manifest(args.model, DensityManifest)
    model = SavedModelDensity(args.model)
    dim = manifest.input_dim
    low, high = (0.0, float(manifest.levels - 1)) if manifest.levels else (-2.0, 2.0)
    rng = np.random.default_rng(0)
    print(f"{args.model}: {dim} dimensions, rows uniform over [{low}, {high}]")
    print(
        "| rows | series ms | exact ms | exact / series, median (quartiles) "
        "| mean abs log p error of the series (max) |"
    )
    print("|---:|---:|---:|---|---|")
    for size in BATCH_SIZES:
        x = rng.uniform(low, high, (size, dim)).astype(np.float32)
        series = functools.partial(model.score, x)
        exact = functools.partial(model.score, x, exact=True)
        series(), exact()  # traced once each
        series_s: list[float] = []
        exact_s: list[float] = []
        for i in range(args.rounds):
            first, second = (series, exact) if i % 2 == 0 else (exact, series)
            a, b = wall(first), wall(second)
            series_s.append(a if first is series else b)
            exact_s.append(b if first is series else a)
        ratios = [e / s for e, s in zip(exact_s, series_s, strict=True)]
        q1, q2, q3 = statistics.quantiles(ratios, n=4)
        error = np.abs(series()["log_prob"] - exact()["log_prob"])
        print(
            f"| {size} | {statistics.median(series_s) * 1e3:.1f} | "
            f"{statistics.median(exact_s) * 1e3:.1f} | {q2:.2f} ({q1:.2f}-{q3:.2f}) | "
            f"{error.mean():.3f} ({error.max():.3f}) |"
        )


if __name__ == "__main__":
    main()
