"""Sentence embeddings from a BERT SavedModel written by `training.encoder` (signature `embed`).

The SavedModel's functions are XLA-compiled, and XLA compiles once per input shape. So that the
set of shapes stays small and is all compiled before the first request, every batch is padded to
a row bucket (a power of two up to MAX_BATCH_SIZE) and a length bucket (LENGTH_BUCKETS, capped at
the model's `max_seq_len`), and `warmup` runs each (rows, length) pair the batcher can produce.

Texts longer than the largest length bucket are refused (413), as text-embeddings-inference does
by default (`truncate=false`): a silently truncated text would get the vector of another text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import BadInput, PayloadTooLarge
from service.runtimes.base import bucket_for, wordpiece_tokenizer
from service.runtimes.embedding import EmbeddingRuntime, EncodedText
from service.settings import Settings

# The SavedModel's signature and output (models.bert.export; not imported, so that this module
# reads any SavedModel with this contract).
SIGNATURE_EMBED = "embed"
EMBEDDING_KEY = "embedding"
# The one pooling the export writes; requests may name it or leave `method` out.
METHOD_MEAN = "mean"
METHODS = (METHOD_MEAN,)


def row_buckets(max_batch_size: int) -> tuple[int, ...]:
    """Batch sizes a batch is padded up to: 1, 2, 4, ... and `max_batch_size` itself.

    Doubling keeps the padding waste under half a batch with log2(MAX_BATCH_SIZE) + 1 shapes.
    """
    sizes = {max_batch_size}
    size = 1
    while size < max_batch_size:
        sizes.add(size)
        size *= 2
    return tuple(sorted(sizes))


def reachable(rows: int, length: int, buckets: Sequence[int], max_batch_tokens: int) -> bool:
    """Whether the batcher can ever pad a batch to (rows, length) (else warming it is waste).

    The batcher keeps rows x longest <= max_batch_tokens once a batch has two items; the fewest
    rows that pad to `rows` is rows // 2 + 1, the shortest text that pads to `length` is one more
    than the bucket below.
    """
    if rows == 1:
        return True
    below = [b for b in buckets if b < length]
    shortest = (below[-1] if below else 0) + 1
    return (rows // 2 + 1) * shortest <= max_batch_tokens


class BertEmbeddingRuntime(EmbeddingRuntime):
    """Drives a BERT sentence-embedding SavedModel: WordPiece on the request's side, one padded
    `embed` call per batch, one unnormalised mean-pooled vector per text.

    Args:
        name: the model's name in the store.
        version: the version folder's number.
        path: the version folder (SavedModel + manifest.json).
        settings: the service's settings (buckets, batch size, token budget).
    """

    family = "bert"

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        super().__init__(name, version, path, settings)
        self.dim = int(self.manifest["dim"])
        self.max_seq_len = int(self.manifest["max_seq_len"])
        self.tokenizer = wordpiece_tokenizer(path, self.manifest, max_length=self.max_seq_len)
        # Capped so that no bucket pads past the position table.
        self.length_buckets = tuple(sorted({min(b, self.max_seq_len) for b in settings.buckets}))
        self.max_tokens = self.length_buckets[-1]
        self.row_buckets = row_buckets(settings.max_batch_size)
        self._cls, self._sep, self._pad = (
            self.tokenizer.cls_id,
            self.tokenizer.sep_id,
            self.tokenizer.pad_id,
        )
        self._embed: Any = None

    def load(self) -> None:
        import tensorflow as tf

        model = tf.saved_model.load(str(self.path))
        self._embed = model.signatures[SIGNATURE_EMBED]
        self._model = model  # keeps the variables alive

    def prepare(self, text: str, method: str | None) -> EncodedText:
        """`[CLS] text [SEP]` ids (request side, before queueing); refuses what cannot run.

        Raises:
            BadInput: a method other than "mean".
            PayloadTooLarge: more tokens than the largest length bucket.
        """
        method = method or METHOD_MEAN
        if method not in METHODS:
            raise BadInput(
                f"method {method!r} does not apply to BERT encoders; use {METHOD_MEAN!r} or omit it"
            )
        pieces = self.tokenizer.piece_ids(text)
        length = len(pieces) + 2
        if length > self.max_tokens:
            raise PayloadTooLarge(
                f"text has {length} tokens with [CLS] and [SEP]; the most is {self.max_tokens} "
                "(the largest of LENGTH_BUCKETS and the model's max_seq_len)"
            )
        ids = np.asarray([self._cls, *pieces, self._sep], dtype=np.int32)
        return EncodedText(ids=ids, method=method)

    def run_batch(self, items: Sequence[EncodedText]) -> list[np.ndarray]:
        width = bucket_for(max(item.tokens for item in items), self.length_buckets)
        # The batcher never sends more than MAX_BATCH_SIZE; a direct caller's larger batch
        # runs at its own size.
        rows = max(len(items), bucket_for(len(items), self.row_buckets))
        token_ids = np.full((rows, width), self._pad, dtype=np.int32)
        padding_mask = np.zeros((rows, width), dtype=np.int32)
        for row, item in enumerate(items):
            token_ids[row, : item.tokens] = item.ids
            padding_mask[row, : item.tokens] = 1
        # Filler rows see only padding: their outputs are thrown away, and attention never
        # mixes rows, so they cannot change the real rows' vectors.
        out = self._call(token_ids, padding_mask)
        return [out[row] for row in range(len(items))]

    def warmup(self) -> None:
        for rows in self.row_buckets:
            for width in self.length_buckets:
                if reachable(rows, width, self.length_buckets, self.settings.max_batch_tokens):
                    token_ids = np.full((rows, width), self._cls, dtype=np.int32)
                    self._call(token_ids, np.ones((rows, width), dtype=np.int32))

    def _call(self, token_ids: np.ndarray, padding_mask: np.ndarray) -> np.ndarray:
        out = self._embed(
            token_ids=token_ids,
            segment_ids=np.zeros_like(token_ids),
            padding_mask=padding_mask,
        )[EMBEDDING_KEY]
        return np.asarray(out)
