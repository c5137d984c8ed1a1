"""What routes need, as `Annotated[..., Depends(...)]` aliases (tests override them)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.batching import Completed
from service.errors import ClientClosedRequest, Forbidden, PayloadTooLarge, Unauthorized
from service.registry import ModelRegistry
from service.settings import Settings

T = TypeVar("T")
P = ParamSpec("P")

# Up to this many characters a request is tokenised on the event loop itself. Handing it to a
# worker thread and back costs more than tokenising a short text: ~25 us of CPU on an idle
# machine, and under load the worker then waits for the GIL the event loop and the model threads
# hold (a profile at 16 callers on /v1/qa found the hand-off at about 15% of the server's GIL time,
# more than the tokenising). 256 characters cost about 0.25 ms in WordPiece and 1.3 ms in jieba,
# the longest a request may hold the loop; longer requests still go to a thread.
INLINE_PREPARE_CHARS = 256


async def prepare_input(
    chars: int, prepare: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`prepare(*args, **kwargs)`: inline for a short request, on a worker thread for a long one."""
    if chars <= INLINE_PREPARE_CHARS:
        return prepare(*args, **kwargs)
    return await asyncio.to_thread(prepare, *args, **kwargs)


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread
# pool, which cost two thread hand-offs per request (a profile under load found them at ~8% of the
# server's CPU); these only read attributes.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]

_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if settings.admin_token is None:
        raise Forbidden("admin endpoints are disabled: set ADMIN_TOKEN to enable them")
    if credentials is None:
        raise Unauthorized("admin endpoint: send 'Authorization: Bearer <ADMIN_TOKEN>'")
    expected = settings.admin_token.get_secret_value().encode()
    # Constant time, so the token cannot be guessed byte by byte from response times.
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise Forbidden("wrong admin token")


AdminDep = Depends(require_admin)


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, but cancel it if the client goes away, so its queued inputs are dropped
    before they cost compute (the batcher skips cancelled items).

    `work` runs in the request's own task and one watcher task waits for the disconnect: a task
    for the work and `asyncio.wait` over both cost about a tenth of the event loop's time per
    request under load on /v1/qa.
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


def check_limit(count: int, limit: int, what: str, setting: str) -> None:
    """One configured request limit: past it, 413 naming the setting."""
    if count > limit:
        raise PayloadTooLarge(f"{what}: {count}; the most is {limit} ({setting})")


def check_text_lengths(settings: Settings, texts: dict[str, str]) -> None:
    """MAX_TEXT_CHARS for every named text of a request."""
    for what, text in texts.items():
        check_limit(len(text), settings.max_text_chars, f"characters in {what}", "MAX_TEXT_CHARS")


def timing_headers(response: Response, results: list[Completed[object]]) -> None:
    """TEI's headers: how long the request queued and how long the model ran (ms)."""
    if not results:
        return
    queue_ms = max(r.queue_s for r in results) * 1000
    compute_ms = sum({r.batch: r.compute_s for r in results}.values()) * 1000
    response.headers["X-Queue-Time-Ms"] = f"{queue_ms:.2f}"
    response.headers["X-Compute-Time-Ms"] = f"{compute_ms:.2f}"
