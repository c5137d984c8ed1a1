"""Two ways of doing one thing timed side by side in this process: CPU time of the thread, the
two in turn each round, alternating which goes first (what else the machine runs hits both
alike), and the per-round ratio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def cpu_time(run: Callable[[], object], repeat: int) -> float:
    """Seconds of this thread's CPU per call of `run`, over `repeat` calls."""
    started = time.thread_time()
    for _ in range(repeat):
        run()
    return (time.thread_time() - started) / repeat


def paired_row(
    base: Callable[[], object], other: Callable[[], object], rounds: int, repeat: int
) -> str:
    """A table row's cells: base's and other's median time a call, and the median (quartiles)
    of the per-round ratio other / base."""
    base_s: list[float] = []
    other_s: list[float] = []
    for i in range(rounds):
        if i % 2:  # other first
            other_s.append(cpu_time(other, repeat))
            base_s.append(cpu_time(base, repeat))
        else:
            base_s.append(cpu_time(base, repeat))
            other_s.append(cpu_time(other, repeat))
    ratios = [o / b for o, b in zip(other_s, base_s, strict=True)]
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    return (
        f"{statistics.median(base_s) * 1e6:,.1f} us | {statistics.median(other_s) * 1e6:,.1f} us"
        f" | {q2:.3f} ({q1:.3f}-{q3:.3f})"
    )
