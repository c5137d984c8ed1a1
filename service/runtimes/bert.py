"""Sentence embeddings from a BERT SavedModel written by `training.bert` (signature `embed`,
`models.bert.encoder_signatures`), read by `models.bert.encoder_reader`.

The SavedModel's functions are XLA-compiled, and XLA compiles once per input shape. So that the
set of shapes stays small and is all compiled before the first request, every batch is padded to
a row bucket (a power of two up to MAX_BATCH_SIZE) and a length bucket (LENGTH_BUCKETS, capped at
the model's `max_seq_len`), and `warmup` runs each (rows, length) pair the batcher can produce.

Texts longer than the largest length bucket are refused (413), as text-embeddings-inference does
by default (`truncate=false`): a silently truncated text would get the vector of another text.

A SavedModel with the `embed_packed` signature (every export since it was added) is fed packed
rows: the batch's texts laid one after another into rows of one of those same (rows, length)
shapes, each attending only to itself, instead of each text in a row of its own padded to the
batch's longest (`pack_texts`). Older exports run on `embed` as before.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.bert.encoder_signatures import EMBEDDING_KEY, POOLING_MEAN, POOLING_MODES
from models.store import BertEmbeddingManifest
from service.errors import BadInput, PayloadTooLarge
from service.runtimes.base import bucket_for, wordpiece_tokenizer
from service.runtimes.jose import EmbeddingRuntime, EncodedText, Truncation, truncated
from service.settings import Settings

# The one pooling the export writes; requests may name it or leave `method` out.
METHOD_MEAN = POOLING_MEAN
METHODS = POOLING_MODES
# [CLS] and [SEP] around every text (models.bert.tokenizer's SPECIAL_TOKENS_SINGLE; that module
# imports TensorFlow, which the service loads only with a model).
CLS_AND_SEP = 2


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


@dataclass(frozen=True)
class PackedBatch:
    """Where each text of a batch goes: `rows[r]` lists the texts of row r, in order."""

    shape: tuple[int, int]  # (rows, length) of the model call
    rows: list[list[int]]


def first_fit_decreasing(lengths: Sequence[int], width: int, texts_per_row: int) -> list[list[int]]:
    """Texts (by index) into rows of `width` tokens and at most `texts_per_row` texts each.

    First-fit decreasing, the classic bin-packing heuristic (never more than 11/9 of the fewest
    rows, plus one): longest text first, each into the first row it fits.
    """
    rows: list[list[int]] = []
    free: list[int] = []
    for text in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, room in enumerate(free):
            if lengths[text] <= room and len(rows[row]) < texts_per_row:
                rows[row].append(text)
                free[row] -= lengths[text]
                break
        else:
            rows.append([text])
            free.append(width - lengths[text])
    return rows


def pack_texts(
    lengths: Sequence[int],
    shapes: Collection[tuple[int, int]],
    row_sizes: Sequence[int],
    texts_per_row: int,
    hidden_size: int,
) -> PackedBatch | None:
    """The cheapest of `shapes` (rows, length) that holds the texts packed, or None if none does.

    A layer's dense products cost about 12 H^2 multiply-adds per token slot, padded or not, and
    its attention 2 L H more per slot in a row of L: so a call costs slots x (1 + L / 6H). Every
    width from the longest text's bucket up is tried; one text a row at the longest's bucket
    (plain padding) is among them, so packing never costs more than padding.
    """
    longest, total = max(lengths), sum(lengths)
    best: PackedBatch | None = None
    best_cost = math.inf
    for width in sorted({w for _, w in shapes if w >= longest}):
        rows = first_fit_decreasing(lengths, width, texts_per_row)
        size = bucket_for(len(rows), row_sizes)
        if (size, width) not in shapes or size < len(rows):
            continue
        cost = size * width * (1 + width / (6 * hidden_size))
        if cost < best_cost:
            best, best_cost = PackedBatch((size, width), rows), cost
        if width >= total:  # one row holds them all: wider rows only cost more
            break
    return best


class BertEmbeddingRuntime(EmbeddingRuntime):
    """Drives a BERT sentence-embedding SavedModel: WordPiece on the request's side, one
    `embed_packed` call per batch on packed rows (one padded `embed` call for older exports), one
    unnormalised mean-pooled vector per text.

    Args:
        name: the model's name in the store.
        version: the version folder's number.
        path: the version folder (SavedModel + manifest.json).
        settings: the service's settings (buckets, batch size, token budget).
    """

    family = "bert"
    manifest_type = BertEmbeddingManifest
    spec: BertEmbeddingManifest

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        super().__init__(name, version, path, settings)
        self.dim = self.spec.dim
        self.max_seq_len = self.spec.max_seq_len
        self.tokenizer = wordpiece_tokenizer(path, self.spec.tokenizer, max_length=self.max_seq_len)
        # Capped so that no bucket pads past the position table.
        self.length_buckets = tuple(sorted({min(b, self.max_seq_len) for b in settings.buckets}))
        self.max_tokens = self.length_buckets[-1]
        self.row_buckets = row_buckets(settings.max_batch_size)
        self._cls, self._sep, self._pad = (
            self.tokenizer.cls_id,
            self.tokenizer.sep_id,
            self.tokenizer.pad_id,
        )
        # Every (rows, length) a batch may be padded to: warmed at load, and the only shapes
        # packing may choose, so that no request waits for an XLA compilation.
        self.shapes = frozenset(
            (rows, width)
            for rows in self.row_buckets
            for width in self.length_buckets
            if reachable(rows, width, self.length_buckets, settings.max_batch_tokens)
        )
        self._embed: Any = None
        self._embed_packed: Any = None  # None: an export from before `embed_packed`
        self.texts_per_row = 1

    def load(self) -> None:
        from models.bert.encoder_reader import SavedModelBertEncoder

        model = SavedModelBertEncoder(self.path)
        self._embed = model.embed
        self._embed_packed = model.embed_packed
        self.texts_per_row = model.texts_per_row
        self._model = model  # keeps the variables alive

    def prepare(
        self, text: str, method: str | None, truncate: Truncation | None = None
    ) -> EncodedText:
        """`[CLS] text [SEP]` ids (request side, before queueing); refuses what cannot run.

        `truncate` cuts the WordPieces of an over-long text to fit, keeping its first ("right")
        or last ("left") ones; [CLS] and [SEP] stay, as in text-embeddings-inference.

        Raises:
            BadInput: a method other than "mean".
            PayloadTooLarge: more tokens than the largest length bucket, without `truncate`.
        """
        method = method or METHOD_MEAN
        if method not in METHODS:
            raise BadInput(
                f"method {method!r} does not apply to BERT encoders; use {METHOD_MEAN!r} or "
                "omit it",
                param="method",
            )
        pieces = self.tokenizer.piece_ids(text)
        length = len(pieces) + CLS_AND_SEP
        if length > self.max_tokens:
            if truncate is None:
                raise PayloadTooLarge(
                    f"text has {length} tokens with [CLS] and [SEP]; the most is "
                    f"{self.max_tokens} (the smaller of the largest of LENGTH_BUCKETS and the "
                    "model's max_seq_len); truncate: true embeds the first of them"
                )
            pieces = truncated(pieces, self.max_tokens - CLS_AND_SEP, truncate)
        ids = np.asarray([self._cls, *pieces, self._sep], dtype=np.int32)
        return EncodedText(ids=ids, method=method)

    def packing(self, lengths: Sequence[int]) -> PackedBatch | None:
        """The packed layout `run_batch` gives texts of these lengths, or None where it pads
        (an export without `embed_packed`, or no warmed shape holds them)."""
        if self._embed_packed is None:
            return None
        return pack_texts(lengths, self.shapes, self.row_buckets, self.texts_per_row, self.dim)

    def padded_shape(self, lengths: Sequence[int]) -> tuple[int, int]:
        """(rows, length) of `run_batch_padded` for texts of these lengths."""
        width = bucket_for(max(lengths), self.length_buckets)
        # The batcher never sends more than MAX_BATCH_SIZE; a direct caller's larger batch
        # runs at its own size.
        return max(len(lengths), bucket_for(len(lengths), self.row_buckets)), width

    def call_shape(self, lengths: Sequence[int]) -> tuple[int, int]:
        """(rows, length) of the model call `run_batch` makes for texts of these lengths."""
        packed = self.packing(lengths)
        return packed.shape if packed is not None else self.padded_shape(lengths)

    def run_batch(self, items: Sequence[EncodedText]) -> list[np.ndarray]:
        packed = self.packing([item.tokens for item in items])
        if packed is not None:
            return self._run_packed(items, packed)
        return self.run_batch_padded(items)

    def run_batch_padded(self, items: Sequence[EncodedText]) -> list[np.ndarray]:
        """One text a row, each padded to the batch's longest (exports without `embed_packed`,
        and a direct caller's batch larger than any warmed shape)."""
        rows, width = self.padded_shape([item.tokens for item in items])
        token_ids = np.full((rows, width), self._pad, dtype=np.int32)
        padding_mask = np.zeros((rows, width), dtype=np.int32)
        for row, item in enumerate(items):
            token_ids[row, : item.tokens] = item.ids
            padding_mask[row, : item.tokens] = 1
        # Filler rows see only padding: their outputs are thrown away, and attention never
        # mixes rows, so they cannot change the real rows' vectors.
        out = self._call(token_ids, padding_mask)
        return [out[row] for row in range(len(items))]

    def _run_packed(self, items: Sequence[EncodedText], packed: PackedBatch) -> list[np.ndarray]:
        rows, width = packed.shape
        token_ids = np.full((rows, width), self._pad, dtype=np.int32)
        position_ids = np.zeros((rows, width), dtype=np.int32)
        sequence_ids = np.zeros((rows, width), dtype=np.int32)  # 0: padding, and filler rows
        place: list[tuple[int, int]] = [(0, 0)] * len(items)
        for row, texts in enumerate(packed.rows):
            start = 0
            for slot, text in enumerate(texts):
                item = items[text]
                end = start + item.tokens
                token_ids[row, start:end] = item.ids
                position_ids[row, start:end] = np.arange(item.tokens)
                sequence_ids[row, start:end] = slot + 1
                place[text] = (row, slot)
                start = end
        out = self._call_packed(token_ids, position_ids, sequence_ids)
        return [out[row, slot] for row, slot in place]

    def warmup(self) -> None:
        for rows, width in sorted(self.shapes):
            token_ids = np.full((rows, width), self._cls, dtype=np.int32)
            if self._embed_packed is not None:
                positions = np.broadcast_to(np.arange(width, dtype=np.int32), (rows, width))
                self._call_packed(token_ids, positions, np.ones_like(token_ids))
            else:
                self._call(token_ids, np.ones_like(token_ids))

    def _call(self, token_ids: np.ndarray, padding_mask: np.ndarray) -> np.ndarray:
        out = self._embed(
            token_ids=token_ids,
            segment_ids=np.zeros_like(token_ids),
            padding_mask=padding_mask,
        )[EMBEDDING_KEY]
        return np.asarray(out)

    def _call_packed(
        self, token_ids: np.ndarray, position_ids: np.ndarray, sequence_ids: np.ndarray
    ) -> np.ndarray:
        out = self._embed_packed(
            token_ids=token_ids, position_ids=position_ids, sequence_ids=sequence_ids
        )[EMBEDDING_KEY]
        return np.asarray(out)
