"""Sentence embeddings from a JoSE SavedModel (signatures `fold_in` and `average`,
`models.jose.signatures`), read by `models.jose.reader`."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from models.jose.signatures import METHODS, VOCAB_ASSET
from models.jose.tokenizer import Tokenizer, Vocabulary
from models.store import EmbeddingManifest, JoseEmbeddingManifest, Manifest
from service.errors import BadInput, PayloadTooLarge
from service.runtimes.base import BatchedRuntime, bucket_for
from service.settings import Settings

# `truncate` of /v1/embeddings, as text-embeddings-inference's `truncation_direction`: which end of
# an over-long text is kept ("right" cuts the end off, keeping the start). None: refuse it (413).
Truncation = Literal["right", "left"]


def truncated(ids: Sequence[int], limit: int, truncate: Truncation) -> list[int]:
    """The `limit` ids a text keeps when cut from the `truncate` side."""
    kept = list(ids)
    if len(kept) <= limit:
        return kept
    return kept[:limit] if truncate == "right" else kept[len(kept) - limit :]


@dataclass(frozen=True)
class EncodedText:
    """One text, tokenised and mapped to ids; `method` picks the signature."""

    ids: np.ndarray  # int32 [n]
    method: str

    @property
    def tokens(self) -> int:
        return int(self.ids.shape[0])


class EmbeddingRuntime(BatchedRuntime):
    """What /v1/embeddings needs of any embedding family."""

    task = "embedding"
    manifest_type: ClassVar[type[Manifest]] = EmbeddingManifest
    spec: EmbeddingManifest

    @abstractmethod
    def prepare(
        self, text: str, method: str | None, truncate: Truncation | None = None
    ) -> EncodedText:
        """Tokenise one text on the request's side; refuse what the model cannot take, unless
        `truncate` says which end of an over-long text to keep."""


class JoseEmbeddingRuntime(EmbeddingRuntime):
    task = "embedding"
    family = "jose"
    manifest_type = JoseEmbeddingManifest
    spec: JoseEmbeddingManifest

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        super().__init__(name, version, path, settings)
        self.tokenizer = Tokenizer.from_config(self.spec.tokenizer.model_dump())
        self.vocab = Vocabulary.load(path / "assets" / VOCAB_ASSET)
        self.dim = self.spec.dim
        self.default_method = METHODS[0]
        self.buckets = settings.buckets
        self._model: Any = None

    def load(self) -> None:
        from models.jose.reader import SavedModelJose

        self._model = SavedModelJose(self.path)

    def prepare(
        self, text: str, method: str | None, truncate: Truncation | None = None
    ) -> EncodedText:
        """Tokenise one text (request side, before queueing).

        The limit is in known words (out-of-vocabulary words carry no vector and are dropped
        first): the largest length bucket. Past it, `truncate` keeps the first ("right") or the
        last ("left") of them; without it, 413.
        """
        method = method or self.default_method
        if method not in METHODS:
            raise BadInput(
                f"unknown method {method!r}; use one of {', '.join(METHODS)}", param="method"
            )
        ids = self.vocab.encode(self.tokenizer.tokenize(text))
        limit = self.buckets[-1]
        if len(ids) > limit:
            if truncate is None:
                raise PayloadTooLarge(
                    f"text has {len(ids)} known tokens; the most is {limit} "
                    "(the largest of LENGTH_BUCKETS); truncate: true embeds the first of them"
                )
            ids = truncated(ids, limit, truncate)
        return EncodedText(ids=np.asarray(ids, dtype=np.int32), method=method)

    def run_batch(self, items: Sequence[EncodedText]) -> list[np.ndarray]:
        # The batcher groups by (runtime, method), so one signature serves the whole batch.
        width = bucket_for(max(1, max(item.tokens for item in items)), self.buckets)
        ids = np.zeros((len(items), width), dtype=np.int32)  # id 0 is <pad>
        for row, item in enumerate(items):
            ids[row, : item.tokens] = item.ids
        out = self._model.embed(items[0].method, ids)
        return [out[row] for row in range(len(items))]

    def warmup(self) -> None:
        # jieba reads its dictionary on first use (about a second): not on a request's time.
        self.prepare("预热 warm-up", None)
        for method in METHODS:
            for width in self.buckets:
                for rows in sorted({1, self.settings.max_batch_size}):
                    ids = np.ones((rows, width), dtype=np.int32)
                    self._model.embed(method, ids)
