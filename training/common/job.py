"""One harness for every training job: a family writes its parts (options, data, model, step,
metrics, manifest) as a `Job` subclass, and `Job.run` does the rest the same way for all of them:
arguments, seed, `tf.distribute` strategy, checkpoints and `--resume`, the step loop with its
progress bar, TensorBoard scalars, periodic checkpoints and `--stop-after-steps`, then the export of
the averaged (EMA) weights into the model store by the chief.

    class DensityJob(Job):
        prog, description = "python -m training.density", "Train ... and export it."
        task, family, label = "density", "iresnet", "density"

        def add_arguments(self, parser): ...        # the family's own options
        def setup(self, args, strategy): ...        # data, model, optimiser, EMA -> `Plan`
        def batches(self, start, stop): ...         # `Batch`es of steps start .. stop - 1
        def train(self, batch, fit): ...            # one step -> metrics shown in the bar
        def scalars(self, fit): ...                 # TensorBoard, every `log_every` steps
        def end_epoch(self, epoch, fit): ...        # the epoch's summary line
        def manifest(self, args, fit): ...          # evaluation -> `Manifest` (weights averaged)

    def train_density(args):                        # in-process: argv or Namespace -> Path | None
        return DensityJob().run(args)
"""

from __future__ import annotations

import argparse
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.data_errors import DataError
from training.common.checkpoint import CheckpointKeeper
from training.common.cli import add_common_args, add_distribution_args
from training.common.distribute import is_chief, make_strategy, worker_index
from training.common.ema import ExponentialMovingAverage
from training.common.export import check_store, export_version
from training.common.progress import Progress
from training.common.seeding import set_seed
from training.common.tensorboard import TensorBoardLogger

# TensorBoard scalars every this many steps (and at the last step of the run).
LOG_EVERY_STEPS = 20


def log(message: str) -> None:
    """A job's narration: one line on stderr (stdout carries only the exported folder)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Batch:
    """One training step's work: its 0-based step and epoch, whether it is the epoch's last, and
    what the job's `train` consumes (indices, a prepared batch)."""

    step: int
    epoch: int
    ends_epoch: bool
    rows: Any


@dataclass
class Plan:
    """What `Job.setup` built for the harness: the steps of the whole run, the EMA whose averages
    are evaluated and exported, and the objects a checkpoint holds, by name (the restore keys:
    keep them stable)."""

    total_steps: int
    ema: ExponentialMovingAverage
    trackables: dict[str, Any]


@dataclass
class Fit:
    """Where the step loop stands; the hooks read it. `step` counts the steps done."""

    start_step: int
    stop_step: int
    total_steps: int
    step: int
    board: TensorBoardLogger
    started_at: float = field(default_factory=time.perf_counter)
    train_seconds: float = 0.0

    def elapsed(self) -> float:
        """Seconds since the loop's first step started."""
        return time.perf_counter() - self.started_at


@dataclass
class Manifest:
    """The family's part of an export (`training.common.export.export_version`)."""

    write_model: Callable[[Path], list[str]]
    config: dict[str, Any]
    data: dict[str, Any]
    metrics: dict[str, Any]
    extra: dict[str, Any]


class TrainingDiverged(RuntimeError):
    """The weights to export hold NaN or infinity: nothing is exported."""


def check_finite(variables: Iterable[Any]) -> None:
    """Raises TrainingDiverged when a variable holds NaN or infinity: such a version would load
    and answer NaN (null in JSON) to every request."""
    import numpy as np

    bad = [getattr(v, "path", None) or v.name for v in variables if not np.isfinite(v).all()]
    if bad:
        raise TrainingDiverged(
            f"training diverged: {len(bad)} weight tensors hold NaN or infinity ({bad[0]}, ...); "
            "nothing was exported. Start again with a lower --lr (and another --checkpoint-dir: "
            "the last checkpoint holds these weights), and check the data for huge values"
        )


def arguments_config(args: argparse.Namespace) -> dict[str, Any]:
    """Every option of the run as the manifest's `config` records it (paths as strings)."""
    return {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()}


