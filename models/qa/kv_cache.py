"""Incremental decoding of a `UniLMSeq2Seq` with a key/value cache.

Under the UniLM mask an answer token sees the whole source and the answer tokens before it and
itself: attention within the answer is exactly causal, and nothing the source computes depends on
the answer. So the prefix `[CLS] passage [SEP] question [SEP]` is encoded once (`prefill`), its
keys and values are kept, and each answer token then costs one token's work (`step`): project its
query, key and value, append the key and value to the cache, attend over the cache. The result
equals running the whole sequence again (`full_logits`), which the tests check token for token.

The cache is one tensor, `[num_layers, 2, B, heads, T, head_size]` float32 (index 0 of the second
axis keys, 1 values), left-aligned: slot j holds position j. `prefill` fills slots [0, L) of a
prefix padded to L and leaves `max_answer_tokens` free slots, T = L + max_answer_tokens. Row b's
k-th answer token (k = 0, 1, ...) sits at position `lengths[b] + k`, is written to that slot
(overwriting the row's padding, which no query ever sees), and attends over slots <= its position.
So rows whose prefixes differ in length, or which are at different steps, share one batch; a step
only needs `positions` (= the number of tokens row b's cache holds so far).

Beams reorder the cache along its batch axis (`reorder`).

Example (greedy, one row):
    >>> log_probs, cache = prefill(model, ids, segments, lengths, max_answer_tokens=32)
    >>> token = log_probs.numpy().argmax(-1)            # first answer token
    >>> positions = lengths                             # where that token goes
    >>> log_probs, cache = step(model, token, cache, positions)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.bert_backbone import build_attention_mask
from models.bert.tensors import int32_tensor
from models.qa.samples import TARGET_SEGMENT
from models.qa.seq2seq import UniLMSeq2Seq

# Axis of the stacked cache that indexes rows (beams, passages): [layers, 2, B, heads, T, Dh].
CACHE_BATCH_AXIS = 2
CACHE_SLOT_AXIS = 4


def prefill(
    model: UniLMSeq2Seq,
    token_ids: tf.Tensor,
    segment_ids: tf.Tensor,
    lengths: tf.Tensor,
    max_answer_tokens: int | tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Encode the prefixes once; log-probabilities of the first answer token and the cache.

    Args:
        model: the seq2seq model.
        token_ids: [B, L] int32 `[CLS] passage [SEP] question [SEP]` rows, padded after `lengths`.
        segment_ids: [B, L] int32 (0 on the prefix).
        lengths: [B] int32 real tokens per row (>= 1).
        max_answer_tokens: free slots to preallocate for answer tokens fed back by `step`.

    Returns:
        (log_probs [B, V] float32 of the token after each prefix,
         cache [num_layers, 2, B, heads, L + max_answer_tokens, head_size] float32).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    segment_ids = tf.cast(segment_ids, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    length = tf.shape(token_ids)[1]
    padding = tf.cast(tf.range(length)[tf.newaxis, :] < lengths[:, tf.newaxis], tf.int32)
    mask = build_attention_mask(padding, segment_ids, "unilm")
    states, cache = model.backbone.encode_with_cache(
        token_ids, segment_ids, mask, length + max_answer_tokens, training=False
    )
    # The last real token of each row (the question's [SEP]) predicts the first answer token.
    last = tf.gather(states, lengths - 1, batch_dims=1)[:, tf.newaxis, :]
    return tf.nn.log_softmax(model.mlm_head(last)[:, 0, :], axis=-1), cache


def step(
    model: UniLMSeq2Seq, token_ids: tf.Tensor, cache: tf.Tensor, positions: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Feed one answer token per row; log-probabilities of the next one and the updated cache.

    Args:
        model: the seq2seq model.
        token_ids: [B] int32 the token each row chose last.
        cache: [num_layers, 2, B, heads, T, head_size] from `prefill` / `step` / `reorder`.
        positions: [B] int32 each token's position: `lengths[b] + k` for row b's k-th answer
            token, which is also the number of slots the row's cache holds before this call;
            must be < T and < the model's position table.

    Returns:
        (log_probs [B, V] float32, the cache with each row's new key and value written).
    """
    token_ids = tf.cast(token_ids, tf.int32)[:, tf.newaxis]
    positions = tf.cast(positions, tf.int32)[:, tf.newaxis]
    segment_ids = tf.fill(tf.shape(token_ids), TARGET_SEGMENT)
    slots = tf.range(tf.shape(cache)[CACHE_SLOT_AXIS])
    # UniLM mask for a target token: the whole source and the target before it (and itself,
    # which `decode_with_cache` adds).
    mask = slots[tf.newaxis, tf.newaxis, :] < positions[:, :, tf.newaxis]
    states, cache = model.backbone.decode_with_cache(
        token_ids, segment_ids, positions, cache, mask, training=False
    )
    return tf.nn.log_softmax(model.mlm_head(states)[:, 0, :], axis=-1), cache


