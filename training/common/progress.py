"""A tqdm progress bar for training loops that also shows the latest metrics."""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm.auto import tqdm

# Seconds between redraws: tqdm's default on a terminal; when stderr is a log file every redraw
# is a new chunk of text, so redraw rarely there.
TERMINAL_MININTERVAL_S = 0.1
LOG_FILE_MININTERVAL_S = 5.0
# Weight of the latest update in tqdm's moving-average rate; training steps vary (data loading,
# checkpoints), and a smaller weight than tqdm's 0.3 shows a steadier speed.
RATE_SMOOTHING = 0.1
# Significant digits of a metric in the bar: enough to see a loss move, short enough to fit.
METRIC_DIGITS = 4


class Progress:
    """Progress bar on stderr showing steps done, speed (tqdm's rate) and the latest metrics.

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
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            disable=disable,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=TERMINAL_MININTERVAL_S if is_terminal else LOG_FILE_MININTERVAL_S,
            smoothing=RATE_SMOOTHING,
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
