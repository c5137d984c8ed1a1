from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.fakes import fake_factory, write_version


def wait_ready(client: TestClient, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


async def until(condition: Callable[[], object], what: str, timeout_s: float = 30) -> None:
    """Wait, letting the event loop run, until `condition()` holds (what a test waits for
    instead of sleeping for an order of events)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.001)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


@pytest.fixture
def make_client(store: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(ready: bool = True, **overrides: Any) -> TestClient:
        settings = Settings(model_store=store, poll_interval_s=0, **overrides)
        client = TestClient(create_app(settings, runtime_factory=fake_factory))
        client.__enter__()
        clients.append(client)
        if ready:
            wait_ready(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(store: Path, make_client: Callable[..., TestClient]) -> TestClient:
    write_version(store, "words", 1)
    return make_client()


@pytest.fixture
def hold() -> Iterator[Callable[[dict[str, threading.Event], str], threading.Event]]:
    """`hold(FakeEmbeddingRuntime.held_batches, name)`: model `name`'s calls (or loads, with
    `held_loads`) wait until the returned event is set; all are set and dropped afterwards."""
    made: list[tuple[dict[str, threading.Event], str, threading.Event]] = []

    def hold(held: dict[str, threading.Event], name: str) -> threading.Event:
        release = held[name] = threading.Event()
        made.append((held, name, release))
        return release

    yield hold
    for held, name, release in made:
        release.set()
        held.pop(name, None)


def queue_depth(client: TestClient, model: str) -> float:
    """The model's queue depth, from /metrics."""
    prefix = f'kexue_queue_depth{{model="{model}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 30) -> None:
    """Poll `condition` (from a thread without an event loop) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.005)
