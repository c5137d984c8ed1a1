"""What every runtime offers the registry and the batcher.

A runtime drives one loaded version of one model: it prepares request inputs (tokenise, validate)
on the request's side, runs a batch of prepared items on the batcher's thread, and warms itself up.
No FastAPI in here.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from service.errors import BadInput, ServiceError
from service.settings import Settings


class Runtime(ABC):
    task: ClassVar[str]
    family: ClassVar[str]

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.settings = settings
        self.manifest: dict[str, Any] = read_manifest(path)

    @abstractmethod
    def load(self) -> None:
        """Load the SavedModel (blocking; runs on a worker thread)."""

    @abstractmethod
    def warmup(self) -> None:
        """Call the model once per batch-size/length bucket so that no request pays for tracing."""

    @abstractmethod
    def run_batch(self, items: Sequence[Any]) -> Sequence[Any]:
        """One model call over prepared items; a list of the same length, in order."""


@contextmanager
def reading_input(what: str) -> Iterator[None]:
    """A tokenizer that chokes on odd text is the input's fault: 400, never a 500."""
    try:
        yield
    except ServiceError:
        raise
    except Exception as exc:
        raise BadInput(f"{what} could not be tokenised: {type(exc).__name__}: {exc}") from exc


def read_manifest(path: Path) -> dict[str, Any]:
    with open(path / "manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    if not isinstance(manifest, dict) or "task" not in manifest or "family" not in manifest:
        raise ValueError(f"{path}/manifest.json has no task/family")
    return manifest


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds `length` (callers have already refused longer inputs)."""
    for b in buckets:
        if length <= b:
            return b
    return buckets[-1]
