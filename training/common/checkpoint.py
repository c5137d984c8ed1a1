"""Periodic training checkpoints and resume, over `tf.train.Checkpoint`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import tensorflow as tf

# Name under which the step counter is stored; reserved, so no trackable may use it.
STEP_KEY = "step"


class CheckpointKeeper:
    """Saves and restores a training job's state (weights, optimizer slots, EMA, step).

    Wraps a `tf.train.Checkpoint` of the given objects plus a step counter, and a
    `tf.train.CheckpointManager` that keeps only the newest `max_to_keep` checkpoints.
    The step stored is the number of training steps completed when it was saved, so a
    resumed job continues with step `restore_latest()` (0-based) and skips the batches
    before it (see `training.common.data.resume_position`).

    Args:
        directory: folder of the checkpoints (created on the first save).
        max_to_keep: how many of the newest checkpoints to keep on disk.
        **trackables: what to save, by name: `tf.Variable`s, `tf.Module`s, Keras models,
            layers and optimizers, `ExponentialMovingAverage`s. Keep the names stable across
            runs: they are the keys a restore matches on.

    Example:
    ```python
    keeper = CheckpointKeeper("checkpoints/jose", model=model, optimizer=opt, ema=ema)
    start = (keeper.restore_latest() or 0) if args.resume else 0
    for step in range(start, total_steps):
        train_step(...)
        if (step + 1) % args.checkpoint_every == 0:
            keeper.save(step + 1)
    keeper.save(total_steps)
    ```

    A Keras optimizer creates its slot variables on its first step; restoring before that
    is fine (TensorFlow restores them when they are created), but building it first with
    `optimizer.build(model.trainable_variables)` lets `restore_latest` check them too.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_to_keep: int = 3,
        *,
        read_only: bool = False,
        **trackables: Any,
    ):
        if STEP_KEY in trackables:
            raise ValueError(f"{STEP_KEY!r} is reserved for the step counter")
        if not trackables:
            raise ValueError("give at least one object to checkpoint")
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        self.directory = Path(directory)
        # A distributed run's other workers restore from the chief's checkpoints but never write.
        self.read_only = read_only
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="checkpoint_step")
        self.trackables = trackables
        self.checkpoint = tf.train.Checkpoint(**{STEP_KEY: self.step}, **trackables)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory=str(self.directory), max_to_keep=max_to_keep
        )

    @property
    def latest(self) -> str | None:
        """Path prefix of the newest checkpoint, or None if there is none."""
        return self.manager.latest_checkpoint

    @property
    def checkpoints(self) -> list[str]:
        """Path prefixes of the checkpoints kept, oldest first."""
        return list(self.manager.checkpoints)

    def save(self, step: int) -> str:
        """Writes a checkpoint numbered `step` and deletes ones beyond `max_to_keep`.

        Args:
            step: training steps completed so far.

        Returns:
            The checkpoint's path prefix (`<directory>/ckpt-<step>`); when read-only, the path
            the chief writes.
        """
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.read_only:
            return str(self.directory / f"ckpt-{step}")
        self.step.assign(step)
        return str(self.manager.save(checkpoint_number=step))

    def restore_latest(self) -> int | None:
        """Restores the newest checkpoint into the tracked objects.

        Returns:
            The step it was saved at, or None if the folder holds no checkpoint (the objects
            are left as they are).

        Raises:
            AssertionError: if an object that exists now has no value in the checkpoint, or
                (once every optimizer is built) the checkpoint holds a value no object has a
                place for: the checkpoint was written by a different model (a run started with
                an option that adds weights, `training.qa --copy-attention` say, resumed without
                it would otherwise drop them silently and export a model without them).
        """
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        status = self.checkpoint.restore(path)
        # Objects created later (optimizer slots before the first step) are restored on
        # creation, so only the ones that exist now can be checked.
        status.assert_existing_objects_matched()
        if not any(_unbuilt_optimizer(o) for o in self.trackables.values()):
            try:
                status.assert_consumed()
            except AssertionError as error:
                found = re.search(r'full_name: "([^"]+)"', str(error))
                what = found.group(1) if found else str(error).strip().splitlines()[0]
                raise AssertionError(
                    f"it holds values this run's model has no variable for ({what}, ...): an "
                    "option that adds weights was given when the run started and not now"
                ) from None
        return int(self.step.numpy())


def _unbuilt_optimizer(trackable: Any) -> bool:
    """A Keras optimizer whose slots do not exist yet (they are restored when created, so the
    checkpoint's values for them are not unused)."""
    return hasattr(trackable, "apply_gradients") and getattr(trackable, "built", True) is False
