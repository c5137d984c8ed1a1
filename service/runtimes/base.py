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
from typing import TYPE_CHECKING, Any, ClassVar

from service.errors import BadInput, ServiceError
from service.metrics import Metrics
from service.settings import Settings

if TYPE_CHECKING:  # the tokenizer's package imports TensorFlow; runtimes load it lazily
    from models.bert.tokenizer import BertTokenizer


class Runtime(ABC):
    task: ClassVar[str]
    family: ClassVar[str]
    # The service's collectors, set by the registry (runtimes that keep their own loop use it).
    metrics: Metrics | None = None

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


def wordpiece_tokenizer(path: Path, manifest: dict[str, Any], **kwargs: Any) -> BertTokenizer:
    """The WordPiece tokenizer a manifest's `tokenizer` entry describes (vocab.txt in assets/);
    a vocabulary outside the version folder is refused (nothing outside the store is read)."""
    from models.bert.tokenizer import BertTokenizer

    spec = manifest.get("tokenizer", {})
    if spec.get("kind", "wordpiece") != "wordpiece":
        raise ValueError(f"{path}: tokenizer kind {spec.get('kind')!r} is not 'wordpiece'")
    vocab = (path / spec.get("vocab", "assets/vocab.txt")).resolve()
    if not vocab.is_relative_to(path.resolve()):
        raise ValueError(f"{path}: the vocabulary {spec.get('vocab')!r} is outside the version")
    return BertTokenizer(
        vocab,
        lowercase=bool(spec.get("lowercase", True)),
        strip_accents=spec.get("strip_accents"),
        **kwargs,
    )


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds `length` (callers have already refused longer inputs)."""
    for b in buckets:
        if length <= b:
            return b
    return buckets[-1]
