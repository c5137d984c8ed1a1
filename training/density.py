"""Train an invertible-ResNet density model (i-ResNet, Behrmann et al., ICML 2019; Residual Flows,
Chen et al., NeurIPS 2019) by maximum likelihood and export it into the model store.

    python -m training.density --data FILE.npy|FILE.csv --out model_store --name NAME --epochs N
    python -m training.density --data builtin:digits --name digits-flow --epochs 100
    python -m training.density --data builtin:moons --name moons-flow --epochs 20

`--data` is a 2-D array, rows = examples: a `.npy` file, a `.csv` of numbers (an optional header
line), or a built-in data set needing no download: `builtin:digits` (scikit-learn's 8x8 digits,
values 0..16, i.e. 17 levels) or a 2-D toy density
`builtin:blobs|moons|circles|8gaussians|checkerboard`.

Defaults that depend on the data (resolved before training and recorded in the manifest's
config): without `--epochs`, enough epochs for `AUTO_MIN_STEPS` optimiser steps (at least 10
epochs); `--logdet auto` is the exact log-determinant when D <= `AUTO_EXACT_TRAIN_MAX_DIM` (in 2-D
it costs two backward passes a block, cheaper than the roulette and without its variance), the
Russian roulette above; `--lr auto` is `LOW_DIM_LR` for such low-dimensional data and `DEFAULT_LR`
above. On 2-D data the earlier defaults (10 epochs, roulette, 1e-3) stopped far short of the fit:
two Gaussian blobs came out as one broad bump whose density was highest in the empty gap
(bench/density_2d.py, docs/benchmarks.md). The model's shape (`--blocks`, `--hidden`,
`--lipschitz-coeff`, `--actnorm`) is `LOW_DIM_MODEL` up to that D, `HIGH_DIM_MODEL` above: at
4 blocks of 64-64 two moons and eight Gaussians stayed blurred after 3,000 steps.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from models.density.data import DEFAULT_LOGIT_ALPHA
from models.density.datasets import (
    BUILTIN_PREFIX,
    MAX_AUTO_LEVELS,
    DensityData,
    builtin_data,
    check_levels,
    detect_levels,
    read_array,
    split_rows,
)
from models.density.export import EXPORT_POWER_ITERATIONS, export_density_saved_model
from models.density.iresnet_flow import IResNetFlow
from models.density.logdet import DEFAULT_SERIES_TERMS, LogDetConfig
from models.density.preprocessing import Preprocessing
from models.density.residual_block import (
    DEFAULT_INVERSE_MAX_ITERATIONS,
    DEFAULT_INVERSE_TOLERANCE,
)
from models.density.row_random import RowSharedStatelessGenerator
from models.density.scoring import data_log_prob
from training.common.cli import non_negative_float, non_negative_int, positive_float, positive_int
from training.common.data import data_summary, epoch_permutation
from training.common.distribute import local_share
from training.common.ema import ExponentialMovingAverage
from training.common.job import Batch, Fit, Job, Manifest, Plan, arguments_config, log

FAMILY = "iresnet"
DEFAULT_BATCH_SIZE = 256
# Residual Flows train with Adam at 1e-3 and clip gradients.
DEFAULT_LR = 1e-3
# Data of at most this many dimensions train with the exact log-determinant and LOW_DIM_LR by
# default: the exact one costs D backward passes a block against the roulette's 2 + E[N] = 4 on
# average (and the batch's longest draw bounds the loop), so up to about this D it is no dearer,
# and it gives noise-free gradients that take a larger step. On two 2-D blobs (5,000 rows, 900
# steps) 1e-3 left a KL of 0.93 nats with the gap scored above the blob centres, 5e-3 reached 0.12.
AUTO_EXACT_TRAIN_MAX_DIM = 8
LOW_DIM_LR = 5e-3
# Without --epochs, train for at least this many steps: a user's 2-D CSV of 5,000 rows is 18
# steps an epoch, so the old default of 10 epochs stopped after 180 steps, far from a fit.
AUTO_MIN_STEPS = 3000
AUTO_MIN_EPOCHS = 10
DEFAULT_WARMUP_STEPS = 100
# `--valid-every auto`: validate at most once an epoch and at least every this many steps. The
# exact log-det over the validation rows is dear next to a short epoch: on the digits (4 steps an
# epoch) validating every epoch took 40% of the training time.
AUTO_VALID_EVERY_STEPS = 100
DEFAULT_CLIP_NORM = 1.0
# Exact log-det costs D backward passes per block and row: fine for toys, tabular data, digits.
DEFAULT_EXACT_MAX_DIM = 64
# Evaluation series (when D is too large for the exact log-det): bias bound (2) shrinks as c^n.
EVAL_SERIES_TERMS = 30
EVAL_SERIES_PROBES = 4
EVAL_BATCH_SIZE = 512
# Rows the ActNorms are initialised from (data-dependent init, Kingma & Dhariwal 2018).
INIT_ROWS = 2048
# Without --jit / --no-jit, the training step is compiled with XLA when the run is not distributed
# and has at least this many steps: compiling the low-dimensional default model costs about 20 s
# more than tracing it, and makes a step about 2.5x cheaper (docs/benchmarks.md), which pays
# after a few hundred steps; tiny runs (tests, smoke runs) skip it.
JIT_AUTO_MIN_STEPS = 500
_LN2 = math.log(2.0)


class ModelShape(NamedTuple):
    """The model options that `--blocks/--hidden/--lipschitz-coeff/--actnorm auto` resolve to."""

    blocks: int
    hidden: str
    lipschitz_coeff: float
    actnorm: str


# Above AUTO_EXACT_TRAIN_MAX_DIM: the model the digits figures were measured with.
HIGH_DIM_MODEL = ModelShape(blocks=4, hidden="64,64", lipschitz_coeff=0.9, actnorm="input")
LOW_DIM_MODEL = ModelShape(blocks=8, hidden="128,128", lipschitz_coeff=0.97, actnorm="every")


def load_density_data(args: argparse.Namespace) -> DensityData:
    """The train / validation / test rows of `--data` and what the manifest records of them."""
    spec = str(args.data)
    if spec.startswith(BUILTIN_PREFIX):
        return builtin_data(spec, args.seed, args.toy_samples)
    path = Path(spec)
    array = read_array(path)
    levels = detect_levels(array) if args.levels is None else (args.levels or None)
    check_levels(path, array, levels)
    train, valid = split_rows(path, array, args.valid_fraction, args.seed)
    summary = data_summary(
        path,
        path.suffix.lower().lstrip("."),
        {"rows": len(array), "dim": array.shape[1], "train": len(train), "valid": len(valid)},
    )
    return DensityData(train, valid, None, levels, summary)


def make_preprocessing(data: DensityData, args: argparse.Namespace) -> Preprocessing:
    dim = data.train.shape[1]
    if data.levels is not None:
        alpha = args.logit_alpha if args.logit_alpha >= 0 else None
        return Preprocessing(dim, levels=data.levels, logit_alpha=alpha)
    if args.no_standardize:
        return Preprocessing(dim)
    return Preprocessing.standardizing(data.train)


def _learning_rate(text: str) -> float | str:
    return "auto" if text == "auto" else positive_float(text)


def _auto_int(text: str) -> int | str:
    return "auto" if text == "auto" else int(text)


def _auto_positive_int(text: str) -> int | str:
    return "auto" if text == "auto" else positive_int(text)


def _hidden(text: str) -> str:
    """--hidden: "auto" or widths separated by commas, each at least 1."""
    if text != "auto":
        try:
            widths = [int(w) for w in text.split(",") if w.strip()]
        except ValueError:
            widths = []
        if not widths or min(widths) < 1:
            raise argparse.ArgumentTypeError(f"must be widths such as 64,64, got {text!r}")
    return text


def _auto_float(text: str) -> float | str:
    return "auto" if text == "auto" else float(text)


def auto_epochs(rows: int, batch_size: int) -> int:
    """Epochs of at least AUTO_MIN_STEPS steps (and AUTO_MIN_EPOCHS) over `rows` training rows."""
    steps_per_epoch = math.ceil(rows / batch_size)
    return max(AUTO_MIN_EPOCHS, math.ceil(AUTO_MIN_STEPS / steps_per_epoch))


def auto_valid_every(steps_per_epoch: int) -> int:
    """Epochs between validations: as many as make up AUTO_VALID_EVERY_STEPS steps."""
    return max(1, AUTO_VALID_EVERY_STEPS // steps_per_epoch)


def resolve_auto_arguments(args: argparse.Namespace, dim: int, rows: int) -> None:
    """Sets `--epochs`, `--logdet` and `--lr` left to their data-dependent defaults, in `args`
    (so that the manifest's config records what ran)."""
    low_dim = dim <= AUTO_EXACT_TRAIN_MAX_DIM
    if args.epochs is None:
        args.epochs = auto_epochs(rows, args.batch_size)
    if args.logdet == "auto":
        # --neumann-gradient asks for an estimator's gradient: the roulette's.
        args.logdet = "exact" if low_dim and not args.neumann_gradient else "roulette"
    if args.lr == "auto":
        args.lr = LOW_DIM_LR if low_dim else DEFAULT_LR
    model = LOW_DIM_MODEL if low_dim else HIGH_DIM_MODEL
    for key in ("blocks", "hidden", "lipschitz_coeff", "actnorm"):
        if getattr(args, key) == "auto":
            setattr(args, key, getattr(model, key))


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


class DensityJob(Job):
    """The density family's parts of the harness (`training.common.job`)."""

    prog = "python -m training.density"
    description = "Train an invertible-ResNet density model and export it."
    task, family, label = "density", FAMILY, "density"
    # None: `auto_epochs` (enough for AUTO_MIN_STEPS steps), resolved once the data are read.
    defaults = {"epochs": None}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("model")
        low, high = LOW_DIM_MODEL, HIGH_DIM_MODEL
        g.add_argument(
            "--blocks",
            type=_auto_positive_int,
            default="auto",
            help=f"invertible residual blocks; auto: {low.blocks} when D <= "
            f"{AUTO_EXACT_TRAIN_MAX_DIM}, else {high.blocks}",
        )
        g.add_argument(
            "--hidden",
            type=_hidden,
            default="auto",
            help=f"widths of each block's hidden layers; auto: {low.hidden} when D <= "
            f"{AUTO_EXACT_TRAIN_MAX_DIM}, else {high.hidden}",
        )
        g.add_argument("--activation", choices=("lipswish", "elu"), default="lipswish")
        g.add_argument(
            "--lipschitz-coeff",
            type=_auto_float,
            default="auto",
            help=f"spectral-norm bound c < 1 of every layer (Lip(g) <= c); auto: "
            f"{low.lipschitz_coeff} when D <= {AUTO_EXACT_TRAIN_MAX_DIM}, else "
            f"{high.lipschitz_coeff}",
        )
        g.add_argument(
            "--actnorm",
            choices=("auto", "input", "every"),
            default="auto",
            help="ActNorm before the first block only (input) or before every block (every, as "
            f"in Residual Flows); auto: {low.actnorm} when D <= {AUTO_EXACT_TRAIN_MAX_DIM}, "
            f"else {high.actnorm}",
        )
        g = parser.add_argument_group("log-determinant in training")
        g.add_argument(
            "--logdet",
            choices=("auto", "roulette", "series", "exact"),
            default="auto",
            help=f"auto: exact when D <= {AUTO_EXACT_TRAIN_MAX_DIM}, else roulette",
        )
        g.add_argument(
            "--n-terms", type=positive_int, default=DEFAULT_SERIES_TERMS, help="terms of the series"
        )
        g.add_argument("--n-probes", type=positive_int, default=1, help="Hutchinson probes per row")
        g.add_argument(
            "--neumann-gradient",
            action="store_true",
            help="series/roulette: differentiate by the Neumann series (Residual Flows, Sec. 3.2), "
            "the memory of one backward pass instead of one per term",
        )
        g.add_argument(
            "--exact-max-dim",
            type=non_negative_int,
            default=DEFAULT_EXACT_MAX_DIM,
            help="evaluate with the exact log-det up to this D, else with a long series",
        )
        g = parser.add_argument_group("optimiser")
        g.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
        g.add_argument(
            "--lr",
            type=_learning_rate,
            default="auto",
            help=f"peak learning rate (Adam); auto: {LOW_DIM_LR} when D <= "
            f"{AUTO_EXACT_TRAIN_MAX_DIM}, else {DEFAULT_LR}",
        )
        g.add_argument("--warmup-steps", type=non_negative_int, default=DEFAULT_WARMUP_STEPS)
        g.add_argument(
            "--clip-norm",
            type=non_negative_float,
            default=DEFAULT_CLIP_NORM,
            help="global gradient-norm clip (0: none)",
        )
        g.add_argument(
            "--stop-after-steps",
            type=positive_int,
            default=None,
            help="stop after this many steps (in total) with a checkpoint and no export",
        )
        g.add_argument(
            "--jit",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="XLA-compile the training step (--no-jit: do not); default: when the run is not "
            f"distributed and has at least {JIT_AUTO_MIN_STEPS} steps",
        )
        g = parser.add_argument_group("data")
        g.add_argument(
            "--levels",
            type=non_negative_int,
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
        g.add_argument(
            "--valid-every",
            type=_auto_int,
            default="auto",
            help="epochs between validations (the last epoch always validates); auto: every "
            f"epoch, or as many epochs as make {AUTO_VALID_EVERY_STEPS} steps when epochs are "
            "shorter",
        )
        g.add_argument(
            "--toy-samples", type=positive_int, default=20000, help="training draws of a toy"
        )
        g.add_argument(
            "--test-draws",
            type=positive_int,
            default=3,
            help="dequantisation draws averaged in test bits/dim",
        )
        g = parser.add_argument_group("export")
        g.add_argument(
            "--score-terms", type=positive_int, default=20, help="series terms of `score`"
        )
        g.add_argument("--score-probes", type=positive_int, default=4, help="probes of `score`")
        g.add_argument(
            "--score-seed", type=non_negative_int, default=1234, help="fixed seed of its probes"
        )
        g.add_argument(
            "--inverse-max-iterations", type=positive_int, default=DEFAULT_INVERSE_MAX_ITERATIONS
        )
        g.add_argument(
            "--inverse-tolerance", type=positive_float, default=DEFAULT_INVERSE_TOLERANCE
        )
        g.add_argument(
            "--export-power-iterations",
            type=non_negative_int,
            default=EXPORT_POWER_ITERATIONS,
            help="power iterations per layer before evaluation and export",
        )

    def check_arguments(self, args: argparse.Namespace) -> None:
        if args.lipschitz_coeff != "auto" and not 0.0 < args.lipschitz_coeff < 1.0:
            raise SystemExit(f"--lipschitz-coeff must be in (0, 1), not {args.lipschitz_coeff}")
        if args.neumann_gradient and args.logdet == "exact":
            raise SystemExit("--neumann-gradient is for --logdet series or roulette, not exact")
        if args.valid_every != "auto" and args.valid_every < 1:
            raise SystemExit(f"--valid-every must be at least 1, not {args.valid_every}")

    def setup(self, args: argparse.Namespace, strategy: Any) -> Plan:
        self.args, self.strategy = args, strategy
        self.data = data = load_density_data(args)
        self.preprocessing = preprocessing = make_preprocessing(data, args)
        dim = preprocessing.input_dim
        log(
            f"{len(data.train)} train, {len(data.valid)} valid rows of dimension {dim}; "
            + (f"discrete, {data.levels} levels" if data.levels else "continuous")
        )
        resolve_auto_arguments(args, dim, len(data.train))
        hidden = tuple(int(w) for w in str(args.hidden).split(",") if w.strip())
        log(
            f"model: {args.blocks} blocks of {args.hidden}, Lipschitz {args.lipschitz_coeff}, "
            f"ActNorm {args.actnorm}; training: {args.epochs} epochs, log-det {args.logdet}, "
            f"peak lr {args.lr}"
        )
        train_logdet = LogDetConfig(
            method=args.logdet,
            n_terms=args.n_terms,
            n_probes=args.n_probes,
            neumann_gradient=args.neumann_gradient,
        )
        self.steps_per_epoch = math.ceil(len(data.train) / args.batch_size)
        if args.valid_every == "auto":
            args.valid_every = auto_valid_every(self.steps_per_epoch)
        total_steps = self.steps_per_epoch * args.epochs
        self.schedule = _schedule(args, total_steps)
        replicas = strategy.num_replicas_in_sync
        # XLA compiles no gradient of the roulette's while loop of random length (a tensor list
        # of unknown size); the Neumann gradient's custom gradient it does.
        jit_logdet = args.logdet != "roulette" or args.neumann_gradient
        if args.jit and replicas > 1:
            raise SystemExit("--jit does not combine with a distributed strategy")
        if args.jit and not jit_logdet:
            raise SystemExit(
                "--jit does not combine with --logdet roulette (without --neumann-gradient)"
            )
        if args.jit is None:
            args.jit = replicas == 1 and jit_logdet and total_steps >= JIT_AUTO_MIN_STEPS
        # Everything holding variables is made under the strategy (mirrored across replicas).
        with strategy.scope():
            self.flow = flow = IResNetFlow(
                num_blocks=args.blocks,
                hidden_units=hidden,
                activation=args.activation,
                lipschitz_coefficient=args.lipschitz_coeff,
                actnorm_between_blocks=args.actnorm == "every",
                seed=args.seed,
            )
            # ActNorm's data-dependent initialisation, from a fixed dequantisation of the first
            # rows.
            init_rows = dequantize(
                data.train[:INIT_ROWS], data.levels, np.random.default_rng(args.seed)
            )
            init_y, _ = preprocessing.forward(tf.constant(init_rows, tf.float32))
            flow.initialize(init_y)

            optimizer = keras.optimizers.Adam(
                learning_rate=self.schedule, global_clipnorm=args.clip_norm or None
            )
            optimizer.build(flow.trainable_variables)
            self.ema = ema = ExponentialMovingAverage(
                flow.trainable_variables, decay=args.ema_decay
            )
            # The estimators' randomness is checkpointed too, so a resumed run draws what it
            # would have. (Under a strategy each replica draws its own stream from it.)
            generator = tf.random.Generator.from_seed(args.seed)

        variables = flow.trainable_variables

        def replica_step(v: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                log_prob = data_log_prob(
                    flow, preprocessing, v, train_logdet, training=True, generator=generator
                )
                # The mean over the batch's real rows (weight 1; padding rows weigh 0). In nats
                # per dimension: a learning rate that does not depend on D. Divided by the
                # replicas, whose gradients the optimizer sums (training.common.distribute).
                mean = tf.reduce_sum(weights * log_prob) / tf.reduce_sum(weights)
                loss = -mean / dim / replicas
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss

        # No autograph: the model's control flow is written with tf.cond / tf.while_loop, and
        # converting the model's code took a fifth of the first step's tracing. With --jit every
        # batch is padded to --batch-size (`train`), so XLA compiles one shape, not two.
        rows = [args.batch_size, dim] if args.jit else [None, dim]

        @tf.function(
            input_signature=[
                tf.TensorSpec(rows, tf.float32),
                tf.TensorSpec(rows[:1], tf.float32),
            ],
            jit_compile=args.jit,
            autograph=False,
        )
        def train_step(v: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
            losses = strategy.run(replica_step, args=(v, weights))
            ema.update()
            return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        self.eval_logdet = eval_logdet = _eval_logdet(dim, args)

        @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)], autograph=False)
        def eval_log_prob(v: tf.Tensor) -> tf.Tensor:
            stateless = RowSharedStatelessGenerator(args.seed, tf.shape(v)[0])
            return data_log_prob(flow, preprocessing, v, eval_logdet, generator=stateless)

        self.train_step, self.eval_log_prob = train_step, eval_log_prob
        # One fixed dequantisation of the validation rows, so epochs are compared on the same
        # points.
        self.valid_rows = dequantize(data.valid, data.levels, np.random.default_rng([args.seed, 7]))
        self.window, self.window_steps, self.bits = 0.0, 0, float("nan")
        trackables = {"flow": flow, "optimizer": optimizer, "ema": ema, "generator": generator}
        return Plan(total_steps, ema, trackables)

    def batches(self, start: int, stop: int) -> Iterator[Batch]:
        batch_size, rows = self.args.batch_size, len(self.data.train)
        for step in range(start, stop):
            epoch, index = divmod(step, self.steps_per_epoch)
            order = epoch_permutation(rows, self.args.seed, epoch)
            share = local_share(order[index * batch_size : (index + 1) * batch_size], self.strategy)
            yield Batch(step, epoch, (step + 1) % self.steps_per_epoch == 0, share)

    def train(self, batch: Batch, fit: Fit) -> dict[str, float]:
        # Noise seeded by the step, so a resumed run dequantises as the first run would.
        noise_rng = np.random.default_rng([self.args.seed, 1, batch.step])
        values = dequantize(self.data.train[batch.rows], self.data.levels, noise_rng)
        weights = np.ones(len(values), np.float32)
        if self.args.jit and len(values) < self.args.batch_size:
            # The epoch's last, short batch: its rows repeated up to the compiled shape, the
            # copies weighing 0 (real rows, so no padding value can make the loss NaN).
            padded = np.arange(self.args.batch_size) % len(values)
            values = values[padded]
            weights = (np.arange(self.args.batch_size) < len(weights)).astype(np.float32)
        loss = float(
            self.train_step(tf.constant(values, tf.float32), tf.constant(weights, tf.float32))
        )
        self.bits = loss / _LN2
        self.window, self.window_steps = self.window + self.bits, self.window_steps + 1
        return {"bits_per_dim": self.bits}

    def scalars(self, fit: Fit) -> dict[str, float]:
        scalars = {
            "train_bits_per_dim": self.window / self.window_steps,
            "lr": float(self.schedule(fit.step)),
        }
        self.window, self.window_steps = 0.0, 0
        return scalars

    def end_epoch(self, epoch: int, fit: Fit) -> str:
        # Short epochs are summed up only when validated: a line an epoch of 4 steps is noise.
        if (epoch + 1) % self.args.valid_every and epoch + 1 < self.args.epochs:
            return ""
        with self.ema.averaged():
            valid_bpd = _mean_bits_per_dim(self.preprocessing, self.valid_rows, self.eval_log_prob)
        fit.board.scalars(fit.step, valid_bits_per_dim=valid_bpd)
        return (
            f"epoch {epoch + 1}/{self.args.epochs}: train bits/dim {self.bits:.4f}, "
            f"valid bits/dim {valid_bpd:.4f}"
        )

    def manifest(self, args: argparse.Namespace, fit: Fit) -> Manifest:
        flow, preprocessing, data = self.flow, self.preprocessing, self.data
        score_logdet = LogDetConfig(
            method="series",
            n_terms=args.score_terms,
            n_probes=args.score_probes,
            probe="rademacher",
        )
        # Converge sigma for the averaged weights: evaluation and the export need Lip(g) <= c.
        flow.update_spectral_norms(args.export_power_iterations)
        metrics = _final_metrics(
            preprocessing, data, self.valid_rows, self.eval_logdet, self.eval_log_prob, args
        )
        metrics.update(train_seconds=round(fit.train_seconds, 2), steps=fit.total_steps)
        log(f"metrics: {metrics}")
        extra: dict[str, Any] = {
            "input_dim": preprocessing.input_dim,
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
        return Manifest(
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
            config=arguments_config(args),
            data=data.summary,
            metrics=metrics,
            extra=extra,
        )


def build_parser() -> argparse.ArgumentParser:
    return DensityJob().build_parser()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return DensityJob().parse_args(argv)


def train_density(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process (`DensityJob.run`: used by `main` and tests)."""
    return DensityJob().run(args)


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


def main(argv: Sequence[str] | None = None) -> None:
    DensityJob.main(argv)


if __name__ == "__main__":
    main()