def reorder(cache: Any, beam_indices: Any) -> tf.Tensor:
    """Rows of the cache in a new order (beams that survive, duplicated or dropped).

    Args:
        cache: [num_layers, 2, B, heads, T, head_size].
        beam_indices: [B'] int row of the old cache that each new row continues.

    Returns:
        [num_layers, 2, B', heads, T, head_size].
    """
    return tf.gather(cache, tf.cast(beam_indices, tf.int32), axis=CACHE_BATCH_AXIS)


def full_logits(
    model: UniLMSeq2Seq, token_ids: tf.Tensor, segment_ids: tf.Tensor, padding_mask: tf.Tensor
) -> tf.Tensor:
    """The no-cache reference: log-probabilities at every position of whole sequences.

    Args:
        model: the seq2seq model.
        token_ids, segment_ids, padding_mask: [B, L] int32 (answer tokens in segment 1).

    Returns:
        [B, L, V] float32: row b, position t is the distribution of token t + 1.
    """
    inputs = {
        "token_ids": tf.cast(token_ids, tf.int32),
        "segment_ids": tf.cast(segment_ids, tf.int32),
        "padding_mask": tf.cast(padding_mask, tf.int32),
    }
    return tf.nn.log_softmax(model(inputs, training=False), axis=-1)


class KerasStepModel:
    """The decoder's step interface on an in-memory model (training's evaluation, tests).

    The same methods as `models.qa.export.SavedModelStepModel`, so a decoder drives either:
    `prefill(token_ids, segment_ids, lengths) -> (log_probs, cache)`,
    `step(token_ids, cache, positions) -> (log_probs, cache)`, `reorder(cache, beam_indices)`,
    `full_logits(token_ids, segment_ids, padding_mask) -> log_probs`. Log-probabilities come
    back as numpy arrays; the cache is an opaque tensor, only ever passed back in.

    Args:
        model: the seq2seq model.
        max_answer_tokens: answer slots `prefill` preallocates.
        jit_compile: XLA-compile the functions (compiles once per input shape).
    """

    def __init__(self, model: UniLMSeq2Seq, max_answer_tokens: int, jit_compile: bool = False):
        self.model = model
        self.max_answer_tokens = max_answer_tokens
        config = model.config
        head_size = config.hidden_size // config.num_heads
        ids2 = tf.TensorSpec([None, None], tf.int32)
        ids1 = tf.TensorSpec([None], tf.int32)
        cache = tf.TensorSpec(
            [config.num_layers, 2, None, config.num_heads, None, head_size], tf.float32
        )
        self._prefill = tf.function(
            lambda t, s, n: prefill(model, t, s, n, max_answer_tokens),
            input_signature=[ids2, ids2, ids1],
            jit_compile=jit_compile,
        )
        self._step = tf.function(
            lambda t, c, p: step(model, t, c, p),
            input_signature=[ids1, cache, ids1],
            jit_compile=jit_compile,
        )
        self._reorder = tf.function(reorder, input_signature=[cache, ids1])
        self._full_logits = tf.function(
            lambda t, s, p: full_logits(model, t, s, p),
            input_signature=[ids2, ids2, ids2],
            jit_compile=jit_compile,
        )

    def prefill(self, token_ids: Any, segment_ids: Any, lengths: Any) -> tuple[np.ndarray, Any]:
        log_probs, cache = self._prefill(
            int32_tensor(token_ids), int32_tensor(segment_ids), int32_tensor(lengths)
        )
        return log_probs.numpy(), cache

    def step(self, token_ids: Any, cache: Any, positions: Any) -> tuple[np.ndarray, Any]:
        log_probs, cache = self._step(int32_tensor(token_ids), cache, int32_tensor(positions))
        return log_probs.numpy(), cache

    def reorder(self, cache: Any, beam_indices: Any) -> Any:
        return self._reorder(cache, int32_tensor(beam_indices))

    def full_logits(self, token_ids: Any, segment_ids: Any, padding_mask: Any) -> np.ndarray:
        return np.asarray(
            self._full_logits(
                int32_tensor(token_ids), int32_tensor(segment_ids), int32_tensor(padding_mask)
            )
        )
