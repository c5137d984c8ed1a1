"""DynamicBatcher: one bounded queue and one worker per model.

The contract is Ray Serve's: the batched function takes a list of items and returns a list of the
same length, in order; callers submit items and each gets its own result back. Around that:

- admission is all-or-nothing per request and bounded (`max_queue`): past it,
  `Overloaded` (429) at once; a request with more items than `max_queue` on its own could never
  be admitted and gets `PayloadTooLarge` (413), not a 429 to retry for ever;
- a batch closes at `max_batch_size` rows, at `max_batch_tokens` padded tokens
  (rows x longest row, what the padded model call really costs), or `max_batch_delay` after its
  first item arrived, whichever comes first; and it waits for company only while some caller has
  announced itself (`arrival()`: a request still being tokenised) and is not queued yet, or while
  the model is loaded (the batch's first item queued while the previous batch ran: then the delay
  counts from when the model came free), so a lone request at low load runs at once instead of
  sitting out the delay, and under load a batch is not cut short by callers still on the wire;
- items carry a `group` (the model version that prepared them); a batch never mixes groups, so a
  version swap never feeds one version's token ids to another;
- an item whose caller has gone (future cancelled) or whose deadline passed is dropped before it
  costs compute; the latter fails with `DeadlineExceeded` (504);
- the model call runs on the batcher's own thread, off the event loop; if it raises, only the items
  of that batch fail and the worker carries on with the next batch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from service.errors import (
    BackendError,
    DeadlineExceeded,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
)
from service.metrics import Metrics

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - the item type, as in Ray Serve's batch signature
O = TypeVar("O")  # noqa: E741


@dataclass(frozen=True)
class BatcherConfig:
    max_batch_size: int = 32
    max_batch_delay_s: float = 0.005
    max_batch_tokens: int = 16384
    max_queue: int = 1024


@dataclass
class Completed(Generic[O]):
    """One item's result with where its time went (for the response headers)."""

    value: O
    queue_s: float
    compute_s: float
    batch: int  # which model call produced it: a request split over two calls paid for both


@dataclass
class _Pending(Generic[I, O]):
    item: I
    tokens: int  # its longest row, in tokens
    rows: int  # model rows it needs (a text: 1; a question: passages x beams)
    group: Hashable
    enqueued: float
    deadline: float
    future: asyncio.Future[Completed[O]] = field(repr=False)


