"""Decoding many sampled texts at once, rows joining and leaving between steps.

A `DecodingBatch` holds the rows being decoded and their key/value cache. `admit` gives new rows a
place in the cache; `advance` feeds every row's last token (the last of its prefix `[CLS] prompt`
at first) in one `step` call and draws each row's next token with its own parameters and random
generator; `retire` frees the places of the rows that are done (or whose caller has gone). A
server calls the three in a loop, so a request that arrives while others decode joins at the next
step and a finished one frees its row at once (continuous batching, Yu et al., "Orca", OSDI 2022);
`generate` runs the same loop for a fixed list of rows (evaluation, tests, benchmarks).

Joining and leaving cost no model call and no copy of the cache in the common case. A row's first
token is drawn by the step that feeds the last token of its prefix, beside the other rows' tokens;
only a prompt's earlier tokens are encoded on admission (one `prefill` call for the rows admitted
together), so a row without a prompt needs nothing computed. Such a row takes the place of a row
that left as it is: its step at position 0 sees no cache slot, and each later step sees only the
slots it wrote itself (the cache is left-aligned, slot j holding position j). A freed place is
fed a dummy token until a new row takes it; the cache is compacted (one gather) when the free
places outnumber the rows, or before rows with a prompt are appended.

A row stops at [SEP] (`finish_reason` "stop", the [SEP] not counted), after `max_new_tokens`
tokens, or when its cache is full ("length"). A row whose log-probabilities are not finite numbers
(a condition vector far outside what the model was trained on overflows its float32 LayerNorms
into NaN) stops with `error` set and writes nothing more: its cache place holds NaN keys and
values, which a row taking the place would read even where attention masks them out (0 x NaN is
NaN), so such a place is dropped from the cache, never reused.

Condition guidance (classifier-free guidance, Ho & Salimans 2022, as Sanchez et al. 2023 apply it
to language models): a row with `guidance` is decoded twice in the same batch, under its condition
c and under a contrasting one n (the other labels' mean, say), both fed the row's tokens, and draws
from log p_c + s (log p_c - log p_n), renormalised. s = 0 is plain sampling; s > 0 pushes the text
towards what c makes likelier than n does, at the cost of a second cache row.
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
NOT_FINITE = (
    "the model's next-token log-probabilities are not finite numbers under this condition (its "
    "float32 arithmetic overflows): give a condition vector of the scale the model was trained on"
)


class GenerationStepModel(Protocol):
    """What decoding needs of a model (`KerasGenerationStepModel`, the SavedModel's wrapper)."""

    cache_length: int

    def prefill(self, token_ids: Any, lengths: Any, condition: Any) -> tuple[np.ndarray, Any]: ...

    def step(
        self, token_ids: Any, positions: Any, cache: Any, condition: Any
    ) -> tuple[np.ndarray, Any]: ...

    def select_rows(self, cache: Any, rows: Any) -> Any: ...

    def concat_rows(self, first: Any, second: Any) -> Any: ...

    def empty_rows(self, count: int) -> Any: ...


@dataclass(frozen=True)
class Guidance:
    """Sample from log p_c + scale (log p_c - log p_negative) (see the module's docstring).

    Attributes:
        negative: [C] the contrasting condition vector.
        scale: s >= 0.
    """

    negative: np.ndarray
    scale: float


def label_guidance(label_conditions: np.ndarray, label: int, scale: float) -> Guidance:
    """Guidance of label `label` away from the mean condition of the other labels.

    Args:
        label_conditions: [L, C] every label's condition vector (L >= 2).
        label: the requested label's index.
        scale: s >= 0.
    """
    others = np.delete(np.asarray(label_conditions, np.float32), label, axis=0)
    if len(others) == 0:
        raise ValueError("guidance needs a model with two labels or more")
    return Guidance(negative=others.mean(axis=0), scale=float(scale))


def guided_log_probs(conditioned: np.ndarray, negative: np.ndarray, scale: float) -> np.ndarray:
    """[..., V] log-softmax of log p_c + scale (log p_c - log p_n)."""
    logits = (1.0 + scale) * conditioned - scale * negative
    logits = logits - logits.max(axis=-1, keepdims=True)
    normaliser: np.ndarray = np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return logits - normaliser


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
        guidance: decode under a contrasting condition too (two cache rows), or None.
        error: why the row stopped unfinished (`NOT_FINITE`), or None.
    """

    prefix_ids: list[int]
    condition: np.ndarray
    params: SamplingParams
    max_new_tokens: int
    rng: np.random.Generator
    new_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False
    guidance: Guidance | None = None
    error: str | None = None

    @property
    def cache_rows(self) -> int:
        """Rows of the batch's cache it takes: 2 with guidance (its shadow under `negative`)."""
        return 1 if self.guidance is None else 2

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.cancelled or self.error is not None

    @property
    def last_position(self) -> int:
        """Position of the last written token (what the next `step` feeds)."""
        return len(self.prefix_ids) + len(self.new_ids) - 1


class DecodingBatch:
    """The rows being decoded together and their cache (see the module's docstring).

    The cache holds one row per `slot`: a row, or its shadow (decoded under the guidance's
    negative condition) when it has guidance, or None for a free place.

    Args:
        model: the step model.
        banned_ids: tokens never drawn ([PAD], [CLS], [MASK], [UNK]).
        sep_id: the token that ends a text.
    """

    def __init__(self, model: GenerationStepModel, banned_ids: Sequence[int], sep_id: int):
        self.model = model
        self.banned_ids = tuple(banned_ids)
        self.sep_id = sep_id
        self.slots: list[tuple[GenerationRow, bool] | None] = []  # (row, is its shadow)
        self.cache: Any = None
        self._conditions: np.ndarray | None = None  # [slots, C], made again when slots change

    @property
    def rows(self) -> list[GenerationRow]:
        return [slot[0] for slot in self.slots if slot is not None and not slot[1]]

    def __len__(self) -> int:
        """Rows of the cache in use (a guided row counts twice)."""
        return sum(slot is not None for slot in self.slots)

    def clear(self) -> None:
        self.slots, self.cache, self._conditions = [], None, None

    def admit(self, rows: Sequence[GenerationRow]) -> None:
        """Give the rows places in the batch; their first tokens come with the next `advance`."""
        if not rows:
            return
        longest = max(len(r.prefix_ids) for r in rows)
        if longest >= self.model.cache_length:
            raise ValueError(f"a prefix of {longest} tokens leaves no room in the cache")
        free = [i for i, slot in enumerate(self.slots) if slot is None]
        prompted, unprompted = [], []
        for slot in _slots_of(rows):
            if len(slot[0].prefix_ids) > 1:
                prompted.append(slot)
            elif free:
                self.slots[free.pop(0)] = slot
            else:
                unprompted.append(slot)
        if prompted and free:
            # Keep the batch at most as wide as its rows: close the gaps before growing it.
            self._compact()
        blocks = [self.cache] if self.cache is not None else []
        if prompted:
            blocks.append(self._prefill(prompted))
        if unprompted:
            blocks.append(self.model.empty_rows(len(unprompted)))
        self.cache = blocks[0]
        for block in blocks[1:]:
            self.cache = self.model.concat_rows(self.cache, block)
        self.slots.extend(prompted + unprompted)
        self._conditions = None

    def advance(self) -> None:
        """One step for every row still writing (a row that is done, or a free place, just holds
        its place)."""
        if not any(slot is not None and not slot[0].done for slot in self.slots):
            return
        last = self.model.cache_length - 1
        token_ids = np.zeros(len(self.slots), np.int32)
        positions = np.zeros(len(self.slots), np.int32)
        for i, slot in enumerate(self.slots):
            if slot is not None:
                row = slot[0]
                token_ids[i] = row.new_ids[-1] if row.new_ids else row.prefix_ids[-1]
                positions[i] = min(row.last_position, last)
        if self._conditions is None:
            self._conditions = _conditions(self.slots)
        log_probs, self.cache = self.model.step(token_ids, positions, self.cache, self._conditions)
        self._write(log_probs)

    def retire(self) -> list[GenerationRow]:
        """Free the places of the rows that are done (and of their shadows)."""
        gone = [slot[0] for slot in self.slots if slot is not None and not slot[1] and slot[0].done]
        if gone:
            self.slots = [None if slot is None or slot[0].done else slot for slot in self.slots]
            self._conditions = None
            in_use = len(self)
            if not in_use:
                self.clear()
            elif len(self.slots) - in_use > in_use or any(row.error for row in gone):
                self._compact()  # a failed row's place holds NaN: never reused
        return gone

    def _compact(self) -> None:
        """Drop the free places from the cache."""
        keep = [i for i, slot in enumerate(self.slots) if slot is not None]
        self.cache = self.model.select_rows(self.cache, np.array(keep, np.int32))
        self.slots = [self.slots[i] for i in keep]
        self._conditions = None

    def _prefill(self, slots: list[tuple[GenerationRow, bool]]) -> Any:
        """Cache rows holding the prefixes of `slots` but their last tokens (which `advance`
        feeds), encoded in one call."""
        longest = max(len(row.prefix_ids) for row, _ in slots) - 1
        token_ids = np.zeros((len(slots), longest), np.int32)
        for i, (row, _) in enumerate(slots):
            token_ids[i, : len(row.prefix_ids) - 1] = row.prefix_ids[:-1]
        lengths = np.array([len(row.prefix_ids) - 1 for row, _ in slots], np.int32)
        _, cache = self.model.prefill(token_ids, lengths, _conditions(slots))
        return cache

    def _write(self, log_probs: np.ndarray) -> None:
        """Draw the next token of each row still writing (all at once) and append it, or end
        the row; a guided row draws from its guided distribution."""
        where = {(id(slot[0]), slot[1]): i for i, slot in enumerate(self.slots) if slot is not None}
        rows = [slot[0] for slot in self.slots if slot is not None and not slot[1]]
        rows = [row for row in rows if not row.done]
        chosen = log_probs[[where[id(row), False] for row in rows]]
        for j, row in enumerate(rows):
            if row.guidance is not None:
                shadow = log_probs[where[id(row), True]]
                chosen[j] = guided_log_probs(chosen[j], shadow, row.guidance.scale)
        # The max is NaN if any entry is, +inf if one is, -inf if no token is possible.
        finite = np.isfinite(chosen.max(axis=1))
        if not finite.all():
            for j in np.flatnonzero(~finite).tolist():
                rows[j].error = NOT_FINITE
            rows = [row for j, row in enumerate(rows) if finite[j]]
            chosen = chosen[finite]
            if not rows:
                return
        tokens = choose_tokens(
            chosen, [r.params for r in rows], [r.rng for r in rows], self.banned_ids
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


def _slots_of(rows: Sequence[GenerationRow]) -> list[tuple[GenerationRow, bool]]:
    """Cache rows for `rows`: each row, and right after it its shadow when it has guidance."""
    slots: list[tuple[GenerationRow, bool]] = []
    for row in rows:
        slots.append((row, False))
        if row.guidance is not None:
            slots.append((row, True))
    return slots


def _conditions(slots: Sequence[tuple[GenerationRow, bool] | None]) -> np.ndarray:
    """[slots, C]: each row's condition, its guidance's negative one for a shadow, zeros for a
    free place."""
    size = next(slot[0].condition.shape for slot in slots if slot is not None)
    return np.stack(
        [
            np.zeros(size, np.float32)
            if slot is None
            else slot[0].guidance.negative
            if slot[1] and slot[0].guidance
            else slot[0].condition
            for slot in slots
        ]
    ).astype(np.float32)


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
        joining = []
        while waiting and waiting[0].cache_rows <= room:
            room -= waiting[0].cache_rows
            joining.append(waiting.pop(0))
        if waiting and not joining and not len(batch):
            raise ValueError(f"a row needs {waiting[0].cache_rows} rows; max_batch_rows is smaller")
        batch.admit(joining)
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
    guidance: Guidance | None = None,
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
            guidance=guidance,
        )
        for i in range(num_samples)
    ]
