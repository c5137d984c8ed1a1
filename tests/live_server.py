"""A real `python -m service` process on 127.0.0.1, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float, poll_s: float = 0.2) -> float:
    """Wait for /readyz 200 of the server `proc` runs at `url`; returns the seconds waited.
    One client for every poll: each `httpx.get` would build a TLS context (about 40 ms of CPU)."""
    started = time.monotonic()
    with httpx.Client(timeout=1) as client:
        while True:
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"server not ready after {timeout_s} s")
            time.sleep(poll_s)


def wait_until(
    condition: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.1
) -> None:
    """Poll `condition` until it holds (what a test waits for instead of sleeping)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(poll_s)


# Settings of every server started here unless the caller gives its own. tests/conftest.py adds
# WARMUP=false for the suite's servers; benchmarks keep the service's warm-up, so that no timed
# request pays for a first call.
SERVER_DEFAULTS = {
    "POLL_INTERVAL_S": "0",
    "LOG_LEVEL": "warning",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "DRAIN_S": "0",
}


@contextmanager
def live_server(store: Path, ready_timeout_s: float = 300, **env: str) -> Iterator[str]:
    """Start the service on a free loopback port; yield its base URL once /readyz is 200."""
    with live_server_process(store, ready_timeout_s, **env) as (url, _):
        yield url


@contextmanager
def live_server_process(
    store: Path,
    ready_timeout_s: float = 300,
    log_path: Path | None = None,
    command: tuple[str, ...] = ("-m", "service"),
    cwd: Path = ROOT,
    **env: str,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`live_server`, yielding the process too (to signal it or read its memory). Stopped by
    SIGTERM with no drain delay unless `DRAIN_S` is given. `log_path`: its stderr goes there.
    `command`: the interpreter's arguments that start the server (a benchmark's variant of it).
    `cwd`: the directory it starts in, so the source tree it imports (another checkout's)."""
    port = free_port()
    environ = {
        **os.environ,
        "MODEL_STORE": str(store),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **SERVER_DEFAULTS,
        **env,
    }
    log = open(log_path, "w") if log_path is not None else None  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, *command], env=environ, cwd=cwd, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, ready_timeout_s)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None:
            log.close()


# Seconds Serve's controller gives its HTTP proxy to start and to answer a health check (Ray's
# defaults: 5 and 10).
PROXY_TIMEOUTS = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
}


@contextmanager
def local_ray_serve(num_cpus: int, **env: str) -> Iterator[str]:
    """A local Ray instance on 127.0.0.1 with Serve's HTTP proxy on a free loopback port; yields
    the proxy's base URL. `env` reaches every replica (e.g. MODEL_STORE). Needs the ray extra."""
    import ray
    from ray import serve

    port = free_port()
    # Serve's controller kills an HTTP proxy that is not ready within 5 s, and `serve.start` then
    # fails on the killed one (ActorDiedError) although a new one is on its way: on a loaded
    # 2-core host starting the proxy's worker takes longer. The raylet started by `ray.init`, and
    # the controller it spawns, inherit this process's environment.
    saved = {key: os.environ.get(key) for key in PROXY_TIMEOUTS}
    os.environ.update(PROXY_TIMEOUTS)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
