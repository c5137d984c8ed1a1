"""Session fixtures shared across test folders: a real server process over tiny models of every
task, for the generated-client tests and the API fuzzing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import live_server
from tests.tiny_store import build_tiny_store

ADMIN_TOKEN = "test-admin-token"
# Small limits, so that the fuzzer's largest valid requests stay cheap and the 413s are reachable.
TINY_SERVER_SETTINGS = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "MAX_INPUTS": "8",
    "MAX_TEXT_CHARS": "200",
    "MAX_NEW_TOKENS": "16",
    "MAX_NUM_SAMPLES": "4",
    "MAX_PASSAGES": "3",
    "MAX_BEAM_SIZE": "4",
    "MAX_DENSITY_SAMPLES": "16",
    "MAX_BATCH_SIZE": "8",
    "LENGTH_BUCKETS": "16,32,64",
    "REQUEST_TIMEOUT_S": "30",
}


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-store")
    return build_tiny_store(root / "store", root)


@pytest.fixture(scope="session")
def tiny_server(tiny_store: Path) -> Iterator[str]:
    """The base URL of `python -m service` on 127.0.0.1 serving `tiny_store`."""
    with live_server(tiny_store, **TINY_SERVER_SETTINGS) as url:
        yield url
