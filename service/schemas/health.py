from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class UnavailableModel(BaseModel):
    model: str
    reason: str = Field(description="Why it has no loaded version, and what happens next.")


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    not_ready: list[str] = Field(
        default_factory=list,
        description="What holds this instance unready: models still being loaded or waiting for "
        "a version to be tried (within READY_GRACE_S), '(store scan in progress)', "
        "'(shutting down)'.",
    )
    unavailable: list[UnavailableModel] = Field(
        default_factory=list,
        description="Every model with no loaded version, and why. Those not in `not_ready` no "
        "longer hold readiness: all their versions failed, or READY_GRACE_S passed.",
    )