class DynamicBatcher(Generic[I, O]):
    def __init__(
        self,
        name: str,
        run_batch: Callable[[Sequence[I]], Sequence[O]],
        config: BatcherConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._run_batch = run_batch
        self._metrics = metrics
        self._queue: collections.deque[_Pending[I, O]] = collections.deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._busy = False
        self._incoming = 0  # callers announced by arrival() and not queued yet
        self._free_since = -math.inf  # when the last model call returned
        # Mean seconds per batch, for an honest Retry-After.
        self._mean_batch_s = 0.05
        self.batches_run = 0

    # ---------------------------------------------------------------- callers
    @property
    def depth(self) -> int:
        return len(self._queue)

    def arrival(self) -> Arrival:
        """Announce a caller that will submit soon (a context manager; submit_many closes it)."""
        return Arrival(self)

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name=self.name)

    async def submit_many(
        self,
        items: Sequence[I],
        *,
        tokens: Sequence[int] | None = None,
        rows: Sequence[int] | None = None,
        group: Hashable = None,
        timeout_s: float,
        arrival: Arrival | None = None,
    ) -> list[Completed[O]]:
        """Queue a request's items together; wait for all of their results."""
        if self._closing:
            raise NotReady(f"model {self.name!r} is shutting down")
        if len(items) > self.config.max_queue:
            # Never admitted, however long the caller waits: not a 429 to retry for ever.
            self._count_rejected("too_large", len(items))
            raise PayloadTooLarge(
                f"request of {len(items)} inputs is more than model {self.name!r} ever queues "
                f"(MAX_QUEUE={self.config.max_queue})"
            )
        if len(self._queue) + len(items) > self.config.max_queue:
            self._count_rejected("queue_full", len(items))
            raise Overloaded(
                f"model {self.name!r} has {len(self._queue)} inputs queued "
                f"(MAX_QUEUE={self.config.max_queue})",
                retry_after_s=self._retry_after_s(),
            )
        self.start()
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        lengths = tokens if tokens is not None else [1] * len(items)
        widths = rows if rows is not None else [1] * len(items)
        pending = [
            _Pending[I, O](
                item=item,
                tokens=max(1, int(n)),
                rows=max(1, int(r)),
                group=group,
                enqueued=now,
                deadline=now + timeout_s,
                future=loop.create_future(),
            )
            for item, n, r in zip(items, lengths, widths, strict=True)
        ]
        self._queue.extend(pending)
        self._set_depth()
        if arrival is not None:
            arrival.close()
        self._arrived.set()
        try:
            if len(pending) == 1:  # most requests: gather's wrapper future costs more than the wait
                return [await pending[0].future]
            return list(await asyncio.gather(*(p.future for p in pending)))
        finally:
            # The caller left (disconnect, or a sibling item failed): what is still queued is
            # cancelled here and dropped by the worker before it costs compute.
            for p in pending:
                if not p.future.done():
                    p.future.cancel()

    async def close(self, drain_timeout_s: float = 30.0) -> None:
        """Refuse new items, let queued ones finish (up to the timeout), then stop the worker."""
        self._closing = True
        end = time.monotonic() + drain_timeout_s
        while (self._queue or self._busy) and time.monotonic() < end:
            await asyncio.sleep(0.01)
        for p in self._queue:
            if not p.future.done():
                p.future.set_exception(NotReady(f"model {self.name!r} is shutting down"))
        self._queue.clear()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False)

    # ---------------------------------------------------------------- worker
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._wait_for_batch()
            batch = self._take_batch()
            self._set_depth()
            if not batch:
                continue
            started = time.monotonic()
            self._busy = True
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._run_batch, [p.item for p in batch]
                )
                if len(outputs) != len(batch):
                    raise BackendError(
                        f"model returned {len(outputs)} results for a batch of {len(batch)}"
                    )
                error: BaseException | None = None
            except Exception as exc:  # a failing model call fails only its own batch
                log.exception("batch of %d failed on model %s", len(batch), self.name)
                error = (
                    exc
                    if isinstance(exc, ServiceError)
                    else BackendError(f"model call failed: {type(exc).__name__}: {exc}")
                )
                outputs = []
            finally:
                self._busy = False
            self._free_since = time.monotonic()
            compute_s = self._free_since - started
            self.batches_run += 1
            self._mean_batch_s = 0.8 * self._mean_batch_s + 0.2 * compute_s
            self._observe(batch, started, compute_s)
            for i, p in enumerate(batch):
                if p.future.done():
                    continue
                if error is not None:
                    p.future.set_exception(error)
                else:
                    p.future.set_result(
                        Completed(outputs[i], started - p.enqueued, compute_s, self.batches_run)
                    )

    async def _wait_for_batch(self) -> None:
        """Hold the batch open while company is on its way, until it is full or its first item
        has waited max_batch_delay (under load: max_batch_delay since the model came free)."""
        first = self._queue[0]
        # Queued while the model was busy: callers are queueing up, and in a closed loop the ones
        # just answered are about to come back (docs/tuning.md#waiting-after-a-busy-model).
        loaded = first.enqueued < self._free_since
        close_at = max(first.enqueued, self._free_since) + self.config.max_batch_delay_s
        while (self._incoming > 0 or loaded) and not self._full():
            remaining = close_at - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=remaining)
            except TimeoutError:
                return

    def _fits(self, rows: int, longest: int, p: _Pending[I, O]) -> bool:
        """Would the batch still be within its limits with `p` added?"""
        rows, longest = rows + p.rows, max(longest, p.tokens)
        return rows <= self.config.max_batch_size and rows * longest <= self.config.max_batch_tokens

    def _full(self) -> bool:
        """True when the next live item of the leading group would not fit any more."""
        rows, longest = 0, 0
        group = self._queue[0].group
        for p in self._queue:
            if p.group != group or p.future.done():
                continue
            if rows and not self._fits(rows, longest, p):
                return True
            rows, longest = rows + p.rows, max(longest, p.tokens)
        return rows >= self.config.max_batch_size or rows * longest >= self.config.max_batch_tokens

    def _take_batch(self) -> list[_Pending[I, O]]:
        now = time.monotonic()
        batch: list[_Pending[I, O]] = []
        kept: collections.deque[_Pending[I, O]] = collections.deque()
        group: Hashable = None
        rows, longest = 0, 0
        closed = False
        for p in self._queue:
            if p.future.done():  # cancelled: the caller is gone
                self._count_rejected("cancelled", 1)
                continue
            if now > p.deadline:
                self._count_rejected("deadline", 1)
                p.future.set_exception(
                    DeadlineExceeded(f"request waited past its deadline on model {self.name!r}")
                )
                continue
            if not batch:
                group = p.group
            # The first item always runs, even alone over the limits: it could never run otherwise.
            if not closed and p.group == group and (not batch or self._fits(rows, longest, p)):
                batch.append(p)
                rows, longest = rows + p.rows, max(longest, p.tokens)
            else:
                if p.group == group:
                    closed = True  # keep FIFO order within a group
                kept.append(p)
        self._queue = kept
        return batch

    # ---------------------------------------------------------------- metrics
    def _retry_after_s(self) -> int:
        batches_ahead = sum(p.rows for p in self._queue) / self.config.max_batch_size
        return max(1, math.ceil(batches_ahead * self._mean_batch_s))

    def _set_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.labels(self.name).set(len(self._queue))

    def _count_rejected(self, reason: str, n: int) -> None:
        if self._metrics is not None:
            self._metrics.rejected.labels(self.name, reason).inc(n)

    def _observe(self, batch: list[_Pending[I, O]], started: float, compute_s: float) -> None:
        if self._metrics is None:
            return
        self._metrics.batch_size.labels(self.name).observe(len(batch))
        self._metrics.compute_time.labels(self.name).observe(compute_s)
        for p in batch:
            self._metrics.queue_time.labels(self.name).observe(started - p.enqueued)


class Arrival:
    """A caller on its way to the queue; the worker holds a batch open for it (up to the delay)."""

    def __init__(self, batcher: DynamicBatcher[Any, Any]) -> None:
        self._batcher: DynamicBatcher[Any, Any] | None = batcher
        batcher._incoming += 1

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher._incoming -= 1
            self._batcher._arrived.set()  # the worker re-checks whether to wait any longer
            self._batcher = None

    def __enter__(self) -> Arrival:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
