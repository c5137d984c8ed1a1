"""POST /v1/density/score and /v1/density/sample: log-densities of rows, and samples."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, JsonValue, StrictFloat, StrictInt

from service.schemas.common import (
    HARD_MAX_INPUTS,
    SEED_BOUND,
    ModelName,
    RequestBody,
    VersionSelector,
    version_field,
)

# Schema caps (422); the configured MAX_INPUTS / MAX_DENSITY_SAMPLES are lower and answer 413.
HARD_MAX_DENSITY_DIM = 65536
HARD_MAX_DENSITY_SAMPLES = 65536
MAX_SEED = SEED_BOUND - 1

FiniteFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]
# fail_fast: a list's first wrong item is its error (service/schemas/common.py).
Row = Annotated[
    list[FiniteFloat], Field(min_length=1, max_length=HARD_MAX_DENSITY_DIM, fail_fast=True)
]


EXAMPLE_DIGIT: list[JsonValue] = [
    0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0,
    0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0,
    0, 6, 13, 10, 0, 0, 0,
]  # fmt: skip


class DensityScoreRequest(RequestBody):
    model: ModelName | None = Field(
        None, description="Model name; may be left out when the store holds one density model."
    )
    version: VersionSelector | None = version_field()
    inputs: Annotated[
        list[Row], Field(min_length=1, max_length=HARD_MAX_INPUTS, fail_fast=True)
    ] = Field(
        description="Rows of the model's `input_dim` numbers each, finite in float32, in data "
        "units (400 for another length or a number beyond float32); at most MAX_INPUTS rows (413 "
        "past it)."
    )
    logdet: Literal["auto", "series", "exact"] = Field(
        "auto",
        description="The residual blocks' log-determinant: 'exact' (full Jacobians; refused with "
        "400 when input_dim is over MAX_EXACT_LOGDET_DIM), 'series' (truncated power series with "
        "fixed Hutchinson probes: deterministic, an estimate off by up to about 2 nats a row on "
        "the demo's models, cheaper only for large inputs), or 'auto' (the default): exact when "
        "input_dim is at most MAX_EXACT_LOGDET_DIM, else series. The response's `logdet` says "
        "which was used.",
    )

    model_config = {
        "extra": "forbid",
        # An 8x8 digit (scikit-learn's first "0", 64 values 0..16): Try it out on /docs answers
        # 200 against the demo's density model, demo-digits (a 2-D row got 400: "takes 64").
        "json_schema_extra": {"examples": [{"inputs": [EXAMPLE_DIGIT]}]},
    }


class DensityScoreResponse(BaseModel):
    model: str
    version: int
    log_prob: list[float | None] = Field(
        description="log p(x) in nats per row (discrete data: the dequantised density at the bin "
        "centre). null when it is not finite: -inf for a value outside a discrete model's range."
    )
    bits_per_dim: list[float | None] = Field(
        description="-log_prob / (input_dim ln 2) per row; null when it is not finite."
    )
    logdet: Literal["series", "exact"] = Field(
        description="The log-determinant these scores used (the request's, or what 'auto' chose)."
    )


class DensitySampleRequest(RequestBody):
    model: ModelName | None = Field(
        None, description="Model name; may be left out when the store holds one density model."
    )
    version: VersionSelector | None = version_field()
    num_samples: StrictInt = Field(
        ge=1, le=HARD_MAX_DENSITY_SAMPLES, description="At most MAX_DENSITY_SAMPLES (413 past it)."
    )
    seed: StrictInt | None = Field(
        None, ge=0, lt=SEED_BOUND, description="The same seed, the same samples; random if unset."
    )

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"num_samples": 4}]}}


class DensitySampleResponse(BaseModel):
    model: str
    version: int
    seed: int = Field(description="The seed the samples were drawn with.")
    samples: list[list[float]] = Field(description="num_samples rows of input_dim, data units.")
    iterations: list[int] = Field(
        description="Fixed-point steps each residual block's inverse took, in forward order."
    )
