"""A tqdm progress bar for training loops that also shows the latest metrics."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from tqdm.auto import tqdm

# Seconds between redraws: tqdm's default on a terminal; when stderr is a log file every redraw
# is a new chunk of text, so redraw rarely there.
TERMINAL_MININTERVAL_S = 0.1
LOG_FILE_MININTERVAL_S = 5.0
# Significant digits of a metric in the bar: enough to see a loss move, short enough to fit.
METRIC_DIGITS = 4


class _RateAfterWarmup(tqdm):
    """tqdm whose speed, and so remaining time, leaves out the first update.

    A training job's first step traces its tf.function and, with `--jit`, compiles it with XLA:
    the QA demo's took 22 s where the next ones take well under one, and tqdm's rate made the
    first line's remaining time 47 hours. Here the first update shows `?` for both, and later
    ones the mean speed since the first ended: steadier than a moving average, as training steps
    vary (data loading, checkpoints). The elapsed time still counts from the start.
    """

    # (clock, units done) when the first update ended; None before it.
    warmed_at: tuple[float, float] | None = None

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        if self.warmed_at is None and not self.disable:
            self.warmed_at = (self._time(), self.n)
        return shown

    @property
    def format_dict(self) -> dict[str, Any]:
        # Fresh each call; tqdm's close() disables the bar before its last line, so no early
        # return on `self.disable`.
        meter: dict[str, Any] = super().format_dict
        rate = None
        if self.warmed_at is not None:
            since, done = self.warmed_at
            if self._time() > since and self.n > done:
                rate = (self.n - done) / (self._time() - since)
        meter["rate"] = rate
        if rate is None:
            # tqdm falls back on (n - initial) / elapsed: zero here, which it shows as `?`.
            meter["initial"] = self.n
        return meter


class Progress:
    """Progress bar on stderr showing steps done, speed and the latest metrics.

    The speed and remaining time leave out the first update, which in a training loop is the
    step that compiles (`_RateAfterWarmup`).

    Args:
        total: number of updates expected (steps, batches), or None when unknown.
        desc: label at the left of the bar, e.g. `"epoch 3/10"`.
        unit: what one update counts, shown in the rate (`"step/s"`).
        disable: no bar at all (for `--no-progress`, tests, or logs that are not a terminal);
            metrics are still recorded in `metrics`.

    Example:
    ```python
    with Progress(total=len(batches), desc="epoch 1") as bar:
        for batch in batches:
            loss = train_step(batch)
            bar.update(loss=float(loss), words_per_s=rate)
    ```
    """

    def __init__(
        self, total: int | None, desc: str, unit: str = "step", disable: bool = False
    ) -> None:
        self.metrics: dict[str, float] = {}
        # Counted here too: a disabled tqdm bar does not count.
        self._n = 0
        is_terminal = getattr(sys.stderr, "isatty", lambda: False)()
        self._bar = _RateAfterWarmup(
            total=total,
            desc=desc,
            unit=unit,
            disable=disable,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=TERMINAL_MININTERVAL_S if is_terminal else LOG_FILE_MININTERVAL_S,
        )

    @property
    def n(self) -> int:
        """Number of units counted so far."""
        return self._n

    def update(self, n: int = 1, **metrics: float) -> None:
        """Counts `n` more units and shows `metrics` (e.g. `loss=0.31`) in the bar's postfix.

        Args:
            n: units done since the last update.
            **metrics: latest values; each replaces the value of the same name shown before.
        """
        if metrics:
            self.metrics.update({key: float(value) for key, value in metrics.items()})
            self._bar.set_postfix(
                {key: f"{value:.{METRIC_DIGITS}g}" for key, value in self.metrics.items()},
                refresh=False,
            )
        self._n += n
        self._bar.update(n)

    def write(self, message: str) -> None:
        """Prints a line above the bar without breaking it (e.g. an end-of-epoch summary)."""
        self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        """Draws the bar one last time and releases the terminal line."""
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
