from __future__ import annotations

import math
import secrets
from collections.abc import Iterable

from fastapi import APIRouter, Request, Response

from service.deps import RegistryDep, SettingsDep, check_limit, timing_headers, until_disconnect
from service.errors import NotReady, error_responses
from service.registry import BatchItem
from service.runtimes.density import DensityRuntime, SampleItem
from service.schemas.density import (
    MAX_SEED,
    DensitySampleRequest,
    DensitySampleResponse,
    DensityScoreRequest,
    DensityScoreResponse,
)

router = APIRouter(tags=["density"])


def finite_or_none(values: Iterable[float]) -> list[float | None]:
    """JSON has no infinity: a non-finite value (-inf outside a discrete range) becomes null."""
    return [float(v) if math.isfinite(v) else None for v in values]


@router.post(
    "/v1/density/score",
    operation_id="scoreDensity",
    response_model=DensityScoreResponse,
    responses=error_responses(400, 404, 413, 429, 500, 503, 504),
)
async def score_density(
    body: DensityScoreRequest,
    request: Request,
    response: Response,
    registry: RegistryDep,
    settings: SettingsDep,
) -> DensityScoreResponse:
    """Log-density (nats) and bits per dimension of each row under the model.

    Limits (settings): at most MAX_INPUTS rows (413); `logdet: "exact"` only for models whose
    input_dim is at most MAX_EXACT_LOGDET_DIM (400); a row of the wrong dimension gives 400.
    """
    check_limit(len(body.inputs), settings.max_inputs, "inputs", "MAX_INPUTS")
    model = registry.resolve("density", body.model, settings.default_density_model)
    request.state.model = model.name
    runtime = model.runtime
    if not isinstance(runtime, DensityRuntime):
        raise NotReady(f"model {model.name!r} has no density runtime loaded")
    item = runtime.prepare(body.inputs, body.logdet)
    [result] = await until_disconnect(
        request,
        model.batcher.submit_many(
            [BatchItem(runtime, item)],
            rows=[item.count],
            group=(id(runtime), "score", item.exact),
            timeout_s=settings.request_timeout_s,
        ),
    )
    timing_headers(response, [result])
    response.headers["X-Model-Version"] = str(runtime.version)
    return DensityScoreResponse(
        model=model.name,
        version=runtime.version,
        log_prob=finite_or_none(result.value.log_prob),
        bits_per_dim=finite_or_none(result.value.bits_per_dim),
    )


@router.post(
    "/v1/density/sample",
    operation_id="sampleDensity",
    response_model=DensitySampleResponse,
    responses=error_responses(400, 404, 413, 429, 500, 503, 504),
)
async def sample_density(
    body: DensitySampleRequest,
    request: Request,
    response: Response,
    registry: RegistryDep,
    settings: SettingsDep,
) -> DensitySampleResponse:
    """Draw samples by inverting the flow (fixed-point iteration per residual block).

    Limits (settings): `num_samples` at most MAX_DENSITY_SAMPLES (413).
    """
    check_limit(
        body.num_samples, settings.max_density_samples, "num_samples", "MAX_DENSITY_SAMPLES"
    )
    model = registry.resolve("density", body.model, settings.default_density_model)
    request.state.model = model.name
    runtime = model.runtime
    if not isinstance(runtime, DensityRuntime):
        raise NotReady(f"model {model.name!r} has no density runtime loaded")
    seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED + 1)
    item = SampleItem(num_samples=body.num_samples, seed=seed)
    [result] = await until_disconnect(
        request,
        model.batcher.submit_many(
            [BatchItem(runtime, item)],
            rows=[item.num_samples],
            group=(id(runtime), "sample"),
            timeout_s=settings.request_timeout_s,
        ),
    )
    timing_headers(response, [result])
    response.headers["X-Model-Version"] = str(runtime.version)
    return DensitySampleResponse(
        model=model.name,
        version=runtime.version,
        seed=seed,
        samples=result.value.samples.tolist(),
        iterations=[int(n) for n in result.value.iterations],
    )
