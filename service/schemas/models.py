"""What /v1/models reports: every model, its versions and their states."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class VersionState(StrEnum):
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    FAILED = "FAILED"
    UNLOADED = "UNLOADED"


class VersionStatus(BaseModel):
    version: int
    state: VersionState
    error: str | None = Field(
        None,
        description="Why the version failed to load; for one not tried yet, what it waits for "
        "(to be complete, to stop changing, a retry); for a serving one, that its folder left "
        "the store.",
    )


class ModelStatus(BaseModel):
    name: str
    task: str | None = Field(None, description="embedding, qa, generation or density.")
    family: str | None = None
    serving_version: int | None = Field(None, description="The version answering requests.")
    versions: list[VersionStatus]
    manifest: dict[str, Any] | None = Field(
        None, description="manifest.json of the serving version."
    )


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelStatus]
