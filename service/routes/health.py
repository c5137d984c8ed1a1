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
    responses={503: {"model": Readiness, "description": "Some models are not loaded and warm"}},
)
async def ready(registry: RegistryDep) -> Response:
    """200 when every model in the store has a loaded, warm version; else 503 and which not."""
    missing = registry.not_ready()
    if registry.shutting_down or registry.draining:
        missing = ["(shutting down)", *missing]
    body = Readiness(status="not_ready" if missing else "ready", not_ready=missing)
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
