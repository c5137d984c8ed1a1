"""The parts of the harness shared by the jobs that train a BERT (qa, generation): BERT's AdamW
recipe, a compiled (optionally distributed) step with EMA, resumable epochs of length-sorted
batches."""

from __future__ import annotations

import argparse
import math
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from models.bert.tokenizer import VOCAB_FILE
from models.data_errors import DataError, check_file
from training.common.cli import add_bert_model_args
from training.common.distribute import local_share
from training.common.ema import ExponentialMovingAverage
from training.common.job import Batch, Fit, Job, Plan
from training.common.text import epoch_batches

# Linear warm-up over this share of all steps, then cosine decay to zero.
WARMUP_FRACTION = 0.06
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0


def bert_adamw(
    peak_lr: float, total_steps: int
) -> tuple[keras.optimizers.Optimizer, keras.optimizers.schedules.LearningRateSchedule]:
    """AdamW with BERT's recipe: linear warm-up then (cosine) decay, weight decay 0.01 except on
    biases and LayerNorm parameters, gradients clipped to global norm 1."""
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=peak_lr, warmup_steps=warmup
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=WEIGHT_DECAY, global_clipnorm=CLIP_NORM
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer, schedule


def check_bert_inputs(args: argparse.Namespace) -> None:
    """DataError for an --init-checkpoint that is no checkpoint folder, a --vocab that is no
    file, or a from-scratch shape whose heads do not divide its width (tracebacks from deep in
    the loading and the model's building)."""
    folder = args.init_checkpoint
    if folder is not None:
        if not Path(folder).is_dir():
            what = "not a folder" if Path(folder).exists() else "no such folder"
            raise DataError(
                f"--init-checkpoint {folder}: {what}; give the folder of a BERT checkpoint "
                "(vocab.txt with config.json and model.safetensors, or bert_config.json and "
                "bert_model.ckpt.*)"
            )
        if not (Path(folder) / VOCAB_FILE).is_file():
            raise DataError(
                f"--init-checkpoint {folder}: no {VOCAB_FILE}; a BERT checkpoint folder holds "
                "vocab.txt with config.json and model.safetensors (Hugging Face) or "
                "bert_config.json and bert_model.ckpt.* (Google)"
            )
    if getattr(args, "vocab", None) is not None:
        check_file(args.vocab)
    if folder is None and args.hidden_size % args.num_heads:
        raise DataError(
            f"--hidden-size {args.hidden_size} is not a multiple of --num-heads {args.num_heads}"
        )


