"""2-D density fits of `training.density` against the true densities of the toy data sets.

    .venv/bin/python bench/density_2d.py                         # every data set, job defaults
    .venv/bin/python bench/density_2d.py --data two_blobs two_moons --plots docs/img
    .venv/bin/python bench/density_2d.py --job-args "--epochs 10 --logdet roulette"

For each data set it writes `--rows` draws to a CSV, trains on it as a user would
(`python -m training.density --data FILE.csv`, in-process, with the job's defaults unless
`--job-args` adds options), loads the exported SavedModel through its reader and measures, on
`--test-rows` fresh draws and a grid:

- test NLL: -mean log p_model(x) (nats, `score_exact`), over held-out draws x ~ p;
- entropy: H(p) = -mean log p(x) over the same draws (true log-densities of
  `models.density.data.toy_log_density`, closed form or a fine quadrature);
- KL(p || p_model) = NLL - entropy (nats), estimated on the same draws, and the same by `score`
  (the series log-det with fixed probes that `/v1/density/score` uses unless asked for `exact`);
- empty mass: the model's probability mass where the true density is below `--empty` (1e-3) of
  its maximum, by a grid integral over [-6, 6]^2, and the share of the model's samples there;
- for two blobs, log p_model at the gap (0, 0) and at the two centres (+-3, 0), by `score` (the
  series log-det the service uses by default) and `score_exact`;
- the job's training seconds (its manifest) and the whole job's wall time (data, training,
  evaluation, export).

Figures are seconds on whatever machine runs it; say what else was running.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.density.data import sample_toy, toy_log_density  # noqa: E402

DATASETS = ("two_blobs", "two_moons", "eight_gaussians", "checkerboard", "circles")
# The grid of the mass integrals and plots: every toy lies well inside [-6, 6]^2.
GRID_HALF_WIDTH = 6.0
GRID_POINTS = 241  # spacing 0.05
SCORE_BATCH = 4096
BLOB_POINTS = np.array([[0.0, 0.0], [-3.0, 0.0], [3.0, 0.0]], np.float32)


def grid() -> tuple[np.ndarray, np.ndarray, float]:
    """(axis [G], points [G * G, 2] row-major in (y, x), cell area)."""
    axis = np.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, GRID_POINTS)
    xs, ys = np.meshgrid(axis, axis)
    step = float(axis[1] - axis[0])
    return axis, np.stack([xs.ravel(), ys.ravel()], axis=-1), step * step


def score(model: Any, x: np.ndarray, exact: bool = True) -> np.ndarray:
    parts = [
        model.score(x[i : i + SCORE_BATCH], exact=exact)["log_prob"]
        for i in range(0, len(x), SCORE_BATCH)
    ]
    return np.concatenate(parts).astype(np.float64)


def train(csv: Path, store: Path, name: str, job_args: list[str]) -> tuple[Path, float]:
    from training.density import train_density

    start = time.perf_counter()
    folder = train_density(
        [
            "--data", str(csv), "--out", str(store), "--name", name,
            "--checkpoint-dir", str(store.parent / "ckpt" / name), "--log-dir", "",
            "--no-progress", *job_args,
        ]
    )  # fmt: skip
    assert folder is not None
    return folder, time.perf_counter() - start


def evaluate(name: str, folder: Path, wall: float, args: argparse.Namespace) -> dict[str, Any]:
    from models.density.reader import SavedModelDensity

    model = SavedModelDensity(folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    test = sample_toy(name, args.test_rows, np.random.default_rng([args.seed, 2]))
    model_lp = score(model, test)
    true_lp = toy_log_density(name, test)
    nll, entropy = float(-model_lp.mean()), float(-true_lp.mean())
    series_nll = float(-score(model, test, exact=False).mean())

    axis, points, area = grid()
    true_grid = np.exp(toy_log_density(name, points))
    model_grid = np.exp(score(model, points))
    empty = true_grid < args.empty * true_grid.max()
    samples = model.sample(args.samples, seed=args.seed)["samples"].astype(np.float64)
    sample_true = np.exp(toy_log_density(name, samples))
    row: dict[str, Any] = {
        "data": name,
        "nll": nll,
        "entropy": entropy,
        "kl": nll - entropy,
        "kl_series": series_nll - entropy,
        "empty_mass": float(model_grid[empty].sum() * area),
        "grid_mass": float(model_grid.sum() * area),
        "empty_samples": float(np.mean(sample_true < args.empty * true_grid.max())),
        "train_seconds": float(manifest["metrics"].get("train_seconds", math.nan)),
        "steps": manifest["metrics"].get("steps"),
        "wall_seconds": wall,
    }
    if name == "two_blobs":
        row["blob_series"] = score(model, BLOB_POINTS, exact=False).tolist()
        row["blob_exact"] = score(model, BLOB_POINTS).tolist()
        row["blob_true"] = toy_log_density(name, BLOB_POINTS).tolist()
    if args.plots:
        plot(name, axis, true_grid, model_grid, samples, Path(args.plots), args.plot_prefix)
    return row


def plot(
    name: str,
    axis: np.ndarray,
    true_grid: np.ndarray,
    model_grid: np.ndarray,
    samples: np.ndarray,
    folder: Path,
    prefix: str,
) -> None:
    """Truth | model density | model samples, on the same square, into a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    shape = (len(axis), len(axis))
    extent = (axis[0], axis[-1], axis[0], axis[-1])
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6), dpi=80)
    top = float(true_grid.max())
    for ax, values, title in (
        (axes[0], true_grid, "true density"),
        (axes[1], model_grid, "model density"),
    ):
        ax.imshow(
            values.reshape(shape), origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=top
        )
        ax.set_title(title, fontsize=9)
    axes[2].scatter(samples[:, 0], samples[:, 1], s=0.5, alpha=0.4, color="k")
    axes[2].set_xlim(axis[0], axis[-1])
    axes[2].set_ylim(axis[0], axis[-1])
    axes[2].set_aspect("equal")
    axes[2].set_title("model samples", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(name.replace("_", " "), fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / f"{prefix}{name.replace('_', '-')}.png")
    plt.close(fig)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| data | test NLL | entropy | KL | KL by `score` | empty mass (grid) | "
        "samples in empty | steps | train s | job s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['nll']:.3f} | {r['entropy']:.3f} | {r['kl']:.3f} | "
            f"{r['kl_series']:.3f} | {100 * r['empty_mass']:.1f}% | "
            f"{100 * r['empty_samples']:.1f}% | {r['steps']} | "
            f"{r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |"
        )
    for r in rows:
        if "blob_exact" in r:
            gap, left, right = r["blob_exact"]
            s_gap, s_left, s_right = r["blob_series"]
            lines.append(
                f"\ntwo blobs, log p at gap (0,0) / centres (-3,0), (3,0): exact {gap:.2f} / "
                f"{left:.2f}, {right:.2f}; series {s_gap:.2f} / {s_left:.2f}, {s_right:.2f}; "
                f"true {r['blob_true'][0]:.2f} / {r['blob_true'][1]:.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--rows", type=int, default=10000, help="training rows in the CSV")
    parser.add_argument("--test-rows", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=4000, help="model samples drawn")
    parser.add_argument("--empty", type=float, default=1e-3, help="of the true maximum")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--job-args", default="", help="options added to training.density's")
    parser.add_argument("--plots", default="", help="folder for the PNGs (none when empty)")
    parser.add_argument("--plot-prefix", default="density-2d-")
    parser.add_argument("--json", default="", help="also write the rows here")
    args = parser.parse_args(argv)
    job_args = shlex.split(args.job_args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.data:
            csv = Path(tmp) / f"{name}.csv"
            train_rows = sample_toy(name, args.rows, np.random.default_rng([args.seed, 1]))
            np.savetxt(csv, train_rows, delimiter=",", header="x,y", comments="")
            folder, wall = train(csv, Path(tmp) / "store", name.replace("_", "-"), job_args)
            rows.append(evaluate(name, folder, wall, args))
            print(table(rows[-1:]), flush=True)
    print(f"\ntraining.density {' '.join(job_args) or '(defaults)'}, {args.rows} rows per CSV")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
