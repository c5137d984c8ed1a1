"""Train an invertible-ResNet density model (i-ResNet, Behrmann et al., ICML 2019; Residual Flows,
Chen et al., NeurIPS 2019) by maximum likelihood and export it into the model store.

    python -m training.density --data FILE.npy|FILE.csv --out model_store --name NAME --epochs N
    python -m training.density --data builtin:digits --name digits-flow --epochs 100
    python -m training.density --data builtin:moons --name moons-flow --epochs 20

`--data` is a 2-D array, rows = examples: a `.npy` file, a `.csv` of numbers (an optional header
line), or a built-in data set needing no download: `builtin:digits` (scikit-learn's 8x8 digits,
values 0..16, i.e. 17 levels) or a 2-D toy density `builtin:moons|circles|8gaussians|checkerboard`.

Discrete data (integers in [0, K-1], K = `--levels` or detected) are dequantised, v = x + u with
u ~ U[0, 1)^D drawn afresh each step (Theis et al., ICLR 2016), scaled by 1/K and logit-transformed
(Dinh et al. 2017); continuous data are standardised per feature. The loss is the negative
log-likelihood in data units, with the blocks' log-determinants by the unbiased Russian roulette
(default), the truncated series or exactly. Each epoch reports validation bits per dimension of the
averaged (EMA) weights, exactly when D <= `--exact-max-dim`, else by a long series; the final
metrics add test bits/dim (a mean over `--test-draws` dequantisations for discrete data). The
export (`models.density.export`) scores and samples in data units.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from models.density.data import DEFAULT_LOGIT_ALPHA, sample_toy
from models.density.export import (
    EXPORT_POWER_ITERATIONS,
    Preprocessing,
    RowSharedStatelessGenerator,
    data_log_prob,
    export_density_saved_model,
)
from models.density.iresnet_flow import IResNetFlow
from models.density.logdet import DEFAULT_SERIES_TERMS, LogDetConfig
from models.density.residual_block import (
    DEFAULT_INVERSE_MAX_ITERATIONS,
    DEFAULT_INVERSE_TOLERANCE,
)
from training.common import (
    CheckpointKeeper,
    ExponentialMovingAverage,
    Progress,
    TensorBoardLogger,
    add_common_args,
    data_summary,
    epoch_permutation,
    export_version,
    set_seed,
)
from training.common.cli import add_distribution_args
from training.common.distribute import is_chief, local_share, make_strategy, worker_index

FAMILY = "iresnet"
BUILTIN_PREFIX = "builtin:"
BUILTIN_TOYS = {
    "moons": "two_moons",
    "circles": "circles",
    "8gaussians": "eight_gaussians",
    "checkerboard": "checkerboard",
}
# The split of the issue: 447 test digits, then 350 of the rest for validation, both stratified.
DIGITS_TEST_SIZE = 447
DIGITS_VALID_SIZE = 350
DIGITS_LEVELS = 17
# Held-out draws of a toy density (fresh samples, so no split is needed).
TOY_HELD_OUT = 2000
# Integer data with values in [0, this] are taken as discrete unless --levels says otherwise.
MAX_AUTO_LEVELS = 256
DEFAULT_BATCH_SIZE = 256
# Residual Flows train with Adam at 1e-3 and clip gradients.
DEFAULT_LR = 1e-3
DEFAULT_WARMUP_STEPS = 100
DEFAULT_CLIP_NORM = 1.0
# Exact log-det costs D backward passes per block and row: fine for toys, tabular data, digits.
DEFAULT_EXACT_MAX_DIM = 64
# Evaluation series (when D is too large for the exact log-det): bias bound (2) shrinks as c^n.
EVAL_SERIES_TERMS = 30
EVAL_SERIES_PROBES = 4
EVAL_BATCH_SIZE = 512
# Rows the ActNorms are initialised from (data-dependent init, Kingma & Dhariwal 2018).
INIT_ROWS = 2048
LOG_EVERY_STEPS = 20
_LN2 = math.log(2.0)


class DataError(ValueError):
    """The training data cannot be used; the message says why and where."""


@dataclass
class DensityData:
    """Train / validation / test rows [N, D] (float64, data units), the levels K of discrete data
    (None: continuous) and the manifest's `data` entry."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray | None
    levels: int | None
    summary: dict[str, Any]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.density",
        description="Train an invertible-ResNet density model and export it.",
    )
    add_common_args(p)
    p.set_defaults(epochs=10)
    add_distribution_args(p)
    g = p.add_argument_group("model")
    g.add_argument("--blocks", type=int, default=4, help="invertible residual blocks")
    g.add_argument(
        "--hidden", type=str, default="64,64", help="widths of each block's hidden layers"
    )
    g.add_argument("--activation", choices=("lipswish", "elu"), default="lipswish")
    g.add_argument(
        "--lipschitz-coeff",
        type=float,
        default=0.9,
        help="spectral-norm bound c < 1 of every layer (Lip(g) <= c)",
    )
    g = p.add_argument_group("log-determinant in training")
    g.add_argument("--logdet", choices=("roulette", "series", "exact"), default="roulette")
    g.add_argument("--n-terms", type=int, default=DEFAULT_SERIES_TERMS, help="terms of the series")
    g.add_argument("--n-probes", type=int, default=1, help="Hutchinson probes per row")
    g.add_argument(
        "--neumann-gradient",
        action="store_true",
        help="series/roulette: differentiate by the Neumann series (Residual Flows, Sec. 3.2), "
        "the memory of one backward pass instead of one per term",
    )
    g.add_argument(
        "--exact-max-dim",
        type=int,
        default=DEFAULT_EXACT_MAX_DIM,
        help="evaluate with the exact log-det up to this D, else with a long series",
    )
    g = p.add_argument_group("optimiser")
    g.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    g.add_argument("--lr", type=float, default=DEFAULT_LR, help="peak learning rate (Adam)")
    g.add_argument("--warmup-steps", type=int, default=DEFAULT_WARMUP_STEPS)
    g.add_argument(
        "--clip-norm", type=float, default=DEFAULT_CLIP_NORM, help="global gradient-norm clip"
    )
    g.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="stop after this many steps (in total) with a checkpoint and no export",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--levels",
        type=int,
        default=None,
        help="values per dimension of discrete data (default: detected for integer data in "
        f"[0, {MAX_AUTO_LEVELS - 1}]; 0 treats the data as continuous)",
    )
    g.add_argument(
        "--logit-alpha",
        type=float,
        default=DEFAULT_LOGIT_ALPHA,
        help="logit-transform shrinkage for discrete data (negative: no logit transform)",
    )
    g.add_argument(
        "--no-standardize", action="store_true", help="do not standardise continuous data"
    )
    g.add_argument("--valid-fraction", type=float, default=0.1, help="of a data file's rows")
    g.add_argument("--toy-samples", type=int, default=20000, help="training draws of a toy")
    g.add_argument(
        "--test-draws", type=int, default=3, help="dequantisation draws averaged in test bits/dim"
    )
    g = p.add_argument_group("export")
    g.add_argument("--score-terms", type=int, default=20, help="series terms of `score`")
    g.add_argument("--score-probes", type=int, default=4, help="probes of `score`")
    g.add_argument("--score-seed", type=int, default=1234, help="fixed seed of its probes")
    g.add_argument("--inverse-max-iterations", type=int, default=DEFAULT_INVERSE_MAX_ITERATIONS)
    g.add_argument("--inverse-tolerance", type=float, default=DEFAULT_INVERSE_TOLERANCE)
    g.add_argument(
        "--export-power-iterations",
        type=int,
        default=EXPORT_POWER_ITERATIONS,
        help="power iterations per layer before evaluation and export",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if not 0.0 < args.lipschitz_coeff < 1.0:
        raise SystemExit(f"--lipschitz-coeff must be in (0, 1), not {args.lipschitz_coeff}")
    if args.neumann_gradient and args.logdet == "exact":
        raise SystemExit("--neumann-gradient is for --logdet series or roulette, not exact")
    return args


def read_array(path: Path) -> np.ndarray:
    """A [N, D] float64 array from a .npy or .csv file (a .csv may start with a header line);
    a .npy of images, [N, H, W] or [N, H, W, C], becomes flat rows.

    Raises:
        DataError: a missing file, another format, or contents that are not a finite 2-D array of
            numbers with at least 2 rows.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DataError(f"{path}: not a readable .npy array ({error})") from None
        real = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        if not real:
            raise DataError(f"{path}: holds {array.dtype} values, not real numbers")
    elif suffix == ".csv":
        array = _read_csv(path)
    else:
        raise DataError(f"{path}: expected a .npy or .csv file")
    array = np.asarray(array, np.float64)
    if array.ndim == 1:
        raise DataError(f"{path}: a 1-D array; give rows of features, shape [N, D]")
    if array.ndim > 2:
        # Images [N, H, W] or [N, H, W, C]: one flat row each, in row-major (C) order.
        array = array.reshape(array.shape[0], -1)
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise DataError(f"{path}: needs at least 2 rows and 1 column, got shape {array.shape}")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: row {int(np.argmax(bad))} holds NaN or infinity")
    return array


def _read_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                row = [float(cell) for cell in line.split(",")]
            except ValueError:
                if not rows and number == 1:
                    continue  # a header line
                raise DataError(f"{path}:{number}: not a row of numbers: {line[:80]!r}") from None
            if rows and len(row) != len(rows[0]):
                raise DataError(f"{path}:{number}: {len(row)} values, expected {len(rows[0])}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: holds no rows of numbers")
    return np.array(rows, np.float64)


def detect_levels(array: np.ndarray) -> int | None:
    """K when every value is an integer in [0, MAX_AUTO_LEVELS - 1] (K = max + 1), else None."""
    if np.all(array == np.round(array)) and array.min() >= 0 and array.max() < MAX_AUTO_LEVELS:
        return max(2, int(array.max()) + 1)
    return None


def load_density_data(args: argparse.Namespace) -> DensityData:
    """The train / validation / test rows of `--data` and what the manifest records of them."""
    spec = str(args.data)
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name == "digits":
            return digits_split()
        if name in BUILTIN_TOYS:
            return _toy(name, args)
        raise DataError(
            f"unknown built-in data {spec!r}; one of "
            f"{[BUILTIN_PREFIX + n for n in ('digits', *BUILTIN_TOYS)]}"
        )
    path = Path(spec)
    array = read_array(path)
    if args.levels is None:
        levels = detect_levels(array)
    else:
        levels = args.levels or None
    if levels is not None and (array.min() < 0 or array.max() > levels - 1):
        raise DataError(f"{path}: values must be integers in [0, {levels - 1}] for {levels} levels")
    if levels is not None and not np.all(array == np.round(array)):
        raise DataError(f"{path}: --levels {levels} needs integer values")
    if not 0.0 < args.valid_fraction < 1.0:
        raise DataError(f"--valid-fraction must be in (0, 1), not {args.valid_fraction}")
    order = np.random.default_rng(args.seed).permutation(len(array))
    n_valid = max(1, int(round(args.valid_fraction * len(array))))
    if n_valid >= len(array):
        raise DataError(f"{path}: too few rows ({len(array)}) for a validation split")
    valid, train = array[order[:n_valid]], array[order[n_valid:]]
    summary = data_summary(
        path,
        path.suffix.lower().lstrip("."),
        {"rows": len(array), "dim": array.shape[1], "train": len(train), "valid": len(valid)},
    )
    return DensityData(train, valid, None, levels, summary)


def digits_split() -> DensityData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    rest_x, test_x, rest_y, _ = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, random_state=0, stratify=y
    )
    train_x, valid_x = train_test_split(
        rest_x, test_size=DIGITS_VALID_SIZE, random_state=0, stratify=rest_y
    )
    summary = {
        "path": "builtin:digits",
        "format": "sklearn-load_digits",
        "sha256": None,
        "rows": len(x),
        "dim": x.shape[1],
        "train": len(train_x),
        "valid": len(valid_x),
        "test": len(test_x),
        "split": "train_test_split(test_size=447, random_state=0, stratify=y), then 350 of "
        "the rest for validation the same way",
    }
    arrays = (np.asarray(a, np.float64) for a in (train_x, valid_x, test_x))
    train, valid, test = arrays
    return DensityData(train, valid, test, DIGITS_LEVELS, summary)


def _toy(name: str, args: argparse.Namespace) -> DensityData:
    # Separate streams for train, valid and test, so changing one size leaves the others alone.
    draws = [
        sample_toy(BUILTIN_TOYS[name], n, np.random.default_rng([args.seed, i]))
        for i, n in enumerate((args.toy_samples, TOY_HELD_OUT, TOY_HELD_OUT))
    ]
    summary = {
        "path": f"{BUILTIN_PREFIX}{name}",
        "format": "toy-2d",
        "sha256": None,
        "seed": args.seed,
        "dim": 2,
        "train": args.toy_samples,
        "valid": TOY_HELD_OUT,
        "test": TOY_HELD_OUT,
    }
    return DensityData(draws[0], draws[1], draws[2], None, summary)


def make_preprocessing(data: DensityData, args: argparse.Namespace) -> Preprocessing:
    dim = data.train.shape[1]
    if data.levels is not None:
        alpha = args.logit_alpha if args.logit_alpha >= 0 else None
        return Preprocessing(dim, levels=data.levels, logit_alpha=alpha)
    if args.no_standardize:
        return Preprocessing(dim)
    return Preprocessing.standardizing(data.train)


def dequantize(x: np.ndarray, levels: int | None, rng: np.random.Generator) -> np.ndarray:
    """x + u, u ~ U[0, 1), for discrete data (in data units); continuous data as they are."""
    if levels is None:
        return x
    return x + rng.uniform(0.0, 1.0, size=x.shape)


def _eval_logdet(dim: int, args: argparse.Namespace) -> LogDetConfig | None:
    if dim <= args.exact_max_dim:
        return None
    return LogDetConfig(
        method="series", n_terms=EVAL_SERIES_TERMS, n_probes=EVAL_SERIES_PROBES,
        probe="rademacher",
    )  # fmt: skip


def _mean_bits_per_dim(preprocessing: Preprocessing, rows: np.ndarray, eval_fn: Any) -> float:
    """Mean -log p / (D ln 2) over rows (in data units) by `eval_fn` (rows -> log p [B])."""
    total = 0.0
    for start in range(0, len(rows), EVAL_BATCH_SIZE):
        batch = tf.constant(rows[start : start + EVAL_BATCH_SIZE], tf.float32)
        total += float(tf.reduce_sum(eval_fn(batch)))
    return -total / (len(rows) * preprocessing.input_dim * _LN2)


def _schedule(args: argparse.Namespace, total_steps: int) -> Any:
    """Linear warm-up to --lr, then cosine decay to zero."""
    warmup = min(args.warmup_steps, total_steps // 2)
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(args.lr, max(1, total_steps))
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=args.lr, warmup_steps=warmup
    )


def train_density(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process (used by `main` and tests).

    Returns:
        The exported version folder, or None when `--stop-after-steps` stopped the run early.
    """
    if not isinstance(args, argparse.Namespace):
        args = parse_args(list(args))
    set_seed(args.seed)
    log = _stderr
    started = time.perf_counter()

    data = load_density_data(args)
    preprocessing = make_preprocessing(data, args)
    dim = preprocessing.input_dim
    log(
        f"{len(data.train)} train, {len(data.valid)} valid rows of dimension {dim}; "
        + (f"discrete, {data.levels} levels" if data.levels else "continuous")
    )
    hidden = tuple(int(w) for w in str(args.hidden).split(",") if w.strip())
    train_logdet = LogDetConfig(
        method=args.logdet,
        n_terms=args.n_terms,
        n_probes=args.n_probes,
        neumann_gradient=args.neumann_gradient,
    )
    steps_per_epoch = math.ceil(len(data.train) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    schedule = _schedule(args, total_steps)
    strategy = make_strategy(args.strategy)
    chief = is_chief(strategy)
    # Everything holding variables is made under the strategy (mirrored across replicas).
    with strategy.scope():
        flow = IResNetFlow(
            num_blocks=args.blocks,
            hidden_units=hidden,
            activation=args.activation,
            lipschitz_coefficient=args.lipschitz_coeff,
            seed=args.seed,
        )
        # ActNorm's data-dependent initialisation, from a fixed dequantisation of the first rows.
        init_rows = dequantize(
            data.train[:INIT_ROWS], data.levels, np.random.default_rng(args.seed)
        )
        init_y, _ = preprocessing.forward(tf.constant(init_rows, tf.float32))
        flow.initialize(init_y)

        optimizer = keras.optimizers.Adam(learning_rate=schedule, global_clipnorm=args.clip_norm)
        optimizer.build(flow.trainable_variables)
        ema = ExponentialMovingAverage(flow.trainable_variables, decay=args.ema_decay)
        # The estimators' randomness is checkpointed too, so a resumed run draws what it would have.
        # (Under a strategy each replica draws its own stream from it.)
        generator = tf.random.Generator.from_seed(args.seed)
    keeper = CheckpointKeeper(
        Path(args.checkpoint_dir),
        read_only=not chief,
        flow=flow,
        optimizer=optimizer,
        ema=ema,
        generator=generator,
    )
    start_step = (keeper.restore_latest() or 0) if args.resume else 0
    if start_step:
        log(f"resumed from {keeper.latest} at step {start_step}")

    variables = flow.trainable_variables
    replicas = strategy.num_replicas_in_sync

    def replica_step(v: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            log_prob = data_log_prob(
                flow, preprocessing, v, train_logdet, training=True, generator=generator
            )
            # Nats per dimension: a learning rate that does not depend on D. Divided by the
            # replicas, whose gradients the optimizer sums (training.common.distribute).
            loss = -tf.reduce_mean(log_prob) / dim / replicas
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)])
    def train_step(v: tf.Tensor) -> tf.Tensor:
        losses = strategy.run(replica_step, args=(v,))
        ema.update()
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    eval_logdet = _eval_logdet(dim, args)

    @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)])
    def eval_log_prob(v: tf.Tensor) -> tf.Tensor:
        stateless = RowSharedStatelessGenerator(args.seed, tf.shape(v)[0])
        return data_log_prob(flow, preprocessing, v, eval_logdet, generator=stateless)

    # One fixed dequantisation of the validation rows, so epochs are compared on the same points.
    valid_rows = dequantize(data.valid, data.levels, np.random.default_rng([args.seed, 7]))
    board = TensorBoardLogger(args.log_dir if chief else None)
    stop = total_steps if args.stop_after_steps is None else min(total_steps, args.stop_after_steps)
    step, train_time, window, window_steps = start_step, 0.0, 0.0, 0
    valid_bpd = float("nan")
    with Progress(
        total=stop - start_step,
        desc="density",
        unit="step",
        disable=args.no_progress or not chief,
    ) as bar:
        t0 = time.perf_counter()
        while step < stop:
            epoch, index = divmod(step, steps_per_epoch)
            order = epoch_permutation(len(data.train), args.seed, epoch)
            rows = order[index * args.batch_size : (index + 1) * args.batch_size]
            rows = local_share(rows, strategy)
            # Noise seeded by the step, so a resumed run dequantises as the first run would.
            noise_rng = np.random.default_rng([args.seed, 1, step])
            batch = dequantize(data.train[rows], data.levels, noise_rng)
            loss = float(train_step(tf.constant(batch, tf.float32)))
            step += 1
            train_time = time.perf_counter() - t0
            bits = loss / _LN2
            window, window_steps = window + bits, window_steps + 1
            bar.update(1, bits_per_dim=bits, epoch=epoch + 1)
            if step % LOG_EVERY_STEPS == 0 or step == stop:
                board.scalars(
                    step, train_bits_per_dim=window / window_steps, lr=float(schedule(step))
                )
                window, window_steps = 0.0, 0
            if args.checkpoint_every and step % args.checkpoint_every == 0:
                keeper.save(step)
            if step % steps_per_epoch == 0:
                with ema.averaged():
                    valid_bpd = _mean_bits_per_dim(preprocessing, valid_rows, eval_log_prob)
                board.scalars(step, valid_bits_per_dim=valid_bpd)
                bar.write(
                    f"epoch {step // steps_per_epoch}/{args.epochs}: train bits/dim {bits:.4f}, "
                    f"valid bits/dim {valid_bpd:.4f}"
                )
    board.close()
    if keeper.latest is None or not keeper.latest.endswith(f"-{step}"):
        keeper.save(step)
    if step < total_steps:
        log(f"stopped after step {step}/{total_steps}; checkpoint {keeper.latest}")
        return None
    if not chief:
        log(f"worker {worker_index(strategy)} done; the chief exports")
        return None

    score_logdet = LogDetConfig(
        method="series", n_terms=args.score_terms, n_probes=args.score_probes, probe="rademacher"
    )
    with ema.averaged():
        # Converge sigma for the averaged weights: evaluation and the export need Lip(g) <= c.
        flow.update_spectral_norms(args.export_power_iterations)
        metrics = _final_metrics(preprocessing, data, valid_rows, eval_logdet, eval_log_prob, args)
        metrics.update(train_seconds=round(train_time, 2), steps=total_steps)
        log(f"metrics: {metrics}")
        hyper = {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        }
        extra: dict[str, Any] = {
            "input_dim": dim,
            "levels": data.levels,
            "preprocessing": preprocessing.describe(),
            "score": {
                "logdet": "series",
                "n_terms": score_logdet.n_terms,
                "n_probes": score_logdet.n_probes,
                "probe": score_logdet.probe,
                "seed": args.score_seed,
                "probes_shared_across_rows": True,
                "exact_signature": "score_exact",
            },
            "sampling": {
                "inverse": "fixed-point iteration per block",
                "max_iterations": args.inverse_max_iterations,
                "tolerance": args.inverse_tolerance,
                "seed_dtype": "int64",
            },
        }
        path = export_version(
            args.out,
            args.name,
            task="density",
            family=FAMILY,
            write_model=lambda folder: export_density_saved_model(
                folder,
                flow,
                preprocessing,
                score_logdet=score_logdet,
                score_seed=args.score_seed,
                inverse_tolerance=args.inverse_tolerance,
                inverse_max_iterations=args.inverse_max_iterations,
                power_iterations=0,  # done above
            ),
            config=hyper,
            data=data.summary,
            metrics=metrics,
            extra=extra,
        )
    log(f"exported {path} in {time.perf_counter() - started:.1f}s total")
    return path


def _final_metrics(
    preprocessing: Preprocessing,
    data: DensityData,
    valid_rows: np.ndarray,
    eval_logdet: LogDetConfig | None,
    eval_fn: Any,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Validation and test bits/dim of the exported weights (test: a mean over dequantisations)."""
    metrics: dict[str, Any] = {
        "eval_logdet": "exact"
        if eval_logdet is None
        else f"series(n_terms={eval_logdet.n_terms}, n_probes={eval_logdet.n_probes})",
        "valid_bits_per_dim": round(_mean_bits_per_dim(preprocessing, valid_rows, eval_fn), 5),
    }
    if data.test is not None:
        draws = args.test_draws if data.levels is not None else 1
        values = [
            _mean_bits_per_dim(
                preprocessing,
                dequantize(data.test, data.levels, np.random.default_rng([args.seed, 100 + i])),
                eval_fn,
            )
            for i in range(max(1, draws))
        ]
        metrics["test_bits_per_dim"] = round(float(np.mean(values)), 5)
        metrics["test_bits_per_dim_draws"] = [round(v, 5) for v in values]
    return metrics


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        path = train_density(parse_args(argv))
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if path is not None:
        print(path)


if __name__ == "__main__":
    main()
