from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import RegistryDep
from service.schemas.health import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="health", response_model=Health)
async def health() -> Health:
    """Answers while the process lives."""
    return Health()


@router.get(
    "/readyz",
    operation_id="ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Some models are still being loaded"}},
)
async def ready(registry: RegistryDep) -> Response:
    """200 when every model that can be loaded is loaded and warm; else 503 and which not.

    A model none of whose versions loads is named under `unavailable` with the reason; it holds
    the 503 while a version of it is being loaded, or, for at most READY_GRACE_S, still waits to
    be tried (incomplete, settling, due for a retry); a model whose versions all failed does not:
    the instance still serves every other model."""
    missing = registry.not_ready()
    if registry.shutting_down or registry.draining:
        missing = ["(shutting down)", *missing]
    body = Readiness(
        status="not_ready" if missing else "ready",
        not_ready=missing,
        unavailable=registry.unavailable(),
    )
    return JSONResponse(body.model_dump(), status_code=503 if missing else 200)


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(registry: RegistryDep) -> Response:
    """Prometheus metrics: requests, latencies, queue depth, batch sizes, queue vs compute time."""
    return Response(generate_latest(registry.metrics.registry), media_type=CONTENT_TYPE_LATEST)
