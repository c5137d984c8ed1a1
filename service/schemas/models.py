"""What /v1/models reports: every model, its versions and their states, and its labels."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

OWNED_BY = "kexue-serve"


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
    labels: list[str] = Field(
        default_factory=list, description="The labels (labels.json, in force) naming this version."
    )


class ModelStatus(BaseModel):
    # OpenAI's model object first (what `client.models.list()` of the OpenAI SDKs reads): the
    # name and the serving version's manifest say it again; then the service's own fields.
    id: str = Field(description="The model's name (OpenAI's `id`).")
    object: Literal["model"] = "model"
    created: int = Field(
        description="When the serving version was made (its manifest's created_at), in Unix "
        "seconds; 0 while no version serves."
    )
    owned_by: str = OWNED_BY
    name: str
    task: str | None = Field(None, description="embedding, qa, generation or density.")
    family: str | None = None
    serving_version: int | None = Field(
        None, description="The version answering requests that name none: the newest loaded."
    )
    version_policy: str = Field(
        "latest",
        description="VERSION_POLICY: which versions are loaded at once ('latest', 'latest:N', "
        "'all'); each loaded version is AVAILABLE and answers requests that name it.",
    )
    versions: list[VersionStatus]
    labels: dict[str, int] = Field(
        default_factory=dict,
        description="The version labels in force, from the model's labels.json: label -> version.",
    )
    labels_error: str | None = Field(
        None,
        description="Why labels.json is not in force (not valid, or it names a version that is "
        "not loaded: the last good labels stay), or that a label in force names a version no "
        "longer loaded.",
    )
    manifest: dict[str, Any] | None = Field(
        None, description="manifest.json of the serving version."
    )


def created_seconds(manifest: dict[str, Any] | None) -> int:
    """OpenAI's `created`: the manifest's created_at in Unix seconds (0 without one)."""
    try:
        stamp = dt.datetime.fromisoformat(str((manifest or {})["created_at"]))
    except (KeyError, ValueError):
        return 0
    if stamp.utcoffset() is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp())


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelStatus]
