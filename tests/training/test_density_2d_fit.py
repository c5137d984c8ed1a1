"""The density job on 2-D data with a known density, on a tiny budget: two Gaussian blobs must come
out as two modes, the empty gap between them scored far below both centres (issue 18: the earlier
defaults scored the gap highest and put a third of the samples there). Also the data-dependent
defaults that fix it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.density.data import two_blobs, two_blobs_log_density
from models.density.reader import SavedModelDensity
from training.density import (
    AUTO_EXACT_TRAIN_MAX_DIM,
    AUTO_MIN_STEPS,
    DEFAULT_LR,
    HIGH_DIM_MODEL,
    LOW_DIM_LR,
    LOW_DIM_MODEL,
    auto_epochs,
    parse_args,
    resolve_auto_arguments,
    train_density,
)

GAP_AND_CENTRES = np.array([[0.0, 0.0], [-3.0, 0.0], [3.0, 0.0]], np.float32)


def test_two_blobs_fit_scores_the_gap_below_the_centres(tmp_path: Path) -> None:
    csv = tmp_path / "blobs.csv"
    np.savetxt(csv, two_blobs(2000, np.random.default_rng(0)), delimiter=",", header="x,y")
    # The model, log-det and learning rate are the job's defaults; only the length (960 steps,
    # against the thousands a full default run takes) and the export's costs are cut.
    path = train_density(
        [
            "--data", str(csv), "--out", str(tmp_path / "store"), "--name", "blobs",
            "--epochs", "120", "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "",
            "--no-progress", "--score-terms", "10", "--export-power-iterations", "100",
        ]
    )  # fmt: skip
    assert path is not None
    model = SavedModelDensity(path)
    gap, left, right = model.score(GAP_AND_CENTRES, exact=True)["log_prob"]
    truth = two_blobs_log_density(GAP_AND_CENTRES)  # -18.5 at the gap, -1.14 at the centres
    # The earlier defaults scored the gap above both centres (-2.24 against -2.69, -2.74 here).
    # At this budget the gap comes out below them, far above the truth but ordered right (the
    # 4-block model of before: about 2.4 nats; 320 steps of today's 8-block one were too few,
    # -2.26 against -2.71, -2.77); the full default run gets much closer (docs/benchmarks.md).
    assert gap < min(left, right) - 1.5, (gap, left, right)
    assert abs(left - truth[1]) < 0.7 and abs(right - truth[2]) < 0.7, (left, right, truth)
    samples = model.sample(2000, seed=0)["samples"]
    # |x| < 1.5 is 3 standard deviations from either centre: 0.1% of the true mass; the earlier
    # defaults put 38% of their samples there, this budget with 4 blocks about 11%.
    assert np.mean(np.abs(samples[:, 0]) < 1.5) < 0.2


def test_auto_defaults_follow_the_dimension_and_explicit_values_stay() -> None:
    def shape(args):
        return (args.blocks, args.hidden, args.lipschitz_coeff, args.actnorm)

    args = parse_args(["--data", "x.csv", "--name", "m"])
    assert (args.epochs, args.logdet, args.lr) == (None, "auto", "auto")
    assert shape(args) == ("auto",) * 4
    resolve_auto_arguments(args, dim=2, rows=5000)  # 20 steps an epoch
    assert args.epochs == auto_epochs(5000, 256) == AUTO_MIN_STEPS // 20
    assert (args.logdet, args.lr) == ("exact", LOW_DIM_LR)
    assert shape(args) == tuple(LOW_DIM_MODEL)

    args = parse_args(["--data", "x.npy", "--name", "m"])
    resolve_auto_arguments(args, dim=AUTO_EXACT_TRAIN_MAX_DIM + 1, rows=10**6)
    assert (args.epochs, args.logdet, args.lr) == (10, "roulette", DEFAULT_LR)
    # Above 8 dimensions (the digits demo: 64) the model is the one measured before.
    assert shape(args) == tuple(HIGH_DIM_MODEL) == (4, "64,64", 0.9, "input")

    args = parse_args(["--data", "x.npy", "--name", "m", "--neumann-gradient"])
    resolve_auto_arguments(args, dim=2, rows=100)
    assert args.logdet == "roulette"  # the Neumann gradient is an estimator's

    given = ["--epochs", "3", "--logdet", "series", "--lr", "0.01", "--blocks", "2"]
    given += ["--hidden", "8", "--lipschitz-coeff", "0.5", "--actnorm", "input"]
    args = parse_args(["--data", "x.npy", "--name", "m", *given])
    resolve_auto_arguments(args, dim=2, rows=100)
    assert (args.epochs, args.logdet, args.lr) == (3, "series", 0.01)
    assert shape(args) == (2, "8", 0.5, "input")
