"""Session fixtures shared across test folders (a real server process over tiny models of every
task, for the generated-client tests and the API fuzzing), and the lanes: `make test-fast` leaves
out the tests marked here as starting a server (see `pytest_collection_modifyitems`)."""

from __future__ import annotations

import importlib.util
import ssl
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx._transports.default as httpx_transports
import pytest

from tests import live_server as live_server_module
from tests.live_server import live_server
from tests.tiny_store import TINY_MODELS, tiny_versions

ADMIN_TOKEN = "test-admin-token"
# Small limits, so that the fuzzer's largest valid requests stay cheap and the 413s are reachable.
TINY_SERVER_SETTINGS = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "MAX_INPUTS": "8",
    "MAX_TEXT_CHARS": "200",
    "MAX_NEW_TOKENS": "16",
    "MAX_NUM_SAMPLES": "4",
    # 4: the playground's two passages (15 and 16 characters) make two windows each of the tiny
    # reader's 12-token window, and every window counts against MAX_PASSAGES.
    "MAX_PASSAGES": "4",
    "MAX_BEAM_SIZE": "4",
    "MAX_DENSITY_SAMPLES": "16",
    "MAX_BATCH_SIZE": "8",
    "LENGTH_BUCKETS": "16,32,64",
    "REQUEST_TIMEOUT_S": "30",
}


# The suite's servers skip the warm-up (every bucket of every version run before /readyz): about
# 40% of a tiny store's start's CPU (20 s against 12 on a loaded host), where a test asks a few
# shapes, each paying its first call once. Benchmarks' servers keep it (tests/live_server.py).
live_server_module.SERVER_DEFAULTS["WARMUP"] = "false"
# `python -m service` leaves Keras out of TensorFlow's import (service/no_keras.py); the Ray
# replicas, which do not start through it, get the same from the tests (tests/test_ray_serve.py).
NO_KERAS = {"TF_USE_LEGACY_KERAS": "1"} if importlib.util.find_spec("tf_keras") is None else {}

# Every `httpx.get`/`post` and `httpx.Client()` builds a TLS context, loading certifi's CA bundle:
# about 43 ms of CPU each (0.7 ms for the rest of a request), for the suite's requests to
# http://127.0.0.1, which never use it. Polling with them (/readyz until a server is up, the Ray
# replicas' /readyz, `wait_until` over /v1/models or /metrics every 0.1 s) kept the test process
# busy at 20-70% of a core while it waited. The suite's clients share one default context
# (contexts asked for with other arguments are built as before).
_create_ssl_context = httpx_transports.create_ssl_context
_shared_ssl_contexts: dict[tuple[bool, bool], ssl.SSLContext] = {}


def _shared_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
    if cert is not None or not isinstance(verify, bool):
        return _create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
    key = (verify, trust_env)
    if key not in _shared_ssl_contexts:
        _shared_ssl_contexts[key] = _create_ssl_context(verify=verify, trust_env=trust_env)
    return _shared_ssl_contexts[key]


httpx_transports.create_ssl_context = _shared_ssl_context  # type: ignore[assignment]


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model of every task (TINY_MODELS): this worker's own store, of copies of the
    versions built once per test session."""
    return tiny_versions(
        tmp_path_factory, list(TINY_MODELS), tmp_path_factory.mktemp("tiny") / "store"
    )


@pytest.fixture(scope="session")
def tiny_server(tiny_store: Path) -> Iterator[str]:
    """The base URL of `python -m service` on 127.0.0.1 serving `tiny_store`."""
    with live_server(tiny_store, **TINY_SERVER_SETTINGS) as url:
        yield url


# What starts a server, by the marker it earns: tests/live_server.py's functions. A test is marked
# when it, a fixture it uses (`tiny_server` above, say), or a function of its own module that
# either calls (at any depth) refers to one of them, so a new test lands in its lane by itself.
SERVER_MARKERS: dict[str, str] = {
    "live_server": "live",
    "live_server_process": "live",
    "free_port": "live",  # a port to serve on: tests/service/test_start_logs.py's own server
    "local_ray_serve": "ray",
}


def _server_markers(function: Callable[..., Any], seen: set[types.CodeType]) -> set[str]:
    """The markers of SERVER_MARKERS that `function` earns by what it calls."""
    function = getattr(function, "__wrapped__", function)
    code = getattr(function, "__code__", None)
    if code is None or code in seen:
        return set()
    seen.add(code)
    names: set[str] = set()
    codes = [code]
    while codes:  # the function's own code, and that of its lambdas and inner functions
        current = codes.pop()
        names.update(current.co_names)
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    found = set()
    scope = function.__globals__
    for name in names:
        value = scope.get(name)
        if name in SERVER_MARKERS and value is getattr(live_server_module, name):
            found.add(SERVER_MARKERS[name])
        elif isinstance(value, types.FunctionType) and value.__module__ == function.__module__:
            found |= _server_markers(value, seen)
    return found


# The order in which `make test` hands test files to its two workers (`--no-loadscope-reorder`):
# files with a test of an earlier lane here first, the rest as collected. Longest first, so that
# the end of the run is short files on both workers; pytest-xdist's own order (most tests first)
# left the few long Ray, end-to-end and fuzzing tests for last, one worker running them alone.
FIRST_LANES = ("ray", "distributed", "fuzz", "browser", "live", "slow")


def _lane_rank(item: pytest.Item) -> int:
    marked = {marker.name for marker in item.iter_markers()}
    return min(
        (i for i, lane in enumerate(FIRST_LANES) if lane in marked), default=len(FIRST_LANES)
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        seen: set[types.CodeType] = set()
        markers = _server_markers(item.function, seen)
        for fixturedefs in item._fixtureinfo.name2fixturedefs.values():
            for fixturedef in fixturedefs:
                markers |= _server_markers(fixturedef.func, seen)
        for marker in sorted(markers):
            item.add_marker(marker)
    # Whole files move (their module fixtures stay built once), in a stable order.
    rank: dict[Path, int] = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, len(FIRST_LANES)), _lane_rank(item))
    items.sort(key=lambda item: rank[item.path])
