"""Continuous batching of text generation: one decode loop per loaded generation model version.

Requests do not wait for each other to finish. The loop keeps one `DecodingBatch` (rows and their
key/value cache); between two decode steps it admits queued rows (one prefill call for all of them)
and drops rows that finished or whose caller has gone, so a long sample never holds a short one
back and a new request starts at the next step (Orca's iteration-level scheduling, Yu et al.,
OSDI 2022). Every model call runs off the event loop, one at a time.

Each request gets a `GenerationTicket`: the tokens of its rows arrive on it as events while they
are written (what `stream: true` sends) and it completes when every row is done. A model call
that fails fails the rows in that batch only; the loop carries on with the next requests.

Limits: at most `max_rows` rows decode together (MAX_BATCH_SIZE) and `max_queue` rows wait
(MAX_QUEUE, then 429); a request still waiting for its first token at its deadline gets 504.
The loop task exists only while there is work, so a version that is swapped out leaves nothing
running once its last request is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.generation.decoding import DecodingBatch, GenerationRow, GenerationStepModel
from service.errors import (
    BackendError,
    DeadlineExceeded,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
)
from service.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenEvent:
    """New text of one row (`text` may be empty when a token adds no visible characters), or
    its end (`finish_reason` set)."""

    index: int
    text: str
    token_count: int
    finish_reason: str | None = None


@dataclass(eq=False)
class GenerationTicket:
    """One request's rows, the events of their progress, and its completion."""

    rows: list[GenerationRow]
    deadline: float
    arrived: float = field(default_factory=time.monotonic)
    events: asyncio.Queue[TokenEvent] = field(default_factory=asyncio.Queue)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    first_token_at: float | None = None
    _texts: list[str] = field(default_factory=list)
    _sent_tokens: list[int] = field(default_factory=list)
    _finished: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.rows)
        self._texts, self._sent_tokens, self._finished = [""] * count, [0] * count, [False] * count

    def cancel(self) -> None:
        """The caller has gone: its rows leave the batch at the next step."""
        for row in self.rows:
            row.cancelled = True
        if not self.done.done():
            self.done.cancel()

    @property
    def texts(self) -> list[str]:
        return list(self._texts)

    def fail(self, error: ServiceError) -> None:
        for row in self.rows:
            row.cancelled = True
        if not self.done.done():
            self.done.set_exception(error)

    def publish(self, render: Callable[[str, Sequence[int]], str], metrics: Any = None) -> int:
        """Queue events for what the rows wrote since the last call; returns new tokens.

        `metrics`, if given, is a histogram child that observes the time to the first token.
        """
        new_tokens = 0
        for index, row in enumerate(self.rows):
            if self._finished[index]:
                continue
            if len(row.new_ids) > self._sent_tokens[index]:
                new_tokens += len(row.new_ids) - self._sent_tokens[index]
                # WordPiece text only grows at its end: extend it by the new tokens alone.
                text = render(self._texts[index], row.new_ids[self._sent_tokens[index] :])
                delta = text[len(self._texts[index]) :]
                self._texts[index], self._sent_tokens[index] = text, len(row.new_ids)
                self.events.put_nowait(TokenEvent(index, delta, len(row.new_ids)))
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                    if metrics is not None:
                        metrics.observe(self.first_token_at - self.arrived)
            if row.finish_reason is not None:
                self._finished[index] = True
                self.events.put_nowait(
                    TokenEvent(index, "", len(row.new_ids), finish_reason=row.finish_reason)
                )
        if all(self._finished) and not self.done.done():
            self.done.set_result(None)
        return new_tokens


def cache_rows(rows: Sequence[GenerationRow]) -> int:
    """Rows of the decoding batch the samples take (a guided sample takes two)."""
    return sum(row.cache_rows for row in rows)


