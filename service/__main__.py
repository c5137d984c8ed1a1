"""`python -m service`: serve on HOST:PORT with uvicorn (one process; the batcher wants one).

Shutdown (what orchestrators expect): on SIGTERM, /readyz turns 503 at once while requests are
still accepted and served for DRAIN_S seconds, so that load balancers stop sending new ones; then
uvicorn stops accepting, in-flight requests finish (up to REQUEST_TIMEOUT_S + 5 s), the model
queues drain, and the process exits 0. SIGINT (Ctrl-C), or a second SIGTERM, skips the drain delay.

Connections: uvicorn's httptools protocol with the request head bounded in bytes, fields and time
(MAX_HEADER_BYTES, MAX_HEADER_COUNT, HEADER_TIMEOUT_S), the body and the writing of a response in
time (BODY_TIMEOUT_S, SEND_TIMEOUT_S; service/http_protocol.py); an idle connection is kept
KEEP_ALIVE_S for the next request.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from socket import socket
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

# First: TensorFlow reads its log level, and whether to import Keras, when it is imported
# (service.app imports it).
from models import tf_logging  # noqa: F401
from service import no_keras  # noqa: F401
from service.app import create_app
from service.http_protocol import DROP_REASONS, HeadLimits, bounded_http_protocol
from service.registry import ModelRegistry
from service.settings import Settings, get_settings

log = logging.getLogger("service")


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a readiness drain before its graceful shutdown (module docstring)."""

    def __init__(self, config: uvicorn.Config, registry: ModelRegistry, drain_s: float) -> None:
        super().__init__(config)
        self.registry = registry
        self.drain_s = drain_s
        self._drain: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.drain_s <= 0 or self._drain is not None:
            super().handle_exit(sig, frame)
            return
        log.info("SIGTERM: readiness 503, serving %.1f s more, then shutting down", self.drain_s)
        self.registry.draining = True
        self._drain = threading.Timer(self.drain_s, super().handle_exit, (sig, frame))
        self._drain.daemon = True
        self._drain.start()

    async def serve(self, sockets: list[socket] | None = None) -> None:
        # Once shut down, uvicorn raises the signal that stopped it again, under the handlers in
        # place before it started: with Python's default for SIGTERM, the process would die of it
        # (status 143, "make: *** Error 143") after an orderly exit. SIGTERM is the request to
        # stop, and stopping after a graceful shutdown is success: status 0.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _stopped) if in_main else None
        try:
            await super().serve(sockets)
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _stopped(sig: int, frame: FrameType | None) -> None:
    log.info("shut down on SIGTERM")


def server_config(app: FastAPI, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration of the service (`overrides`: benchmarks against stock uvicorn)."""
    dropped = app.state.metrics.connections_dropped
    for reason in DROP_REASONS:  # every reason on /metrics from the start, at 0
        dropped.labels(reason=reason)
    limits = HeadLimits(
        settings.max_header_bytes,
        settings.max_header_count,
        settings.header_timeout_s,
        settings.body_timeout_s,
        settings.send_timeout_s,
        on_drop=lambda reason: dropped.labels(reason=reason).inc(),
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": int(settings.request_timeout_s) + 5,
        "timeout_keep_alive": settings.keep_alive_s,
        "http": bounded_http_protocol(limits),
        **overrides,
    }
    return uvicorn.Config(app, **options)


def refuse_arguments(argv: Sequence[str]) -> None:
    """`python -m service` takes no arguments: every knob is a setting of the environment (or
    `.env`). `--help` says so (status 0); any other argument is one error line naming the setting
    it looks like (`--port 9000`: PORT=9000), status 2. They were ignored: `--port 9000` served
    on 8000, `--root-path /kexue` served without the prefix."""
    if not argv:
        return
    usage = (
        "usage: [SETTING=value ...] python -m service\n"
        "Serves the model store on HOST:PORT; every setting comes from the environment or a .env "
        "file (README.md, Settings; .env.example lists them)."
    )
    if list(argv) in (["-h"], ["--help"]):
        sys.stdout.write(usage + "\n")
        raise SystemExit(0)
    first = argv[0]
    name, _, value = first.lstrip("-").partition("=")
    key = name.replace("-", "_").upper()
    if first.startswith("-") and key in {field.upper() for field in Settings.model_fields}:
        value = value or (argv[1] if len(argv) > 1 else "...")
        hint = f": set {key} in the environment instead ({key}={value} python -m service)"
    elif key == "ROOT_PATH":
        hint = (
            ": to serve under a path prefix, run uvicorn --factory service.app:create_app "
            "--root-path ... (docs/usage.md)"
        )
    else:
        hint = ""
    sys.stderr.write(
        f"{usage}\npython -m service: error: it takes no arguments, not {first!r}{hint}\n"
    )
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> None:
    refuse_arguments(sys.argv[1:] if argv is None else argv)
    settings = get_settings()
    app = create_app(settings)
    server = DrainingServer(server_config(app, settings), app.state.registry, settings.drain_s)
    try:
        server.run()
    except KeyboardInterrupt:  # SIGINT, raised again once shut down: as `uvicorn` itself, exit 0
        pass


if __name__ == "__main__":
    main()
