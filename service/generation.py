"""Continuous batching of text generation: one decode loop per loaded generation model version.

Requests do not wait for each other to finish. The loop keeps one `DecodingBatch` (rows and their
key/value cache); between two decode steps it admits queued rows (one prefill call for those with
a prompt) and drops rows that finished or whose caller has gone, so a long sample never holds a
short one back and a new request starts at the next step (Orca's iteration-level scheduling, Yu
et al., OSDI 2022).

The loop runs on a thread of its own, step after step, and hands each step's new text to the
event loop in one `call_soon_threadsafe` callback; the event loop never waits for a model call
and the model never waits for the event loop (which, at many rows, is busy writing every row's
tokens to its stream). The rows' tokens are rendered to text on the decode thread, so what the
event loop receives is final: events are immutable and a ticket's text is only ever written by
that thread.

Each request gets a `GenerationTicket`: the tokens of its rows arrive on it as events while they
are written (what `stream: true` sends) and it completes when every row is done. A model call
that fails fails the rows in that batch only; the loop carries on with the next requests. A row
whose log-probabilities are not finite numbers fails its request with 400 (`BadInput`).

Limits: at most `max_rows` rows decode together (MAX_BATCH_SIZE) and `max_queue` rows wait
(MAX_QUEUE, then 429); a request still waiting for its first token at its deadline gets 504.
The thread exists only while there is work, so a version that is swapped out leaves nothing
running once its last request is done.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from models.generation.decoding import DecodingBatch, GenerationRow, GenerationStepModel
from service.errors import (
    BackendError,
    BadInput,
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


class Progress(NamedTuple):
    """A ticket's events since the last look, the tokens they add, and whether every row of the
    ticket has ended."""

    events: list[TokenEvent]
    tokens: int
    complete: bool


@dataclass(eq=False)
class GenerationTicket:
    """One request's rows, the events of their progress, and its completion.

    `progress` runs on the decode thread (it reads the rows and renders their text);
    `deliver`, `cancel`, `fail` and `updates` on the event loop.
    """

    rows: list[GenerationRow]
    deadline: float
    arrived: float = field(default_factory=time.monotonic)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    first_token_at: float | None = None
    _events: deque[TokenEvent] = field(default_factory=deque)
    _wakeup: asyncio.Future[None] | None = None
    _texts: list[str] = field(default_factory=list)
    _sent_tokens: list[int] = field(default_factory=list)
    _finished: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.rows)
        self._texts, self._sent_tokens, self._finished = [""] * count, [0] * count, [False] * count

    @property
    def cache_rows(self) -> int:
        """Rows of the decoding batch the samples take (a guided sample takes two)."""
        return sum(row.cache_rows for row in self.rows)

    @property
    def gone(self) -> bool:
        """Every row is done: finished, or cancelled with the request (decode thread's view)."""
        return all(row.done for row in self.rows)

    @property
    def texts(self) -> list[str]:
        return list(self._texts)

    def cancel(self) -> None:
        """The caller has gone: its rows leave the batch at the next step."""
        for row in self.rows:
            row.cancelled = True
        if not self.done.done():
            self.done.cancel()
        self._wake()

    def fail(self, error: ServiceError) -> None:
        for row in self.rows:
            row.cancelled = True
        if not self.done.done():
            self.done.set_exception(error)
        self._wake()

    def progress(self, render: Callable[[str, Sequence[int]], str]) -> Progress:
        """What the rows wrote since the last call (decode thread)."""
        events = []
        tokens = 0
        for index, row in enumerate(self.rows):
            if self._finished[index]:
                continue
            written = len(row.new_ids)
            if written > self._sent_tokens[index]:
                # WordPiece text only grows at its end: extend it by the new tokens alone.
                text = render(self._texts[index], row.new_ids[self._sent_tokens[index] : written])
                events.append(TokenEvent(index, text[len(self._texts[index]) :], written))
                tokens += written - self._sent_tokens[index]
                self._texts[index], self._sent_tokens[index] = text, written
            if row.finish_reason is not None:
                self._finished[index] = True
                events.append(TokenEvent(index, "", written, finish_reason=row.finish_reason))
        return Progress(events, tokens, all(self._finished))

    def deliver(self, events: list[TokenEvent], complete: bool) -> bool:
        """Queue events from `progress` (event loop); `complete` when every row has ended.
        Returns whether these are the ticket's first tokens."""
        first = False
        if events and self.first_token_at is None:
            self.first_token_at, first = time.monotonic(), True
        self._events.extend(events)
        if complete and not self.done.done():
            self.done.set_result(None)
        self._wake()
        return first

    async def updates(self) -> list[TokenEvent]:
        """The events delivered since the last call, waiting for one if there are none; empty
        once the ticket has ended (completed, failed or cancelled) with nothing left to read."""
        while not self._events:
            if self.done.done():
                return []
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        events = list(self._events)
        self._events.clear()
        return events

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


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
        # Shared by the event loop (submit) and the decode thread (admission), under the lock.
        self._lock = threading.Lock()
        self._waiting: deque[GenerationTicket] = deque()
        self._waiting_rows = 0
        self._thread: threading.Thread | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        # The decode thread's own.
        self._active: list[GenerationTicket] = []
        self.steps = 0  # decode steps run (tests, benchmarks)

    @property
    def waiting_rows(self) -> int:
        return self._waiting_rows

    @property
    def active_rows(self) -> int:
        return len(self.batch)

    def submit(self, rows: list[GenerationRow], timeout_s: float) -> GenerationTicket:
        """Queue one request's rows (on the event loop); 429 at once when the queue is full."""
        ticket = GenerationTicket(rows=rows, deadline=time.monotonic() + timeout_s)
        needed = ticket.cache_rows
        # Said only when the request asked for guidance.
        guided = " (2 a sample with guidance)" if needed > len(rows) else ""
        if needed > self.max_rows:
            raise PayloadTooLarge(
                f"{len(rows)} samples need {needed} decoding rows{guided}; "
                f"the most is {self.max_rows} (MAX_BATCH_SIZE)",
                param="num_samples",
            )
        if needed > self.max_queue:
            # Never admitted, however long the caller waits: not a 429 to retry for ever.
            self._count_rejected("too_large", len(rows))
            raise PayloadTooLarge(
                f"{len(rows)} samples need {needed} decoding rows{guided}, more than model "
                f"{self.name!r} ever queues (MAX_QUEUE={self.max_queue})",
                param="num_samples",
            )
        with self._lock:
            if self._waiting_rows + needed > self.max_queue:
                waiting = self._waiting_rows
                self._count_rejected("queue_full", len(rows))
                raise Overloaded(
                    f"model {self.name!r} has {waiting} samples waiting "
                    f"(MAX_QUEUE={self.max_queue}); retry later"
                )
            self._waiting.append(ticket)
            self._waiting_rows += needed
            if self._thread is None:
                self._event_loop = asyncio.get_running_loop()
                self._thread = threading.Thread(
                    target=self._run, name=f"generate-{self.name}", daemon=True
                )
                self._thread.start()
        return ticket

    def _run(self) -> None:
        """The decode thread: admit, step, publish, retire, until nothing is left to do."""
        while True:
            with self._lock:
                if not self._waiting and not len(self.batch):
                    self._thread = None
                    return
            try:
                self._admit()
                self._retire()
                if len(self.batch):
                    self._call(self.batch.advance, [])
                    self.steps += 1
                    self._publish()
                    self._retire()
            except Exception:  # the loop must outlive anything a batch does
                log.exception("generation loop of %s", self.name)

    def _admit(self) -> None:
        room = self.max_rows - len(self.batch)
        admitted: list[GenerationTicket] = []
        now = time.monotonic()
        with self._lock:
            while self._waiting:
                ticket = self._waiting[0]
                if ticket.gone:  # cancelled while waiting: costs nothing
                    self._dequeue()
                    self._count_rejected("cancelled", len(ticket.rows))
                    continue
                if now > ticket.deadline:
                    self._dequeue()
                    self._count_rejected("deadline", len(ticket.rows))
                    error = DeadlineExceeded("no room to start generating before the deadline")
                    self._to_event_loop(ticket.fail, error)
                    continue
                if ticket.cache_rows > room:
                    break
                self._dequeue()
                admitted.append(ticket)
                room -= ticket.cache_rows
        if not admitted:
            return
        rows = [row for ticket in admitted for row in ticket.rows]
        if self.metrics is not None:
            for ticket in admitted:
                self.metrics.queue_time.labels(self.name).observe(now - ticket.arrived)
        if self._call(lambda: self.batch.admit(rows), admitted):
            self._active.extend(admitted)

    def _dequeue(self) -> None:
        self._waiting_rows -= self._waiting.popleft().cache_rows

    def _call(self, work: Callable[[], None], tickets: list[GenerationTicket]) -> bool:
        """One model call; on failure the tickets in it (and the batch's) fail (500) and the
        batch starts afresh."""
        started = time.perf_counter()
        try:
            work()
        except Exception as exc:
            log.exception("generation call of %s failed", self.name)
            error = BackendError(f"the model failed: {type(exc).__name__}: {exc}")
            for ticket in [*tickets, *self._active]:
                self._to_event_loop(ticket.fail, error)
            self._active = []
            self.batch.clear()
            return False
        if self.metrics is not None:
            self.metrics.compute_time.labels(self.name).observe(time.perf_counter() - started)
            self.metrics.batch_size.labels(self.name).observe(len(self.batch))
        return True

    def _publish(self) -> None:
        """Render what the step wrote and hand it to the event loop in one callback."""
        updates = []
        tokens = 0
        for ticket in self._active:
            error = next((row.error for row in ticket.rows if row.error is not None), None)
            if error is not None:
                # The model gave a row no finite numbers (its condition overflows the model):
                # the whole request fails, its other rows stop.
                for row in ticket.rows:
                    row.cancelled = True
                self._to_event_loop(ticket.fail, BadInput(error, param="condition"))
                continue
            progress = ticket.progress(self.render)
            if progress.events:
                tokens += progress.tokens
                updates.append((ticket, progress.events, progress.complete))
        if updates:
            self._to_event_loop(self._deliver, updates)
        if self.metrics is not None and tokens:
            self.metrics.generated_tokens.labels(self.name).inc(tokens)

    def _deliver(self, updates: list[tuple[GenerationTicket, list[TokenEvent], bool]]) -> None:
        first_token = None
        if self.metrics is not None:
            first_token = self.metrics.time_to_first_token.labels(self.name)
        for ticket, events, complete in updates:
            if ticket.deliver(events, complete) and first_token is not None:
                first_token.observe(time.monotonic() - ticket.arrived)

    def _retire(self) -> None:
        self.batch.retire()
        self._active = [t for t in self._active if not t.gone]
        if self.metrics is not None:
            self.metrics.queue_depth.labels(self.name).set(self._waiting_rows)
            self.metrics.active_rows.labels(self.name).set(len(self.batch))

    def _to_event_loop(self, callback: Callable[..., object], *args: object) -> None:
        assert self._event_loop is not None
        try:
            self._event_loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the event loop has closed (shutdown): nobody is listening
            for ticket in self._active:
                for row in ticket.rows:
                    row.cancelled = True

    def _count_rejected(self, reason: str, rows: int) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(self.name, reason).inc(rows)
