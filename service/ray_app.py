"""The same FastAPI service on Ray Serve: replicas across a cluster behind Ray's HTTP proxy.

    pip install '.[ray]'
    serve run service.ray_app:app              # a local Ray instance, proxy on 127.0.0.1:8000
    serve deploy deploy/serve.yaml             # onto a running cluster (`ray start --head`)

Each replica is a whole service as `python -m service` runs it: it builds the app of
`service.app.create_app` on the replica (the builder runs there, so nothing of the model store
crosses the wire), loads the store named by `MODEL_STORE` and batches its own requests. The
replica count, each replica's CPUs and GPUs, and the autoscaling bounds are `SERVE_*` environment
variables (`RayServeSettings`) or, for `serve deploy`, the Serve config file, which overrides them.

Backpressure happens at two levels: Ray's proxy answers 503 once every replica has
`max_ongoing_requests` in flight and `max_queued_requests` more are waiting; inside a replica the
service's own queue answers 429 with `Retry-After` as it does without Ray. Ray Serve is an
optional extra: nothing else in the service imports this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from ray import serve
from ray.serve.deployment import Application, Deployment
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.app import create_app
from service.settings import Settings

DEPLOYMENT_NAME = "kexue-serve"
# Response header naming the replica that answered (load spreading is visible to callers).
REPLICA_HEADER = "x-serve-replica"
FIRST_SCAN_POLL_S = 0.2


class RayServeSettings(BaseSettings):
    """How the service is deployed on Ray Serve; from `SERVE_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="SERVE_", env_file=".env", extra="ignore")

    replicas: int = Field(1, ge=1, description="Replicas when autoscaling is off.")
    min_replicas: int | None = Field(
        None, ge=0, description="Autoscaling lower bound; autoscaling is on when both are set."
    )
    max_replicas: int | None = Field(None, ge=1, description="Autoscaling upper bound.")
    # Continuous batching wants many requests in flight at each replica: autoscaling aims for
    # this many per replica rather than Ray's default of 2.
    target_ongoing_requests: float = Field(16, gt=0)
    max_ongoing_requests: int = Field(
        64, ge=1, description="Requests one replica takes at once; the proxy queues the rest."
    )
    max_queued_requests: int = Field(
        256, ge=-1, description="Requests waiting for a replica before 503 (-1: unbounded)."
    )
    cpus_per_replica: float = Field(1.0, gt=0)
    gpus_per_replica: float = Field(0.0, ge=0)

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of `serve.deployment` for these settings."""
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "ray_actor_options": {
                "num_cpus": self.cpus_per_replica,
                "num_gpus": self.gpus_per_replica,
            },
        }
        if self.min_replicas is not None and self.max_replicas is not None:
            if self.min_replicas > self.max_replicas:
                raise ValueError("SERVE_MIN_REPLICAS exceeds SERVE_MAX_REPLICAS")
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


class ReplicaHeader:
    """Pure ASGI middleware adding `x-serve-replica: <replica id>` to every response."""

    def __init__(self, app: ASGIApp, replica_id: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica_id.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


def build_replica_app() -> FastAPI:
    """The service's app, built on the replica from the replica's environment.

    Its startup lasts until the store's first scan has loaded and warmed every model (or marked
    it FAILED). Ray routes to a replica once its startup returns, and the plain service loads in
    the background after startup, so without this wait a new replica (a replacement, or one added
    by autoscaling) would take requests it can only answer 503 "not loaded yet".
    """
    app = create_app(Settings())
    registry = app.state.registry
    serve_in_background = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan_after_first_scan(app: FastAPI) -> AsyncIterator[None]:
        async with serve_in_background(app):
            while not registry.started:
                await asyncio.sleep(FIRST_SCAN_POLL_S)
            yield

    app.router.lifespan_context = lifespan_after_first_scan
    replica_id = serve.get_replica_context().replica_id.unique_id
    app.add_middleware(ReplicaHeader, replica_id=replica_id)
    return app


def kexue_deployment(settings: RayServeSettings | None = None) -> Deployment:
    """The Serve deployment of the whole service, with options from `settings`."""
    settings = settings or RayServeSettings()
    service_class = serve.ingress(build_replica_app)()
    return serve.deployment(**settings.deployment_options())(service_class)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Application builder for `serve run service.ray_app:build_app key=value ...`: the keys are
    `RayServeSettings` fields (e.g. `replicas=2 cpus_per_replica=1`), over the environment."""
    settings = RayServeSettings.model_validate(args or {})
    return kexue_deployment(settings).bind()


# `serve run service.ray_app:app` and the Serve config file's import_path.
app = build_app()
