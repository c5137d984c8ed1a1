"""create_app(): lifespan, middleware, routers, exception handlers; nothing else."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.auth import KeyRing, RequireKey, declare_security
from service.device import configure_devices
from service.docs_pages import install_docs_pages
from service.errors import install_error_handlers
from service.metrics import Metrics
from service.middleware import BodyLimit, Cors, HeadAsGet, IdentityBody, RequestMetrics
from service.playground import install_playground
from service.registry import ModelRegistry, RuntimeFactory, default_runtime_factory
from service.routes import density, embeddings, generation, health, models, qa
from service.settings import Settings, get_settings

log = logging.getLogger("service")

# Requests' short-lived objects are freed by reference counting before a collection would see them;
# at the default (700) the collector promoted them and its full walks of TensorFlow's objects held
# the GIL for 0.45 s (docs/tuning.md#the-garbage-collectors-threshold).
GC_GEN0_THRESHOLD = 10_000
# A batch thread back from TensorFlow waits out the interval for the busy event loop's GIL, dozens
# of times a batch (docs/tuning.md#the-gil-switch-interval).
GIL_SWITCH_INTERVAL_S = 0.0005


def create_app(
    settings: Settings | None = None,
    runtime_factory: RuntimeFactory = default_runtime_factory,
) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    metrics = Metrics()
    keys = KeyRing.from_settings(settings)  # before anything starts: a bad key stops it here
    registry = ModelRegistry(settings, metrics, runtime_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime_factory is default_runtime_factory:
            configure_devices(settings.device, settings.mixed_precision)
        gc.set_threshold(max(GC_GEN0_THRESHOLD, gc.get_threshold()[0]), *gc.get_threshold()[1:])
        sys.setswitchinterval(min(GIL_SWITCH_INTERVAL_S, sys.getswitchinterval()))
        # Load in the background: /healthz answers at once, /readyz turns 200 when all are warm.
        loading = asyncio.create_task(registry.start(), name="registry-start")
        try:
            yield
        finally:
            # Graceful: /readyz turns 503, queued requests finish, then the process may exit.
            loading.cancel()
            await registry.stop(drain_timeout_s=settings.request_timeout_s)

    app = FastAPI(
        title="kexue-serve",
        version="1.0.0",
        summary="Reading-comprehension QA, conditional generation, sentence embeddings and "
        "density scoring, served over HTTP JSON.",
        lifespan=lifespan,
        # The service reports through its own Prometheus collectors (/metrics): this only stops
        # FastAPI's per-request check for a configured OpenTelemetry provider
        # (docs/tuning.md#fastapis-telemetry-check).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # FastAPI's /docs and /redoc load their assets from a CDN: these are served from here.
        docs_url=None,
        redoc_url=None,
        # A trailing slash is answered by the 404 handler (service/errors.py): a redirect for
        # GET, a JSON 404 naming the right path for a POST, whose clients seldom follow a 307.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    install_error_handlers(app)
    for router in (
        health.router,
        models.router,
        embeddings.router,
        qa.router,
        generation.router,
        density.router,
    ):
        app.include_router(router)
    install_docs_pages(app)
    install_playground(app)
    declare_security(app, metrics_open=not settings.metrics_require_key)
    # Outermost first in the list Starlette builds: metrics see the 401s and 413s; a request
    # without a key is refused before its body is read; CORS answers a preflight before the key
    # check, and adds its headers to the 401s, 413s and 415s too.
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(IdentityBody)
    if keys is not None:
        app.add_middleware(RequireKey, keys=keys, metrics_open=not settings.metrics_require_key)
    if settings.cors_origins:
        app.add_middleware(Cors, origins=settings.cors_origins)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app
