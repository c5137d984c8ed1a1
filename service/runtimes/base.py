"""What every runtime offers the registry and the batcher.

A runtime drives one loaded version of one model: it prepares request inputs (tokenise, validate)
on the request's side and warms itself up; a `BatchedRuntime` runs a batch of prepared items on
its model's batcher thread (generation decodes in a loop of its own instead). No FastAPI in here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from models.store import Manifest, WordPieceTokenizer
from models.store import read_manifest as read_typed_manifest
from service.errors import BadInput, ServiceError
from service.metrics import Metrics
from service.settings import Settings

if TYPE_CHECKING:  # the tokenizer's package imports TensorFlow; runtimes load it lazily
    from models.bert.tokenizer import BertTokenizer


class Runtime(ABC):
    task: ClassVar[str]
    family: ClassVar[str]
    # The manifest this runtime reads (`models.store`), checked when it is made: a version that
    # lacks a key the runtime needs fails to load with a message naming the key.
    manifest_type: ClassVar[type[Manifest]] = Manifest
    spec: Manifest
    # The service's collectors, set by the registry (runtimes that keep their own loop use it).
    metrics: Metrics | None = None

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.settings = settings
        self.spec = read_typed_manifest(path, self.manifest_type)
        # The manifest as written, for GET /v1/models; the runtime reads the typed `spec`.
        self.manifest: dict[str, Any] = self.spec.as_json()

    @abstractmethod
    def load(self) -> None:
        """Load the SavedModel (blocking; runs on a worker thread)."""

    @abstractmethod
    def warmup(self) -> None:
        """Call the model once per batch-size/length bucket so that no request pays for tracing."""


class BatchedRuntime(Runtime):
    """A runtime whose model calls take the prepared items of many requests at once, from its
    model's `DynamicBatcher` (the registry gives a model one when such a version loads)."""

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
    """The manifest of version folder `path` as written, once `models.store`'s contract has
    checked it (the typed manifest of its task and family, or the keys every manifest has for a
    pair no runtime serves). OSError if unreadable, ValueError naming the file and its bad keys.
    """
    return read_typed_manifest(path).as_json()


def wordpiece_tokenizer(path: Path, spec: WordPieceTokenizer, **kwargs: Any) -> BertTokenizer:
    """The WordPiece tokenizer a manifest's `tokenizer` entry describes (vocab.txt in assets/);
    a vocabulary outside the version folder (through a link) is refused: nothing outside the
    store is read."""
    from models.bert.tokenizer import BertTokenizer

    vocab = (path / spec.vocab).resolve()
    if not vocab.is_relative_to(path.resolve()):
        raise ValueError(f"{path}: the vocabulary {spec.vocab!r} is outside the version")
    return BertTokenizer(
        vocab, lowercase=spec.lowercase, strip_accents=spec.strip_accents, **kwargs
    )


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds `length` (callers have already refused longer inputs)."""
    for b in buckets:
        if length <= b:
            return b
    return buckets[-1]
