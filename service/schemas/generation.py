"""POST /v1/generate: texts written under a condition (a label or a vector)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, StringConstraints

from models.generation.sampling import MIN_TEMPERATURE
from service.schemas.common import (
    HARD_MAX_TEXT_CHARS,
    SEED_BOUND,
    ModelName,
    RequestBody,
    VersionSelector,
    version_field,
)

# Schema caps (422); the configured MAX_NUM_SAMPLES / MAX_NEW_TOKENS are lower and answer 413.
HARD_MAX_NUM_SAMPLES = 1024
HARD_MAX_NEW_TOKENS = 65536
HARD_MAX_CONDITION_DIM = 65536


class LabelCondition(RequestBody):
    label: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="One of the model's labels (its manifest's `labels`); 400 otherwise."
    )
    model_config = {"extra": "forbid"}


class VectorCondition(RequestBody):
    vector: Annotated[
        list[Annotated[StrictFloat, Field(allow_inf_nan=False)]],
        Field(min_length=1, max_length=HARD_MAX_CONDITION_DIM, fail_fast=True),
    ] = Field(
        description="Exactly the model's `condition_dim` numbers, finite in float32 (400 "
        "otherwise, and for a vector that overflows the model's arithmetic)."
    )
    model_config = {"extra": "forbid"}


class GenerateRequest(RequestBody):
    model: ModelName | None = Field(
        None, description="Model name; may be left out when the store holds one generation model."
    )
    version: VersionSelector | None = version_field()
    condition: LabelCondition | VectorCondition = Field(
        description='What to write about: {"label": name} or {"vector": [numbers]}.'
    )
    prompt: Annotated[str, StringConstraints(max_length=HARD_MAX_TEXT_CHARS)] = Field(
        "", description="Text to continue (at most MAX_TEXT_CHARS characters); empty: from scratch."
    )
    num_samples: StrictInt = Field(
        1, ge=1, le=HARD_MAX_NUM_SAMPLES, description="Texts to write; at most MAX_NUM_SAMPLES."
    )
    max_new_tokens: StrictInt | None = Field(
        None,
        ge=1,
        le=HARD_MAX_NEW_TOKENS,
        description="Most tokens per text (default and most: MAX_NEW_TOKENS); a text also ends "
        "at the model's own length.",
    )
    temperature: StrictFloat | None = Field(
        None,
        ge=0,
        le=100,
        description=f"Sampling temperature; under {MIN_TEMPERATURE:g} (0 included) greedy, the "
        "most likely token each step. Default: the model's.",
    )
    top_k: StrictInt | None = Field(
        None, ge=0, le=1_000_000, description="Keep the k most likely tokens; 0 turns it off."
    )
    top_p: StrictFloat | None = Field(
        None, gt=0, le=1, description="Nucleus: keep the most likely tokens up to this mass."
    )
    seed: StrictInt | None = Field(
        None,
        ge=0,
        lt=SEED_BOUND,
        description="Same seed, same request, same model version: the same texts.",
    )
    guidance_scale: StrictFloat | None = Field(
        None,
        ge=0,
        le=20,
        description="Label-conditioned models: sample from log p(label) + s (log p(label) - "
        "log p(other labels)), which holds the text to its label more firmly (classifier-free "
        "guidance; 0 or null: off). Each sample then takes two rows of the decoding batch.",
    )
    stream: StrictBool = Field(
        False,
        description="Send Server-Sent Events as tokens are written: `data: GenerateChunk` per "
        "token or end of a sample, then `data: [DONE]`.",
    )

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {"condition": {"label": "hotel"}, "num_samples": 2, "max_new_tokens": 32, "seed": 7}
            ]
        },
    }


class GeneratedSample(BaseModel):
    text: str
    tokens: int = Field(description="Tokens written (the closing [SEP] not counted).")
    finish_reason: Literal["stop", "length"] = Field(
        description="stop: the model ended the text; length: max_new_tokens or the model's length."
    )


class GenerateResponse(BaseModel):
    model: str
    version: int
    samples: list[GeneratedSample]


class GenerateChunk(BaseModel):
    """One Server-Sent Event of a streamed generation."""

    model: str
    version: int
    index: int = Field(description="Which sample (0 .. num_samples - 1).")
    text: str = Field(description="Text added to that sample since its previous chunk.")
    tokens: int = Field(description="Tokens that sample has written so far.")
    finish_reason: Literal["stop", "length"] | None = Field(
        None, description="Set on the sample's last chunk."
    )
