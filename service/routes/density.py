from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from service.deps import check_limit, model_for
from service.errors import error_responses
from service.inference import Served, answer_headers, infer
from service.json_body import StrictJSONRoute
from service.runtimes.density import DensityRuntime, SampleItem
from service.schemas.density import (
    MAX_SEED,
    DensitySampleRequest,
    DensitySampleResponse,
    DensityScoreRequest,
    DensityScoreResponse,
)
from service.settings import Settings

router = APIRouter(tags=["density"], route_class=StrictJSONRoute)


def finite_or_none(values: Iterable[float]) -> list[float | None]:
    """JSON has no infinity: a non-finite value (-inf outside a discrete range) becomes null."""
    return [float(v) if math.isfinite(v) else None for v in values]


def score_limits(body: DensityScoreRequest, settings: Settings) -> None:
    check_limit(len(body.inputs), settings.max_inputs, "inputs", "MAX_INPUTS")


def sample_limits(body: DensitySampleRequest, settings: Settings) -> None:
    check_limit(
        body.num_samples, settings.max_density_samples, "num_samples", "MAX_DENSITY_SAMPLES"
    )


ScoreModel = Annotated[
    Served[DensityScoreRequest, DensityRuntime],
    Depends(model_for("density", DensityScoreRequest, DensityRuntime, score_limits)),
]
SampleModel = Annotated[
    Served[DensitySampleRequest, DensityRuntime],
    Depends(model_for("density", DensitySampleRequest, DensityRuntime, sample_limits)),
]


@router.post(
    "/v1/density/score",
    operation_id="scoreDensity",
    response_model=DensityScoreResponse,
    responses=error_responses(400, 404, 413, 415, 429, 500, 503, 504),
)
async def score_density(
    density: ScoreModel, request: Request, response: Response
) -> DensityScoreResponse:
    """Log-density (nats) and bits per dimension of each row under the model.

    The default `logdet: "auto"` scores exactly models whose input_dim is at most
    MAX_EXACT_LOGDET_DIM and by the series above it; the response's `logdet` says which.

    Limits (settings): at most MAX_INPUTS rows (413); `logdet: "exact"` only for models whose
    input_dim is at most MAX_EXACT_LOGDET_DIM (400); a row of the wrong dimension gives 400.
    """
    item = density.runtime.prepare(density.body.inputs, density.body.logdet)
    [result] = await infer(request, density, [item], group=("score", item.exact), rows=[item.count])
    answer_headers(response, density, [result])
    return DensityScoreResponse(
        model=density.name,
        version=density.version,
        log_prob=finite_or_none(result.value.log_prob),
        bits_per_dim=finite_or_none(result.value.bits_per_dim),
        logdet="exact" if item.exact else "series",
    )


@router.post(
    "/v1/density/sample",
    operation_id="sampleDensity",
    response_model=DensitySampleResponse,
    responses=error_responses(400, 404, 413, 415, 429, 500, 503, 504),
)
async def sample_density(
    density: SampleModel, request: Request, response: Response
) -> DensitySampleResponse:
    """Draw samples by inverting the flow (fixed-point iteration per residual block).

    Limits (settings): `num_samples` at most MAX_DENSITY_SAMPLES (413).
    """
    body = density.body
    seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED + 1)
    item = SampleItem(num_samples=body.num_samples, seed=seed)
    [result] = await infer(request, density, [item], group="sample", rows=[item.num_samples])
    answer_headers(response, density, [result])
    return DensitySampleResponse(
        model=density.name,
        version=density.version,
        seed=seed,
        samples=result.value.samples.tolist(),
        iterations=[int(n) for n in result.value.iterations],
    )
