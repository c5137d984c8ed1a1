"""Decoding many sampled texts at once, rows joining and leaving between steps.

A `DecodingBatch` holds the rows being decoded and their key/value cache. `admit` encodes new rows'
prefixes (`[CLS] prompt`) in one call and appends them to the cache; `advance` feeds every row's
last token in one `step` call and draws each row's next token with its own parameters and random
generator; `retire` drops the rows that are done (or whose caller has gone) from the cache. A
server calls the three in a loop, so a request that arrives while others decode joins at the next
step and a finished one frees its row at once (continuous batching, Yu et al., "Orca", OSDI 2022);
`generate` runs the same loop for a fixed list of rows (evaluation, tests, benchmarks).

A row stops at [SEP] (`finish_reason` "stop", the [SEP] not counted), after `max_new_tokens`
tokens, or when its cache is full ("length").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.bert.tokenizer import BertTokenizer, tokens_to_text
from models.generation.sampling import SamplingParams, choose_tokens

FINISH_STOP = "stop"
FINISH_LENGTH = "length"


class GenerationStepModel(Protocol):
    """What decoding needs of a model (`KerasGenerationStepModel`, the SavedModel's wrapper)."""

    cache_length: int

    def prefill(self, token_ids: Any, lengths: Any, condition: Any) -> tuple[np.ndarray, Any]: ...

    def step(
        self, token_ids: Any, positions: Any, cache: Any, condition: Any
    ) -> tuple[np.ndarray, Any]: ...

    def select_rows(self, cache: Any, rows: Any) -> Any: ...

    def concat_rows(self, first: Any, second: Any) -> Any: ...


@dataclass(eq=False)
class GenerationRow:
    """One text being written.

    Attributes:
        prefix_ids: `[CLS]` and the prompt's WordPiece ids.
        condition: [C] the condition vector.
        params: how tokens are drawn.
        max_new_tokens: most tokens to write (the closing [SEP] not counted).
        rng: the row's random generator (seeded per request and sample).
        new_ids: tokens written so far.
        finish_reason: None while decoding, then "stop" or "length".
        cancelled: set by the caller when nobody waits for the row any more.
    """

    prefix_ids: list[int]
    condition: np.ndarray
    params: SamplingParams
    max_new_tokens: int
    rng: np.random.Generator
    new_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.cancelled

    @property
    def last_position(self) -> int:
        """Position of the last written token (what the next `step` feeds)."""
        return len(self.prefix_ids) + len(self.new_ids) - 1


class DecodingBatch:
    """The rows being decoded together and their cache (see the module's docstring).

    Args:
        model: the step model.
        banned_ids: tokens never drawn ([PAD], [CLS], [MASK], [UNK]).
        sep_id: the token that ends a text.
    """

    def __init__(self, model: GenerationStepModel, banned_ids: Sequence[int], sep_id: int):
        self.model = model
        self.banned_ids = tuple(banned_ids)
        self.sep_id = sep_id
        self.rows: list[GenerationRow] = []
        self.cache: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def admit(self, rows: Sequence[GenerationRow]) -> None:
        """Encode the rows' prefixes, draw their first tokens, add them to the batch."""
        if not rows:
            return
        longest = max(len(r.prefix_ids) for r in rows)
        if longest >= self.model.cache_length:
            raise ValueError(f"a prefix of {longest} tokens leaves no room in the cache")
        token_ids = np.zeros((len(rows), longest), np.int32)
        for i, row in enumerate(rows):
            token_ids[i, : len(row.prefix_ids)] = row.prefix_ids
        lengths = np.array([len(r.prefix_ids) for r in rows], np.int32)
        conditions = np.stack([r.condition for r in rows]).astype(np.float32)
        log_probs, cache = self.model.prefill(token_ids, lengths, conditions)
        self.cache = cache if self.cache is None else self.model.concat_rows(self.cache, cache)
        self.rows.extend(rows)
        self._write(list(rows), log_probs)

    def advance(self) -> None:
        """One step for every row still writing (a row that is done just holds its place)."""
        if not any(not r.done for r in self.rows):
            return
        token_ids = np.array([r.new_ids[-1] if r.new_ids else 0 for r in self.rows], np.int32)
        positions = np.array([min(r.last_position, self.model.cache_length - 1)
                              for r in self.rows], np.int32)  # fmt: skip
        conditions = np.stack([r.condition for r in self.rows]).astype(np.float32)
        log_probs, self.cache = self.model.step(token_ids, positions, self.cache, conditions)
        writing = [i for i, r in enumerate(self.rows) if not r.done]
        self._write([self.rows[i] for i in writing], log_probs[writing])

    def retire(self) -> list[GenerationRow]:
        """Drop the rows that are done from the batch and its cache; returns them."""
        gone = [r for r in self.rows if r.done]
        if gone:
            keep = [i for i, r in enumerate(self.rows) if not r.done]
            self.rows = [self.rows[i] for i in keep]
            self.cache = (
                self.model.select_rows(self.cache, np.array(keep, np.int32)) if keep else None
            )
        return gone

    def _write(self, rows: list[GenerationRow], log_probs: np.ndarray) -> None:
        """Draw each row's next token (all rows at once) and append it, or end the row."""
        tokens = choose_tokens(
            log_probs, [r.params for r in rows], [r.rng for r in rows], self.banned_ids
        )
        for row, token in zip(rows, tokens.tolist(), strict=True):
            if token == self.sep_id:
                row.finish_reason = FINISH_STOP
                continue
            row.new_ids.append(token)
            # The next step feeds this token at last_position; the cache must have that slot.
            if (
                len(row.new_ids) >= row.max_new_tokens
                or row.last_position >= self.model.cache_length
            ):
                row.finish_reason = FINISH_LENGTH


def banned_ids(tokenizer: BertTokenizer) -> tuple[int, ...]:
    """Tokens a text never contains ([SEP] is not among them: it ends the text)."""
    return (tokenizer.pad_id, tokenizer.cls_id, tokenizer.mask_id, tokenizer.unk_id)


def generate(
    model: GenerationStepModel,
    tokenizer: BertTokenizer,
    rows: Sequence[GenerationRow],
    max_batch_rows: int = 64,
) -> list[GenerationRow]:
    """Decodes the rows to the end, at most `max_batch_rows` at a time; returns them, written.

    Rows join the batch as others leave, as on a server.
    """
    batch = DecodingBatch(model, banned_ids(tokenizer), tokenizer.sep_id)
    waiting = list(rows)
    while waiting or len(batch):
        room = max_batch_rows - len(batch)
        if room > 0 and waiting:
            batch.admit(waiting[:room])
            waiting = waiting[room:]
        batch.retire()
        batch.advance()
        batch.retire()
    return list(rows)


def row_text(tokenizer: BertTokenizer, row: GenerationRow) -> str:
    """The text a row wrote."""
    return tokens_to_text(tokenizer, row.new_ids)


def make_rows(
    tokenizer: BertTokenizer,
    condition: np.ndarray,
    num_samples: int,
    max_new_tokens: int,
    params: SamplingParams,
    seed: int | None = None,
    prompt: str = "",
) -> list[GenerationRow]:
    """The rows of one request: `num_samples` rows, sample i drawing from `default_rng([seed, i])`
    (from fresh entropy without a seed)."""
    prefix = [tokenizer.cls_id, *tokenizer.piece_ids(prompt)] if prompt else [tokenizer.cls_id]
    entropy = int(np.random.SeedSequence().entropy) if seed is None else seed  # type: ignore[arg-type]
    return [
        GenerationRow(
            prefix_ids=list(prefix),
            condition=np.asarray(condition, np.float32),
            params=params,
            max_new_tokens=max_new_tokens,
            rng=np.random.default_rng([entropy, i]),
        )
        for i in range(num_samples)
    ]
