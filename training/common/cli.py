"""Command-line options every training job shares."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.store import validate_model_name

# Where checkpoints and TensorBoard logs go when not given: <folder>/<model name>.
DEFAULT_CHECKPOINT_ROOT = Path("checkpoints")
DEFAULT_LOG_ROOT = Path("runs")
DEFAULT_STORE = Path("model_store")
DEFAULT_CHECKPOINT_EVERY = 1000
DEFAULT_WORKERS = 2
# Averages over roughly the last 1 / (1 - 0.999) = 1000 steps.
DEFAULT_EMA_DECAY = 0.999


def model_name(value: str) -> str:
    """argparse type: a model name (`models.store.validate_model_name`)."""
    return _model_name(value)


def _model_name(value: str) -> str:
    try:
        return validate_model_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    return _positive_int(value)


def positive_float(value: str) -> float:
    """argparse type: a finite number > 0 (a learning rate: NaN or a negative one trains a model
    that answers nothing sensible)."""
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def non_negative_float(value: str) -> float:
    """argparse type: a finite number >= 0 (a margin, a subsampling threshold: 0 turns it off)."""
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value}")
    return number


def non_negative_int(value: str) -> int:
    """argparse type: an integer >= 0."""
    return _non_negative_int(value)


def positive_fraction(value: str) -> float:
    """argparse type: a number in (0, 1] (a nucleus's probability mass)."""
    number = float(value)
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return number


def fraction(value: str) -> float:
    """argparse type: a number in [0, 1) (a share held out)."""
    return _fraction(value)


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _decay(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return number


def _optional_path(value: str) -> Path | None:
    # An empty value turns the feature off: `--log-dir ""` writes no TensorBoard logs.
    return Path(value) if value else None


# Default of --log-dir until --name fills it (None means "no logging", so it cannot mark unset).
_UNSET = argparse.SUPPRESS


class _NameAction(argparse.Action):
    """Stores `--name` and fills the per-name defaults of the folders not given explicitly.

    Defaults are set on the namespace before any option is parsed, so a folder that is still
    None here was not given before `--name`; one given after `--name` overrides this.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        if getattr(namespace, "checkpoint_dir", None) is None:
            namespace.checkpoint_dir = DEFAULT_CHECKPOINT_ROOT / str(values)
        if getattr(namespace, "log_dir", _UNSET) is _UNSET:
            namespace.log_dir = DEFAULT_LOG_ROOT / str(values)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Adds the options of DESIGN.md's "Training jobs" shared by every job.

    After parsing: `data`, `out` (Path), `name` (str), `epochs`, `seed`, `checkpoint_every`,
    `workers` (int), `checkpoint_dir` (Path, default `checkpoints/<name>`), `resume` (bool),
    `log_dir` (Path, default `runs/<name>`, None when given as ""), `ema_decay` (float),
    `no_progress` (bool). A job changes a default with `parser.set_defaults(epochs=5)`.

    Args:
        parser: the job's parser.
    """
    group = parser.add_argument_group("common training options")
    group.add_argument("--data", type=Path, required=True, help="training data file or folder")
    group.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("MODEL_STORE", DEFAULT_STORE)),
        help="model store to export into (default: $MODEL_STORE or ./model_store)",
    )
    group.add_argument(
        "--name",
        type=_model_name,
        required=True,
        action=_NameAction,
        help="model name in the store (letters, digits, '-', '_', '.')",
    )
    group.add_argument("--epochs", type=_positive_int, default=1, help="passes over the data")
    group.add_argument("--seed", type=_non_negative_int, default=0, help="random seed")
    group.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="training checkpoints folder (default: ./checkpoints/<name>)",
    )
    group.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=DEFAULT_CHECKPOINT_EVERY,
        help="save a checkpoint every this many steps, and at the end (0: only at the end)",
    )
    group.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint if any"
    )
    group.add_argument(
        "--log-dir",
        type=_optional_path,
        default=_UNSET,
        help='TensorBoard log folder (default: ./runs/<name>; "" for none)',
    )
    group.add_argument(
        "--workers",
        type=_non_negative_int,
        default=DEFAULT_WORKERS,
        help="threads preparing data (0: in the training thread)",
    )
    group.add_argument(
        "--ema-decay",
        type=_decay,
        default=DEFAULT_EMA_DECAY,
        help="decay of the exponential moving average of the weights that is exported",
    )
    group.add_argument(
        "--no-progress", action="store_true", help="no progress bar (e.g. when logging to a file)"
    )


def add_bert_model_args(
    parser: argparse.ArgumentParser,
    *,
    batch_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int,
    min_char_count: int = 1,
) -> None:
    """Adds the options of the jobs that train a BERT (qa, generation): where the weights start
    (`--init-checkpoint`, or a from-scratch model's shape and vocabulary), the optimiser's batch
    size and learning rate, XLA, `--stop-after-steps` and `--export-at-stop`.

    After parsing: `init_checkpoint`, `vocab` (Path or None), `min_char_count`, `batch_size`,
    `hidden_size`, `num_layers`, `num_heads`, `intermediate_size` (int), `lr` (float or None),
    `dropout` (float), `jit` (bool), `stop_after_steps` (int or None), `export_at_stop` (bool).
    """
    group = parser.add_argument_group("BERT model and optimiser")
    group.add_argument(
        "--init-checkpoint",
        type=Path,
        default=None,
        help="pretrained BERT folder (Hugging Face or Google TF); default: small BERT from scratch",
    )
    group.add_argument(
        "--vocab", type=Path, default=None, help="vocab.txt for a from-scratch model"
    )
    group.add_argument(
        "--min-char-count",
        type=_positive_int,
        default=min_char_count,
        help="characters seen fewer times are [UNK] (from-scratch vocabulary)",
    )
    group.add_argument("--batch-size", type=_positive_int, default=batch_size)
    group.add_argument("--lr", type=positive_float, default=None, help="peak learning rate")
    group.add_argument("--hidden-size", type=_positive_int, default=hidden_size)
    group.add_argument("--num-layers", type=_positive_int, default=num_layers)
    group.add_argument("--num-heads", type=_positive_int, default=num_heads)
    group.add_argument("--intermediate-size", type=_positive_int, default=intermediate_size)
    group.add_argument(
        "--dropout", type=_fraction, default=0.1, help="dropout of a from-scratch model"
    )
    group.add_argument(
        "--jit",
        action="store_true",
        help="XLA-compile the training step (compiles once per padded length, 20-80 s each on "
        "a loaded host; without dropout ~5%% less CPU a step for the small models, with dropout "
        "20%% more: XLA's random numbers are slow on CPU; bench/pretrain_step.py)",
    )
    group.add_argument(
        "--stop-after-steps",
        type=_positive_int,
        default=None,
        help="stop after this many steps (in total) with a checkpoint and no export",
    )
    group.add_argument(
        "--export-at-stop",
        action="store_true",
        help="also export when --stop-after-steps ends the run before its schedule (e.g. "
        "--resume --stop-after-steps N exports the step-N checkpoint as it is); the learning "
        "rate has then not decayed, so fewer --epochs is better when known in advance",
    )


def add_distribution_args(parser: argparse.ArgumentParser) -> None:
    """Adds `--strategy` (`training.common.distribute`): after parsing, `strategy` (str)."""
    from training.common.distribute import STRATEGIES

    group = parser.add_argument_group("distribution")
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy: mirrored (local GPUs), multiworker (the workers of "
        "TF_CONFIG; run the same command on each, the chief writes checkpoints and the export)",
    )
