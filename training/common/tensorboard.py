"""Scalar logging to TensorBoard event files, or nowhere when no log folder is given."""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf


class TensorBoardLogger:
    """Writes scalars with `tf.summary` under `log_dir`; every call is a no-op if it is None.

    Args:
        log_dir: folder for the event files (created if missing), e.g. `runs/<name>`; None
            turns logging off without the caller having to check.

    Example:
    ```python
    logger = TensorBoardLogger("runs/jose")
    logger.scalars(step, loss=0.42, learning_rate=0.01)
    logger.close()
    ```
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None) -> None:
        self.log_dir = None if log_dir is None else Path(log_dir)
        self._writer: tf.summary.SummaryWriter | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = tf.summary.create_file_writer(str(self.log_dir))

    @property
    def enabled(self) -> bool:
        """Whether anything is being written."""
        return self._writer is not None

    def scalars(self, step: int, **values: float) -> None:
        """Logs each keyword as a scalar series of that name at `step`.

        Args:
            step: global training step (the x-axis in TensorBoard).
            **values: series name -> value, e.g. `loss=0.42`; names may contain `/` to group
                series (`**{"eval/loss": 0.5}`).
        """
        if self._writer is None:
            return
        with self._writer.as_default(step=int(step)):
            for name, value in values.items():
                tf.summary.scalar(name, float(value))

    def flush(self) -> None:
        """Pushes buffered events to disk (TensorBoard reads only what is flushed)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file; later calls log nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