class BertJob(Job):
    """The harness's parts shared by the jobs that train a BERT (qa, generation): BERT's options
    and AdamW, resumable epochs of length-sorted batches (`epoch_batches`: they depend only on
    (seed, epoch), so a resumed run continues with the batch it would have taken next, and every
    worker of a distributed run agrees on them and takes its share), EMA, the loss in the bar.

    A subclass reads its data and builds the model in `prepare`, says how a batch is padded
    (`pad`), its loss (`loss`) and the inputs' `signature`, and writes `manifest`.
    """

    # Defaults of the BERT options (`add_bert_model_args`).
    batch_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    min_char_count: int = 1
    # Peak learning rates when fine-tuning `--init-checkpoint` and when training from scratch.
    finetune_lr: float
    scratch_lr: float

    model: Any

    def add_model_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_bert_model_args(
            parser,
            batch_size=self.batch_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            min_char_count=self.min_char_count,
        )

    @abstractmethod
    def prepare(self, args: argparse.Namespace, strategy: Any) -> np.ndarray:
        """Reads the data, builds `self.model` (under `strategy`); returns the samples' lengths."""

    @abstractmethod
    def signature(self) -> dict[str, Any]:
        """{name: tf.TensorSpec} of a padded batch."""

    @abstractmethod
    def pad(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The padded batch of the samples at `indices`."""

    @abstractmethod
    def loss(self, inputs: dict[str, Any]) -> Any:
        """The batch's loss, the forward pass in training mode."""

    def setup(self, args: argparse.Namespace, strategy: Any) -> Plan:
        self.args, self.strategy = args, strategy
        check_bert_inputs(args)
        self.lengths = self.prepare(args, strategy)
        self.steps_per_epoch = math.ceil(len(self.lengths) / args.batch_size)
        total_steps = self.steps_per_epoch * args.epochs
        self.peak_lr = args.lr or (
            self.finetune_lr if args.init_checkpoint is not None else self.scratch_lr
        )
        variables = self.model.trainable_variables
        with strategy.scope():
            optimizer, self.schedule = bert_adamw(self.peak_lr, total_steps)
            optimizer.build(variables)
            ema = ExponentialMovingAverage(variables, decay=args.ema_decay)
        self.train_step = make_train_step(
            variables,
            self.loss,
            optimizer,
            ema,
            self.signature(),
            jit_compile=args.jit,
            strategy=strategy,
        )
        self.window_loss, self.window_steps = 0.0, 0
        self.epoch_loss, self.epoch_steps = 0.0, 0
        self.last_epoch_loss = float("nan")
        return Plan(total_steps, ema, {"model": self.model, "optimizer": optimizer, "ema": ema})

    def batches(self, start: int, stop: int) -> Iterator[Batch]:
        step, epoch = start, start // self.steps_per_epoch
        while step < stop:
            batches = epoch_batches(self.lengths, self.args.batch_size, self.args.seed, epoch)
            for index in range(step - epoch * self.steps_per_epoch, len(batches)):
                if step >= stop:
                    break
                rows = local_share(batches[index], self.strategy)
                yield Batch(step, epoch, index == len(batches) - 1, rows)
                step += 1
            epoch += 1

    def train(self, batch: Batch, fit: Fit) -> dict[str, float]:
        loss = float(self.train_step(self.pad(batch.rows)))
        self.window_loss += loss
        self.window_steps += 1
        self.epoch_loss += loss
        self.epoch_steps += 1
        return {"loss": loss}

    def scalars(self, fit: Fit) -> dict[str, float]:
        scalars = {
            "loss": self.window_loss / self.window_steps,
            "lr": float(self.schedule(fit.step)),
            "samples_per_s": (fit.step - fit.start_step) * self.args.batch_size / fit.train_seconds,
        }
        self.window_loss, self.window_steps = 0.0, 0
        return scalars

    def end_epoch(self, epoch: int, fit: Fit) -> str:
        self.last_epoch_loss = self.epoch_loss / max(self.epoch_steps, 1)
        self.epoch_loss, self.epoch_steps = 0.0, 0
        return f"epoch {epoch + 1}/{self.args.epochs}: loss {self.last_epoch_loss:.4f}"

    def fit_metrics(self, fit: Fit) -> dict[str, Any]:
        """The manifest's metrics of the training itself."""
        loss = self.last_epoch_loss
        return {
            "final_epoch_loss": None if math.isnan(loss) else round(loss, 6),
            "train_seconds": round(fit.train_seconds, 2),
            "steps": fit.total_steps,
            # Fewer than `steps` (the schedule's) when --export-at-stop wrote a run stopped early.
            "steps_done": fit.step,
        }


def make_train_step(
    variables: Sequence[Any],
    loss_fn: Callable[[dict[str, Any]], Any],
    optimizer: keras.optimizers.Optimizer,
    ema: Any,
    input_signature: dict[str, Any],
    jit_compile: bool = False,
    strategy: Any = None,
) -> Callable[[dict[str, Any]], Any]:
    """A compiled step: `loss_fn(inputs)` (the forward pass in training mode), gradients, AdamW,
    EMA update; under a `tf.distribute` strategy, on every replica with this worker's rows.

    Args:
        variables: the trainable variables (the optimizer is built over them).
        loss_fn: the loss of a batch, from the inputs dict (which holds the targets).
        optimizer: built over `variables`.
        ema: an `ExponentialMovingAverage` over the same variables.
        input_signature: {name: tf.TensorSpec} of the inputs dict.
        jit_compile: XLA-compile the step (once per input shape; not with a distributed strategy,
            whose collective all-reduce XLA does not compile on CPU).
        strategy: the strategy the variables were created under (default: the current one).

    Returns:
        The step; it returns the loss of the global batch (replicas' losses summed).
    """
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if jit_compile and replicas > 1:
        raise ValueError("--jit does not combine with a distributed strategy")

    def replica_step(inputs: dict[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            # The optimizer sums gradients over replicas; dividing each replica's mean loss by
            # their number makes the sum the mean over the global batch. Clipping to the global
            # norm happens before that sum, on each replica's share (Keras' order).
            loss = loss_fn(inputs) / replicas
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function(input_signature=[input_signature], jit_compile=jit_compile)
    def train_step(inputs: dict[str, Any]) -> Any:
        losses = strategy.run(replica_step, args=(inputs,))
        # In cross-replica context: the shadows move towards the (identical) mirrored values.
        ema.update()
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return train_step