class GenerationScheduler:
    """The decode loop of one model version (see the module's docstring).

    Args:
        name: the model's name (metrics, logs).
        model: the step model (`SavedModelGenerationStepModel`).
        banned_ids: tokens never drawn.
        sep_id: the token that ends a text.
        render: (text so far, new token ids) -> the text extended by them.
        max_rows: most rows decoding together.
        max_queue: most rows waiting for admission.
        metrics: the service's collectors.
    """

    def __init__(
        self,
        name: str,
        model: GenerationStepModel,
        banned_ids: Sequence[int],
        sep_id: int,
        render: Callable[[str, Sequence[int]], str],
        max_rows: int,
        max_queue: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.batch = DecodingBatch(model, banned_ids, sep_id)
        self.render = render
        self.max_rows = max_rows
        self.max_queue = max_queue
        self.metrics = metrics
        self._waiting: deque[GenerationTicket] = deque()
        self._active: list[GenerationTicket] = []
        self._task: asyncio.Task[None] | None = None
        self.steps = 0  # decode steps run (tests, benchmarks)

    @property
    def waiting_rows(self) -> int:
        return sum(cache_rows(t.rows) for t in self._waiting)

    @property
    def active_rows(self) -> int:
        return len(self.batch)

    def submit(self, rows: list[GenerationRow], timeout_s: float) -> GenerationTicket:
        """Queue one request's rows; 429 at once when the queue is full."""
        needed = cache_rows(rows)
        if needed > self.max_rows:
            raise PayloadTooLarge(
                f"{len(rows)} samples need {needed} decoding rows (2 a sample with guidance); "
                f"the most is {self.max_rows} (MAX_BATCH_SIZE)"
            )
        if self.waiting_rows + needed > self.max_queue:
            self._count_rejected("queue_full", len(rows))
            raise Overloaded(
                f"model {self.name!r} has {self.waiting_rows} samples waiting "
                f"(MAX_QUEUE={self.max_queue}); retry later"
            )
        ticket = GenerationTicket(rows=rows, deadline=time.monotonic() + timeout_s)
        self._waiting.append(ticket)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"generate-{self.name}"
            )
        return ticket

    async def _loop(self) -> None:
        while self._waiting or len(self.batch):
            try:
                await self._admit()
                self._retire()
                if len(self.batch):
                    await self._call(self.batch.advance, self._active)
                    self.steps += 1
                    self._publish()
                    self._retire()
            except Exception:  # the loop must outlive anything a batch does
                log.exception("generation loop of %s", self.name)
                await asyncio.sleep(0)

    async def _admit(self) -> None:
        room = self.max_rows - len(self.batch)
        admitted: list[GenerationTicket] = []
        now = time.monotonic()
        while self._waiting:
            ticket = self._waiting[0]
            if ticket.done.done():  # cancelled while waiting: costs nothing
                self._waiting.popleft()
                self._count_rejected("cancelled", len(ticket.rows))
                continue
            if now > ticket.deadline:
                self._waiting.popleft()
                self._count_rejected("deadline", len(ticket.rows))
                ticket.fail(DeadlineExceeded("no room to start generating before the deadline"))
                continue
            if cache_rows(ticket.rows) > room:
                break
            self._waiting.popleft()
            admitted.append(ticket)
            room -= cache_rows(ticket.rows)
        if not admitted:
            return
        rows = [row for ticket in admitted for row in ticket.rows]
        if self.metrics is not None:
            for ticket in admitted:
                self.metrics.queue_time.labels(self.name).observe(now - ticket.arrived)
        if await self._call(lambda: self.batch.admit(rows), admitted):
            self._active.extend(admitted)
            self._publish()

    async def _call(self, work: Callable[[], None], tickets: list[GenerationTicket]) -> bool:
        """One model call off the event loop; on failure the tickets in it fail (500) and the
        batch starts afresh."""
        started = time.perf_counter()
        try:
            await asyncio.to_thread(work)
        except Exception as exc:
            log.exception("generation call of %s failed", self.name)
            error = BackendError(f"the model failed: {type(exc).__name__}: {exc}")
            for ticket in [*tickets, *self._active]:
                ticket.fail(error)
            self._active = []
            self.batch.clear()
            return False
        if self.metrics is not None:
            self.metrics.compute_time.labels(self.name).observe(time.perf_counter() - started)
            self.metrics.batch_size.labels(self.name).observe(len(self.batch))
        return True

    def _publish(self) -> None:
        first_token = None
        if self.metrics is not None:
            first_token = self.metrics.time_to_first_token.labels(self.name)
        tokens = sum(ticket.publish(self.render, first_token) for ticket in self._active)
        if self.metrics is not None and tokens:
            self.metrics.generated_tokens.labels(self.name).inc(tokens)

    def _retire(self) -> None:
        self.batch.retire()
        self._active = [t for t in self._active if not t.done.done()]
        if self.metrics is not None:
            self.metrics.queue_depth.labels(self.name).set(self.waiting_rows)
            self.metrics.active_rows.labels(self.name).set(len(self.batch))

    def _count_rejected(self, reason: str, rows: int) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(self.name, reason).inc(rows)