class Job(ABC):
    """A training job: subclasses fill in the family's parts; `run` is the same for all.

    The hooks `setup`, `batches`, `train`, `scalars`, `end_epoch` and `manifest` run in that order
    within one `run`, on one instance, so a job keeps its model and running sums on `self`.
    """

    prog: str
    description: str
    # The manifest's task and family, and the progress bar's label.
    task: str
    family: str
    label: str
    # Defaults of the common options this family changes (`parser.set_defaults`).
    defaults: Mapping[str, Any] = {}
    log_every: int = LOG_EVERY_STEPS

    # Arguments.
    def add_model_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 (optional hook)
        """Options shown between the common ones and `--strategy` (the BERT jobs' model group)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 (optional hook)
        """The family's own options (after `--strategy`); they must include --stop-after-steps."""

    def check_arguments(self, args: argparse.Namespace) -> None:  # noqa: B027 (optional hook)
        """Raises SystemExit for combinations argparse cannot refuse by itself."""

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=self.prog, description=self.description)
        add_common_args(parser)
        self.add_model_arguments(parser)
        add_distribution_args(parser)
        self.add_arguments(parser)
        # Last: an option's own `default=` wins over defaults set before it was added.
        parser.set_defaults(**self.defaults)
        return parser

    def parse_args(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        parser = self.build_parser()
        args = parser.parse_args(argv)
        try:
            self.check_arguments(args)
        except SystemExit as refused:  # a message: argparse's error line and status 2, as the
            if isinstance(refused.code, str):  # options argparse refuses by itself
                parser.error(refused.code)
            raise
        return args

    # The family's parts.
    @abstractmethod
    def setup(self, args: argparse.Namespace, strategy: Any) -> Plan:
        """Reads the data, builds the model, optimiser and EMA (variables under `strategy`)."""

    @abstractmethod
    def batches(self, start: int, stop: int) -> Iterable[Batch]:
        """The batches of steps `start` .. `stop - 1`, the same ones whether resumed or not."""

    @abstractmethod
    def train(self, batch: Batch, fit: Fit) -> Mapping[str, float]:
        """Trains one step; returns the metrics shown in the progress bar."""

    @abstractmethod
    def scalars(self, fit: Fit) -> Mapping[str, float]:
        """TensorBoard scalars since the last call (every `log_every` steps and at the end)."""

    @abstractmethod
    def end_epoch(self, epoch: int, fit: Fit) -> str:
        """The summary line of 0-based `epoch`, just finished (may evaluate, log scalars); "":
        none this epoch."""

    @abstractmethod
    def manifest(self, args: argparse.Namespace, fit: Fit) -> Manifest:
        """Evaluates the averaged weights (swapped in) and says what the export holds."""

    # The harness.
    def run(self, args: argparse.Namespace | Sequence[str]) -> Path | None:
        """Runs the whole job in-process (used by `main`, tests and the demos).

        Args:
            args: parsed options (`parse_args`) or a command line without the program name.

        Returns:
            The exported version folder, or None when `--stop-after-steps` stopped the run early
            (a checkpoint holds the state; rerun with `--resume` to finish) and on a distributed
            run's workers other than the chief.
        """
        if not isinstance(args, argparse.Namespace):
            args = self.parse_args(list(args))
        self.check_out(args)
        set_seed(args.seed)
        started = time.perf_counter()
        # Before any TensorFlow op: a multi-worker strategy configures the collectives at start-up.
        strategy = make_strategy(args.strategy)
        chief = is_chief(strategy)
        plan = self.setup(args, strategy)
        keeper = CheckpointKeeper(Path(args.checkpoint_dir), read_only=not chief, **plan.trackables)
        try:
            start = (keeper.restore_latest() or 0) if args.resume else 0
        except (ValueError, AssertionError) as error:  # another model's (TensorFlow's words)
            why = str(error).strip().splitlines()[0][:300]
            raise DataError(
                f"--resume: the checkpoint in {args.checkpoint_dir} is not of this model (other "
                f"options or data made it: {why}); resume with the options it was started with, "
                "or give another --checkpoint-dir"
            ) from None
        if start:
            log(f"resumed from {keeper.latest} at step {start}")
        total = plan.total_steps
        stop = total if args.stop_after_steps is None else min(total, args.stop_after_steps)
        board = TensorBoardLogger(args.log_dir if chief else None)
        fit = Fit(start, stop, total, start, board)
        self._fit(fit, keeper, args.checkpoint_every, disable_bar=args.no_progress or not chief)
        # A job may offer `--export-at-stop` (the BERT jobs: qa, generation, pretrain): the
        # averaged weights of a run stopped early are then exported too.
        if fit.step < total and not getattr(args, "export_at_stop", False):
            log(f"stopped after step {fit.step}/{total}; checkpoint {keeper.latest}")
            return None
        if not chief:
            log(f"worker {worker_index(strategy)} done; the chief exports")
            return None
        with plan.ema.averaged():
            check_finite(plan.ema.averaged_variables)
            path = self.export(args, self.manifest(args, fit))
        log(f"exported {path} in {time.perf_counter() - started:.1f}s total")
        return path

    def check_out(self, args: argparse.Namespace) -> None:
        """Refuses an `--out` the export could not rightly write into, before any training
        (`training.common.export.check_store`; a job writing elsewhere overrides it)."""
        check_store(args.out, args.name, self.task)

    def export(self, args: argparse.Namespace, manifest: Manifest) -> Path:
        """Writes what the run made, with the averaged weights in place: a new version in the
        model store (a job whose product is not served, `training.pretrain`, writes elsewhere)."""
        # The Manifest's fields are `export_version`'s keyword arguments of the same names.
        return export_version(
            args.out, args.name, task=self.task, family=self.family, **vars(manifest)
        )

    def _fit(
        self, fit: Fit, keeper: CheckpointKeeper, checkpoint_every: int, disable_bar: bool
    ) -> None:
        """Steps `fit.start_step` .. `fit.stop_step`: progress, scalars, checkpoints, epochs."""
        saved_at: int | None = None
        with Progress(
            total=fit.stop_step - fit.start_step, desc=self.label, unit="step", disable=disable_bar
        ) as bar:
            fit.started_at = time.perf_counter()
            for batch in self.batches(fit.start_step, fit.stop_step):
                shown = self.train(batch, fit)
                fit.step = batch.step + 1
                fit.train_seconds = fit.elapsed()
                bar.update(1, **shown, epoch=batch.epoch + 1)
                if fit.step % self.log_every == 0 or fit.step == fit.stop_step:
                    fit.board.scalars(fit.step, **self.scalars(fit))
                if checkpoint_every and fit.step % checkpoint_every == 0:
                    keeper.save(fit.step)
                    saved_at = fit.step
                if batch.ends_epoch and (line := self.end_epoch(batch.epoch, fit)):
                    bar.write(line)
        fit.board.close()
        # The state at the stop, unless the loop has just saved it or a resumed run did no step.
        if keeper.latest is None or (fit.step > fit.start_step and saved_at != fit.step):
            keeper.save(fit.step)

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> None:
        """The command line: runs the job and prints the exported folder on stdout."""
        job = cls()
        try:
            path = job.run(job.parse_args(argv))
        except DataError as error:  # the user's files: one line, not a traceback (data_errors)
            print(f"error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except TrainingDiverged as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        if path is not None:
            print(path)
