"""Incremental decoding of a `BertLM` (QA's `UniLMSeq2Seq`, generation's `ConditionalLM`) with a
key/value cache.

Under both masks a written token sees what comes before it and itself, and nothing before it
depends on what comes after: under the causal mask trivially; under the UniLM mask because the
source is segment 0 and the answer tokens see the whole source and the answer so far. So a prefix
is encoded once (`prefill`), its keys and values are kept, and each new token then costs one
token's work (`step`): its query, key and value, appended to the cache, attention over the cache.
A condition (generation's) enters every step again, through the conditional LayerNorms. The
result equals rerunning the whole sequence (`full_logits`), which the tests check token for token.

The cache is one tensor, `[num_layers, 2, B, heads, T, head_size]` float32 (index 0 of the second
axis keys, 1 values; a model's output layer may keep more entries after the encoder's layers,
`BertLM.cache_layers`: QA's copy attention), left-aligned: slot j holds position j. `prefill` fills
slots [0, L) of a prefix padded to L and leaves T - L free slots (QA: T = L + max_answer_tokens;
generation: T fixed, the longest text). Row b's k-th new token sits at position `lengths[b] + k`,
is written to that slot (overwriting the row's padding, which no query ever sees), and attends over
slots <= its position. So rows whose prefixes differ in length, or which are at different steps,
share one batch; a step only needs `positions` (= the number of tokens row b's cache holds so far),
and a server can add, drop or reorder rows between steps (`select_rows`, `concat_rows`; beams).

One step protocol, for an in-memory model (`KerasLMStepModel`) and an exported one
(`models.bert.lm_reader.SavedModelLMStepModel`) alike: `prefill(token_ids, lengths,
condition=None)`, `step(token_ids, positions, cache, condition=None)`, `full_logits(token_ids,
padding_mask, condition=None, segment_ids=None)`, `select_rows`, `concat_rows`, `empty_rows`,
`label_condition`.

Example (greedy, one row):
    >>> step_model = KerasLMStepModel(model, free_slots=32)
    >>> log_probs, cache = step_model.prefill(ids, lengths)
    >>> token = log_probs.argmax(-1)                    # first new token
    >>> log_probs, cache = step_model.step(token, lengths, cache)

No Keras import here (the model is only called): the SavedModel reader shares the cache helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from models.bert.lm_signatures import CACHE_BATCH_AXIS, CACHE_SLOT_AXIS
from models.bert.masks import build_attention_mask
from models.bert.tensors import float32_tensor, int32_tensor

if TYPE_CHECKING:
    from models.bert.bert_lm import BertLM

__all__ = [
    "CACHE_BATCH_AXIS",
    "CACHE_SLOT_AXIS",
    "CacheRows",
    "KerasLMStepModel",
    "concat_rows",
    "empty_rows",
    "full_logits",
    "label_condition",
    "prefill",
    "select_rows",
    "step",
]


def label_condition(model: BertLM, label_ids: tf.Tensor) -> tf.Tensor:
    """[B] label ids -> [B, C] condition vectors (a labelled model's embedding rows)."""
    if model.label_embedding is None:
        raise ValueError("the model is conditioned on vectors, not labels")
    return model.label_embedding(tf.cast(label_ids, tf.int32))


def prefill(
    model: BertLM,
    token_ids: tf.Tensor,
    lengths: tf.Tensor,
    cache_length: int | tf.Tensor,
    condition: tf.Tensor | None = None,
    segment_ids: tf.Tensor | None = None,
    return_attention: bool = False,
) -> Any:
    """Encode the prefixes once; log-probabilities of the token after each and the cache.

    Args:
        model: the LM.
        token_ids: [B, L] int32 prefixes (QA: `[CLS] passage [SEP] question [SEP]`; generation:
            `[CLS] prompt`), padded after `lengths`.
        lengths: [B] int32 real tokens per row (>= 1).
        cache_length: T >= L, the cache's slots (the longest a row may grow).
        condition: [B, C] float32 condition vectors of a conditioned model.
        segment_ids: [B, L] int32; default 0 (a prefix is the source).
        return_attention: also return the attention of each row's last real token (the one
            that predicts the first new token) over the prefix, per layer, averaged over the
            heads: [num_layers, B, L] float32, as a third element.

    Returns:
        (log_probs [B, V] float32, cache [num_layers, 2, B, heads, T, head_size] float32).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    if condition is not None:
        condition = tf.cast(condition, tf.float32)
    segment_ids = (
        tf.zeros_like(token_ids) if segment_ids is None else tf.cast(segment_ids, tf.int32)
    )
    length = tf.shape(token_ids)[1]
    padding = tf.cast(tf.range(length)[tf.newaxis, :] < lengths[:, tf.newaxis], tf.int32)
    mask = build_attention_mask(padding, segment_ids, model.attention_mode)
    encoded = model.backbone.encode_with_cache(
        token_ids,
        segment_ids,
        mask,
        cache_length,
        training=False,
        condition=condition,
        return_attention=return_attention,
    )
    states, cache = encoded[0], encoded[1]
    log_probs, cache = model.prefill_log_probs(states, token_ids, lengths, cache, condition)
    if not return_attention:
        return log_probs, cache
    # [layers, B, L (query), L] -> the last real query of each row: [layers, B, L].
    attention = tf.transpose(encoded[2], [1, 0, 2, 3])
    attention = tf.gather(attention, lengths - 1, axis=2, batch_dims=1)
    return log_probs, cache, tf.transpose(attention, [1, 0, 2])


def step(
    model: BertLM,
    token_ids: tf.Tensor,
    positions: tf.Tensor,
    cache: tf.Tensor,
    condition: tf.Tensor | None = None,
    return_attention: bool = False,
) -> Any:
    """Feed one token per row; log-probabilities of the next one and the updated cache.

    Args:
        model: the LM.
        token_ids: [B] int32 the token each row chose last (segment `model.target_segment`).
        positions: [B] int32 its position: `lengths[b] + k` for row b's k-th new token, which is
            also the number of slots the row's cache holds before this call; < T and < the
            model's position table.
        cache: [num_layers, 2, B, heads, T, head_size] from `prefill` / `step` / `select_rows`.
        condition: [B, C] float32 of a conditioned model.
        return_attention: also return the new token's attention over the cache slots (as they
            were before this call: slots < `positions`), per layer, averaged over the heads:
            [num_layers, B, T] float32, as a third element.

    Returns:
        (log_probs [B, V] float32, the cache with each row's new key and value written).
    """
    token_ids = tf.cast(token_ids, tf.int32)[:, tf.newaxis]
    positions = tf.cast(positions, tf.int32)[:, tf.newaxis]
    if condition is not None:
        condition = tf.cast(condition, tf.float32)
    segment_ids = tf.fill(tf.shape(token_ids), model.target_segment)
    slots = tf.range(tf.shape(cache)[CACHE_SLOT_AXIS])
    # A written token sees every earlier slot of its row (and itself, which `decode_with_cache`
    # adds): the causal mask, and the UniLM mask's target rows (the whole source, the target
    # before it).
    mask = slots[tf.newaxis, tf.newaxis, :] < positions[:, :, tf.newaxis]
    decoded = model.backbone.decode_with_cache(
        token_ids,
        segment_ids,
        positions,
        cache,
        mask,
        training=False,
        condition=condition,
        return_attention=return_attention,
    )
    states, cache = decoded[0], decoded[1]
    log_probs = model.step_log_probs(states[:, 0, :], cache, condition)
    if not return_attention:
        return log_probs, cache
    return log_probs, cache, decoded[2][:, :, 0, :]


def full_logits(
    model: BertLM,
    token_ids: tf.Tensor,
    padding_mask: tf.Tensor,
    condition: tf.Tensor | None = None,
    segment_ids: tf.Tensor | None = None,
) -> tf.Tensor:
    """The no-cache reference: log-probabilities at every position of whole sequences.

    Args:
        model: the LM.
        token_ids, padding_mask: [B, L] int32.
        condition: [B, C] float32 of a conditioned model.
        segment_ids: [B, L] int32 of a model that reads them (QA: the answer in segment 1).

    Returns:
        [B, L, V] float32: row b, position t is the distribution of token t + 1.
    """
    inputs = {
        "token_ids": tf.cast(token_ids, tf.int32),
        "padding_mask": tf.cast(padding_mask, tf.int32),
    }
    if segment_ids is not None:
        inputs["segment_ids"] = tf.cast(segment_ids, tf.int32)
    if condition is not None:
        inputs["condition"] = tf.cast(condition, tf.float32)
    return tf.nn.log_softmax(model(inputs, training=False), axis=-1)


def select_rows(cache: Any, rows: Any) -> tf.Tensor:
    """The cache's rows `rows` ([B'] int), in that order (beams that survive, duplicated or
    dropped; rows that go on decoding)."""
    return tf.gather(cache, tf.cast(rows, tf.int32), axis=CACHE_BATCH_AXIS)


def concat_rows(first: Any, second: Any) -> tf.Tensor:
    """Rows of `second` after those of `first` (same T)."""
    return tf.concat([first, second], axis=CACHE_BATCH_AXIS)


def empty_rows(
    num_layers: int, num_heads: int, head_size: int, cache_length: int, count: int
) -> tf.Tensor:
    """`count` cache rows holding no token yet (zeros; a row's steps see only what they wrote)."""
    return tf.zeros([num_layers, 2, count, num_heads, cache_length, head_size], tf.float32)


def check_condition(conditioned: bool, condition: Any) -> None:
    """A conditioned model needs a condition on every call; a model without one takes none."""
    if conditioned and condition is None:
        raise ValueError("the model is conditioned: give a condition [B, C]")
    if not conditioned and condition is not None:
        raise ValueError("the model takes no condition")


class CacheRows:
    """The row operations of a step model's cache (`select_rows`, `concat_rows`, `empty_rows`),
    shared by the in-memory and the SavedModel step models: plain tensor ops, no model call.

    Attributes:
        cache_length: T of a cache fixed in length (generation's); None when T follows the
            prefix (QA's), which then has no empty rows.
    """

    cache_length: int | None
    # (num_layers, heads, head_size) of the cache [num_layers, 2, B, heads, T, head_size].
    _cache_shape: tuple[int, int, int]

    def select_rows(self, cache: Any, rows: Any) -> Any:
        return select_rows(cache, rows)

    def concat_rows(self, first: Any, second: Any) -> Any:
        return concat_rows(first, second)

    def empty_rows(self, count: int) -> Any:
        if self.cache_length is None:
            raise ValueError("this cache grows with its prefix: it has no empty rows")
        layers, heads, head_size = self._cache_shape
        return empty_rows(layers, heads, head_size, self.cache_length, count)


class KerasLMStepModel(CacheRows):
    """The step protocol on an in-memory model (training's evaluation, tests, benchmarks).

    Log-probabilities come back as numpy arrays; the cache is an opaque tensor, only ever passed
    back in.

    Args:
        model: the LM.
        cache_length: T, the cache slots `prefill` allocates (at most the position table;
            default the position table). Generation's fixed cache.
        free_slots: instead of a fixed T, the slots `prefill` adds after each prefix
            (T = L + free_slots): QA's `max_answer_tokens`.
        jit_compile: XLA-compile prefill, step and full_logits (compiles once per input shape).
    """

    def __init__(
        self,
        model: BertLM,
        cache_length: int | None = None,
        *,
        free_slots: int | None = None,
        jit_compile: bool = False,
    ) -> None:
        if cache_length is not None and free_slots is not None:
            raise ValueError("give cache_length or free_slots, not both")
        self.model = model
        config = model.config
        self.free_slots = free_slots
        self.cache_length: int | None = (
            None if free_slots is not None else int(cache_length or config.max_position)
        )
        self.condition_size = model.condition_size
        head_size = config.hidden_size // config.num_heads
        self._cache_shape = (model.cache_layers, config.num_heads, head_size)
        ids2 = tf.TensorSpec([None, None], tf.int32)
        ids1 = tf.TensorSpec([None], tf.int32)
        cache = tf.TensorSpec(
            [model.cache_layers, 2, None, config.num_heads, None, head_size], tf.float32
        )

        def slots(token_ids: tf.Tensor) -> int | tf.Tensor:
            if free_slots is not None:
                return tf.shape(token_ids)[1] + free_slots
            return self.cache_length

        if model.condition_size is None:
            self._prefill = tf.function(
                lambda t, n: prefill(model, t, n, slots(t)),
                input_signature=[ids2, ids1],
                jit_compile=jit_compile,
            )
            self._step = tf.function(
                lambda t, p, k: step(model, t, p, k),
                input_signature=[ids1, ids1, cache],
                jit_compile=jit_compile,
            )
        else:
            vectors = tf.TensorSpec([None, model.condition_size], tf.float32)
            self._prefill = tf.function(
                lambda t, n, c: prefill(model, t, n, slots(t), c),
                input_signature=[ids2, ids1, vectors],
                jit_compile=jit_compile,
            )
            self._step = tf.function(
                lambda t, p, k, c: step(model, t, p, k, c),
                input_signature=[ids1, ids1, cache, vectors],
                jit_compile=jit_compile,
            )
        self._full_logits: dict[tuple[bool, bool], Any] = {}
        self._jit_compile = jit_compile

    def _conditioned(self, condition: Any) -> tuple[Any, ...]:
        check_condition(self.condition_size is not None, condition)
        return () if condition is None else (float32_tensor(condition),)

    def label_condition(self, label_ids: Any) -> np.ndarray:
        return np.asarray(label_condition(self.model, int32_tensor(label_ids)))

    def prefill(
        self, token_ids: Any, lengths: Any, condition: Any = None
    ) -> tuple[np.ndarray, Any]:
        log_probs, cache = self._prefill(
            int32_tensor(token_ids), int32_tensor(lengths), *self._conditioned(condition)
        )
        return log_probs.numpy(), cache

    def step(
        self, token_ids: Any, positions: Any, cache: Any, condition: Any = None
    ) -> tuple[np.ndarray, Any]:
        log_probs, cache = self._step(
            int32_tensor(token_ids), int32_tensor(positions), cache, *self._conditioned(condition)
        )
        return log_probs.numpy(), cache

    def full_logits(
        self, token_ids: Any, padding_mask: Any, condition: Any = None, segment_ids: Any = None
    ) -> np.ndarray:
        conditioned = self._conditioned(condition)
        key = (bool(conditioned), segment_ids is not None)
        if key not in self._full_logits:
            self._full_logits[key] = self._full_logits_function(*key)
        arguments = [int32_tensor(token_ids), int32_tensor(padding_mask), *conditioned]
        if segment_ids is not None:
            arguments.append(int32_tensor(segment_ids))
        return np.asarray(self._full_logits[key](*arguments))

    def _full_logits_function(self, conditioned: bool, with_segments: bool) -> Any:
        model = self.model
        ids2 = tf.TensorSpec([None, None], tf.int32)
        signature = [ids2, ids2]
        if conditioned:
            signature.append(tf.TensorSpec([None, model.condition_size], tf.float32))
        if with_segments:
            signature.append(ids2)

        def function(token_ids: tf.Tensor, padding: tf.Tensor, *rest: tf.Tensor) -> tf.Tensor:
            condition = rest[0] if conditioned else None
            segments = rest[-1] if with_segments else None
            return full_logits(model, token_ids, padding, condition, segments)

        return tf.function(function, input_signature=signature, jit_compile=self._jit_compile)
