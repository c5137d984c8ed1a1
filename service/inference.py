"""The request path between the routes and the runtimes (TEI's router -> core -> backend).

A route is given its model by a `deps.model_for` dependency (a `Served`: the request and the
version that answers it), prepares its input with `prepare_input`, queues the prepared items with
`infer` and writes the answer's headers with `answer_headers`. `infer` builds the batch group
itself, the runtime first: a batch never mixes two versions, whatever a route passes.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

import numpy as np
from fastapi import Request, Response

from service.batching import Arrival, Completed, DynamicBatcher
from service.errors import ClientClosedRequest
from service.registry import BatchItem, ServedModel
from service.runtimes.base import BatchedRuntime, Runtime
from service.settings import Settings

B = TypeVar("B")
R = TypeVar("R", bound=Runtime)
BR = TypeVar("BR", bound=BatchedRuntime)
T = TypeVar("T")
P = ParamSpec("P")

# Up to this many characters a request is tokenised on the event loop: a hand-off to a thread
# costs more than tokenising a short text (docs/tuning.md#tokenising-on-the-event-loop).
INLINE_PREPARE_CHARS = 256


@dataclass(frozen=True)
class Served(Generic[B, R]):
    """A request body and the model version that answers it, resolved once before the route
    runs: a version swapped in meanwhile never answers half of a request."""

    body: B
    model: ServedModel
    runtime: R
    settings: Settings

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> int:
        return self.runtime.version

    @property
    def batcher(self) -> DynamicBatcher[BatchItem, Any]:
        batcher = self.model.batcher
        assert batcher is not None, "a batching version serves, so its model has a batcher"
        return batcher

    def arrival(self) -> Arrival:
        """Announce the request to its model's batcher while its input is being prepared."""
        return self.batcher.arrival()


async def prepare_input(
    chars: int, prepare: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`prepare(*args, **kwargs)`: inline for a short request, on a worker thread for a long one."""
    if chars <= INLINE_PREPARE_CHARS:
        return prepare(*args, **kwargs)
    return await asyncio.to_thread(prepare, *args, **kwargs)


async def infer(
    request: Request,
    served: Served[Any, BR],
    items: Sequence[Any],
    *,
    group: Hashable = None,
    tokens: Sequence[int] | None = None,
    rows: Sequence[int] | None = None,
    arrival: Arrival | None = None,
) -> list[Completed[Any]]:
    """Queue a request's prepared items on its model's batcher; their results, in order.

    Items share a batch only when they come from the same runtime and agree on `group` (what else
    one model call needs equal: QA's decoding options, an embedding's method). `tokens` and `rows`
    are each item's cost (its longest row, its model rows); the request's deadline is
    REQUEST_TIMEOUT_S, and it is dropped from the queue if the client leaves (`until_disconnect`).
    """
    return await until_disconnect(
        request,
        served.batcher.submit_many(
            [BatchItem(served.runtime, item) for item in items],
            tokens=tokens,
            rows=rows,
            group=(served.runtime, group),
            timeout_s=served.settings.request_timeout_s,
            arrival=arrival,
        ),
    )


def answer_headers(
    response: Response, served: Served[Any, Any], results: Sequence[Completed[Any]] = ()
) -> None:
    """What an answer says of itself: TEI's headers, how long the request queued and how long the
    model ran (ms; batched requests), and the version that answered."""
    if results:
        queue_ms = max(r.queue_s for r in results) * 1000
        compute_ms = sum({r.batch: r.compute_s for r in results}.values()) * 1000
        response.headers["X-Queue-Time-Ms"] = f"{queue_ms:.2f}"
        response.headers["X-Compute-Time-Ms"] = f"{compute_ms:.2f}"
    response.headers["X-Model-Version"] = str(served.version)


def vector_payload(vector: Any, normalize: bool, encoding_format: str) -> list[float] | str:
    """An embedding as the answer carries it: scaled to unit length if asked (a zero vector stays
    zero), as floats or, for "base64", little-endian float32 bytes as the OpenAI API sends them."""
    vector = np.asarray(vector, dtype=np.float32)
    if normalize:
        norm = float(np.linalg.norm(vector))
        vector = vector / norm if norm > 0 else vector
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    values: list[float] = vector.tolist()
    return values


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, but cancel it if the client goes away, so its queued inputs are dropped
    before they cost compute (the batcher skips cancelled items).

    `work` runs in the request's own task and one watcher task waits for the disconnect (a task
    for the work as well costs more: docs/tuning.md#waiting-for-a-disconnect).
    """
    request_task = asyncio.current_task()
    assert request_task is not None  # called from a route, inside the request's task
    finished = disconnected = False

    def cancel_request(watcher: asyncio.Future[None]) -> None:
        nonlocal disconnected
        if finished or watcher.cancelled() or watcher.exception() is not None:
            return
        disconnected = True
        request_task.cancel()

    watcher = asyncio.ensure_future(_wait_disconnect(request))
    watcher.add_done_callback(cancel_request)
    try:
        return await work
    except asyncio.CancelledError:
        # Our own cancel (and no one else's, e.g. a shutdown's) becomes 499.
        if disconnected and request_task.uncancel() == 0:
            raise ClientClosedRequest("client disconnected") from None
        raise
    finally:
        finished = True
        watcher.cancel()


async def _wait_disconnect(request: Request) -> None:
    # The body has been read by now, so the next ASGI message can only be the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
