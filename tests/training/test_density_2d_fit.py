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
    # 1,991 rows: 199 held out, 1,792 to train on, 7 whole batches of 256 an epoch (2,000 rows
    # left an 8-row batch every 8th step, a full step of the learning rate on 8 points).
    np.savetxt(csv, two_blobs(1991, np.random.default_rng(0)), delimiter=",", header="x,y")
    # The model, log-det and learning rate are the job's defaults; only the length (420 steps,
    # against the thousands a full default run takes) and the export's costs are cut, and the
    # step is compiled with XLA (the job's own choice from 500 steps; 52.6 s in all against
    # 64.0-68.1 s without it, load 3.5-4.5).
    path = train_density(
        [
            "--data", str(csv), "--out", str(tmp_path / "store"), "--name", "blobs",
            "--epochs", "60", "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "",
            "--no-progress", "--score-terms", "10", "--export-power-iterations", "100", "--jit",
        ]
    )  # fmt: skip
    assert path is not None
    model = SavedModelDensity(path)
    gap, left, right = model.score(GAP_AND_CENTRES, exact=True)["log_prob"]
    truth = two_blobs_log_density(GAP_AND_CENTRES)  # -18.5 at the gap, -1.14 at the centres
    # The earlier defaults (4 blocks of 64-64, roulette, lr 1e-3) score the gap above both
    # centres at this budget (-2.25 against -2.73, -2.73). Today's come out 4.1 nats below them
    # (-5.31 against -1.20, -1.16), far above the truth but ordered right; the full run gets much
    # closer (docs/benchmarks.md). With 2,000 rows, 640 steps were too few (-3.5 against -1.3,
    # -2.2) and 960 enough (-5.6 against -1.1, -1.2): the 8-row batches cost more than they gave.
    assert gap < min(left, right) - 1.5, (gap, left, right)
    assert abs(left - truth[1]) < 0.7 and abs(right - truth[2]) < 0.7, (left, right, truth)
    samples = model.sample(2000, seed=0)["samples"]
    # |x| < 1.5 is 3 standard deviations from either centre: 0.1% of the true mass; the earlier
    # defaults put 38% of their samples there at this budget, today's about 4%.
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
