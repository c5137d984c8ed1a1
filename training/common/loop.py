"""The step loop of the BERT-based jobs (qa, generation): BERT's AdamW recipe, resumable epochs
of length-sorted batches, EMA, checkpoints, progress and TensorBoard scalars."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from training.common.checkpoint import CheckpointKeeper
from training.common.progress import Progress
from training.common.tensorboard import TensorBoardLogger
from training.common.text import epoch_batches

# Linear warm-up over this share of all steps, then cosine decay to zero.
WARMUP_FRACTION = 0.06
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0
LOG_EVERY_STEPS = 20


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


@dataclass
class LoopResult:
    """Where the loop stopped: the step, seconds spent in it, the last full epoch's mean loss."""

    step: int
    train_seconds: float
    last_epoch_loss: float


def run_steps(
    *,
    lengths: np.ndarray,
    batch_size: int,
    epochs: int,
    seed: int,
    start_step: int,
    stop_step: int,
    train_batch: Callable[[np.ndarray], float],
    keeper: CheckpointKeeper,
    checkpoint_every: int,
    board: TensorBoardLogger,
    schedule: Any,
    desc: str,
    no_progress: bool,
    log: Callable[[str], None],
    share: Callable[[np.ndarray], np.ndarray] = lambda indices: indices,
) -> LoopResult:
    """Runs steps `start_step` .. `stop_step` of `epochs` epochs over samples of these lengths.

    `train_batch(indices)` trains on the samples at `indices` and returns the loss. The batches
    of an epoch depend only on (seed, epoch) (`epoch_batches`), so a resumed run continues with
    the batch it would have taken next, and every worker of a distributed run agrees on them;
    `share` picks this worker's rows of each (`training.common.distribute.local_share`).
    """
    steps_per_epoch = math.ceil(len(lengths) / batch_size)
    step, train_time, window_loss, window_steps = start_step, 0.0, 0.0, 0
    epoch_loss, epoch_steps, last_epoch_loss = 0.0, 0, float("nan")
    with Progress(total=stop_step - start_step, desc=desc, unit="step", disable=no_progress) as bar:
        t0 = time.perf_counter()
        epoch = start_step // steps_per_epoch
        while step < stop_step:
            batches = epoch_batches(lengths, batch_size, seed, epoch)
            for index in range(step - epoch * steps_per_epoch, len(batches)):
                if step >= stop_step:
                    break
                loss = train_batch(share(batches[index]))
                step += 1
                window_loss += loss
                window_steps += 1
                epoch_loss += loss
                epoch_steps += 1
                train_time = time.perf_counter() - t0
                bar.update(1, loss=loss, epoch=epoch + 1)
                if step % LOG_EVERY_STEPS == 0 or step == stop_step:
                    board.scalars(
                        step,
                        loss=window_loss / window_steps,
                        lr=float(schedule(step)),
                        samples_per_s=(step - start_step) * batch_size / train_time,
                    )
                    window_loss, window_steps = 0.0, 0
                if checkpoint_every and step % checkpoint_every == 0:
                    keeper.save(step)
            if step == (epoch + 1) * steps_per_epoch:
                last_epoch_loss = epoch_loss / max(epoch_steps, 1)
                log(f"epoch {epoch + 1}/{epochs}: loss {last_epoch_loss:.4f}")
                epoch_loss, epoch_steps = 0.0, 0
            epoch += 1
    board.close()
    if keeper.latest is None or not keeper.latest.endswith(f"-{step}"):
        keeper.save(step)
    return LoopResult(step, train_time, last_epoch_loss)


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
