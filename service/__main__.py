"""`python -m service`: serve on HOST:PORT with uvicorn (one process; the batcher wants one).

Shutdown (what orchestrators expect): on SIGTERM, /readyz turns 503 at once while requests are
still accepted and served for DRAIN_S seconds, so that load balancers stop sending new ones; then
uvicorn stops accepting, in-flight requests finish (up to REQUEST_TIMEOUT_S + 5 s), the model
queues drain, and the process exits 0. SIGINT (Ctrl-C), or a second SIGTERM, skips the drain delay.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import uvicorn

# First: TensorFlow reads its log level when it is imported (service.app imports it).
from service import tf_logging  # noqa: F401
from service.app import create_app
from service.registry import ModelRegistry
from service.settings import get_settings

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


def main() -> None:
    settings = get_settings()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=os.environ.get("HOST", "0.0.0.0"),
        port=int(os.environ.get("PORT", "8000")),
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
    )
    DrainingServer(config, app.state.registry, settings.drain_s).run()


if __name__ == "__main__":
    main()
