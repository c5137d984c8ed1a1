"""Incremental decoding of a `ConditionalLM` with a key/value cache.

Under the causal mask nothing a token computes depends on the tokens after it, so a prefix
(`[CLS]` and the prompt) is encoded once (`prefill`) and each new token then costs one token's
work (`step`): its query, key and value, appended to the cache, attention over the cache. The
condition enters every step again, through the conditional LayerNorms. The result equals
rerunning the whole sequence (`full_logits`), which the tests check token for token.

The cache is the QA decoder's layout (`models.qa.kv_cache`): one float32 tensor
`[num_layers, 2, B, heads, T, head_size]`, left-aligned (slot j holds position j), T fixed by the
caller (`cache_length`), so that rows which started at different times, with prompts of different
lengths, share one batch and a server can add and remove rows between steps (`tf.concat` /
`tf.gather` along `CACHE_BATCH_AXIS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.bert_backbone import build_attention_mask
from models.bert.tensors import float32_tensor, int32_tensor
from models.generation.lm import ConditionalLM

CACHE_BATCH_AXIS = 2
CACHE_SLOT_AXIS = 4


def label_condition(model: ConditionalLM, label_ids: tf.Tensor) -> tf.Tensor:
    """[B] label ids -> [B, C] condition vectors (a labelled model's embedding rows)."""
    if model.label_embedding is None:
        raise ValueError("the model is conditioned on vectors, not labels")
    return model.label_embedding(tf.cast(label_ids, tf.int32))


def prefill(
    model: ConditionalLM,
    token_ids: tf.Tensor,
    lengths: tf.Tensor,
    condition: tf.Tensor,
    cache_length: int | tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Encode the prefixes once; log-probabilities of the token after each and the cache.

    Args:
        model: the conditional LM.
        token_ids: [B, L] int32 `[CLS] prompt` rows, padded after `lengths`.
        lengths: [B] int32 real tokens per row (>= 1).
        condition: [B, C] float32 condition vectors.
        cache_length: T >= L, the cache's slots (the longest a row may grow).

    Returns:
        (log_probs [B, V] float32, cache [num_layers, 2, B, heads, T, head_size] float32).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    condition = tf.cast(condition, tf.float32)
    segment_ids = tf.zeros_like(token_ids)
    length = tf.shape(token_ids)[1]
    padding = tf.cast(tf.range(length)[tf.newaxis, :] < lengths[:, tf.newaxis], tf.int32)
    mask = build_attention_mask(padding, segment_ids, "causal")
    states, cache = model.backbone.encode_with_cache(
        token_ids, segment_ids, mask, cache_length, training=False, condition=condition
    )
    last = tf.gather(states, lengths - 1, batch_dims=1)[:, tf.newaxis, :]
    logits = model.mlm_head(last, condition=condition)[:, 0, :]
    return tf.nn.log_softmax(logits, axis=-1), cache


def step(
    model: ConditionalLM,
    token_ids: tf.Tensor,
    positions: tf.Tensor,
    cache: tf.Tensor,
    condition: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Feed one token per row; log-probabilities of the next one and the updated cache.

    Args:
        model: the conditional LM.
        token_ids: [B] int32 the token each row chose last.
        positions: [B] int32 its position (= the tokens the row's cache holds), < T.
        cache: [num_layers, 2, B, heads, T, head_size].
        condition: [B, C] float32.

    Returns:
        (log_probs [B, V] float32, the cache with each row's new key and value written).
    """
    token_ids = tf.cast(token_ids, tf.int32)[:, tf.newaxis]
    positions = tf.cast(positions, tf.int32)[:, tf.newaxis]
    condition = tf.cast(condition, tf.float32)
    slots = tf.range(tf.shape(cache)[CACHE_SLOT_AXIS])
    # Causal: every earlier slot of the row (and itself, which decode_with_cache adds).
    mask = slots[tf.newaxis, tf.newaxis, :] < positions[:, :, tf.newaxis]
    states, cache = model.backbone.decode_with_cache(
        token_ids, tf.zeros_like(token_ids), positions, cache, mask, False, condition
    )
    logits = model.mlm_head(states, condition=condition)[:, 0, :]
    return tf.nn.log_softmax(logits, axis=-1), cache


def full_logits(
    model: ConditionalLM, token_ids: tf.Tensor, padding_mask: tf.Tensor, condition: tf.Tensor
) -> tf.Tensor:
    """The no-cache reference: [B, L, V] log-probabilities at every position."""
    inputs = {
        "token_ids": tf.cast(token_ids, tf.int32),
        "padding_mask": tf.cast(padding_mask, tf.int32),
        "condition": tf.cast(condition, tf.float32),
    }
    return tf.nn.log_softmax(model(inputs, training=False), axis=-1)


def select_rows(cache: Any, rows: Any) -> tf.Tensor:
    """The cache's rows `rows` ([B'] int), in that order."""
    return tf.gather(cache, tf.cast(rows, tf.int32), axis=CACHE_BATCH_AXIS)


def concat_rows(first: Any, second: Any) -> tf.Tensor:
    """Rows of `second` after those of `first` (same T)."""
    return tf.concat([first, second], axis=CACHE_BATCH_AXIS)


def empty_rows(
    num_layers: int, num_heads: int, head_size: int, cache_length: int, count: int
) -> tf.Tensor:
    """`count` cache rows holding no token yet (zeros; a row's steps see only what they wrote)."""
    return tf.zeros([num_layers, 2, count, num_heads, cache_length, head_size], tf.float32)


class KerasGenerationStepModel:
    """The generation step interface on an in-memory model (training's evaluation, tests); the
    same methods as `models.generation.export.SavedModelGenerationStepModel`.

    `label_condition(label_ids) -> [B, C]`, `prefill(token_ids, lengths, condition) ->
    (log_probs, cache)`, `step(token_ids, positions, cache, condition) -> (log_probs, cache)`,
    `full_logits(token_ids, padding_mask, condition) -> log_probs`, `select_rows(cache, rows)`,
    `concat_rows(first, second)`, `empty_rows(count)`; log-probabilities come back as numpy
    arrays, the cache stays an opaque tensor.

    Args:
        model: the conditional LM.
        cache_length: T, the cache slots `prefill` allocates (at most the position table).
    """

    def __init__(self, model: ConditionalLM, cache_length: int | None = None) -> None:
        self.model = model
        config = model.config
        self.cache_length = int(cache_length or config.max_position)
        self.condition_size = model.condition_size
        head_size = config.hidden_size // config.num_heads
        ids2 = tf.TensorSpec([None, None], tf.int32)
        ids1 = tf.TensorSpec([None], tf.int32)
        vectors = tf.TensorSpec([None, model.condition_size], tf.float32)
        cache = tf.TensorSpec(
            [config.num_layers, 2, None, config.num_heads, None, head_size], tf.float32
        )
        self._prefill = tf.function(
            lambda t, n, c: prefill(model, t, n, c, self.cache_length),
            input_signature=[ids2, ids1, vectors],
        )
        self._step = tf.function(
            lambda t, p, k, c: step(model, t, p, k, c),
            input_signature=[ids1, ids1, cache, vectors],
        )
        self._full_logits = tf.function(
            lambda t, p, c: full_logits(model, t, p, c), input_signature=[ids2, ids2, vectors]
        )

    def label_condition(self, label_ids: Any) -> np.ndarray:
        return np.asarray(label_condition(self.model, int32_tensor(label_ids)))

    def prefill(self, token_ids: Any, lengths: Any, condition: Any) -> tuple[np.ndarray, Any]:
        log_probs, cache = self._prefill(
            int32_tensor(token_ids), int32_tensor(lengths), float32_tensor(condition)
        )
        return log_probs.numpy(), cache

    def step(
        self, token_ids: Any, positions: Any, cache: Any, condition: Any
    ) -> tuple[np.ndarray, Any]:
        log_probs, cache = self._step(
            int32_tensor(token_ids), int32_tensor(positions), cache, float32_tensor(condition)
        )
        return log_probs.numpy(), cache

    def full_logits(self, token_ids: Any, padding_mask: Any, condition: Any) -> np.ndarray:
        return np.asarray(
            self._full_logits(
                int32_tensor(token_ids), int32_tensor(padding_mask), float32_tensor(condition)
            )
        )

    def select_rows(self, cache: Any, rows: Any) -> Any:
        return select_rows(cache, rows)

    def concat_rows(self, first: Any, second: Any) -> Any:
        return concat_rows(first, second)

    def empty_rows(self, count: int) -> Any:
        config = self.model.config
        return empty_rows(
            config.num_layers,
            config.num_heads,
            config.hidden_size // config.num_heads,
            self.cache_length,
            count,
        )
