"""Incremental decoding of a `UniLMSeq2Seq`: the shared cached LM task (`models.bert.kv_cache`)
with QA's cache, which grows with the prefix: `prefill` of `[CLS] passage [SEP] question [SEP]`
rows padded to L leaves `max_answer_tokens` free slots (T = L + max_answer_tokens), and each
answer token (segment 1) then costs one step. Beams reorder the cache with `select_rows`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from models.bert import kv_cache
from models.bert.kv_cache import KerasLMStepModel
from models.bert.tensors import int32_tensor
from models.qa.seq2seq import UniLMSeq2Seq


class KerasStepModel(KerasLMStepModel):
    """The step protocol on an in-memory QA model (training's evaluation, tests, benchmarks),
    with the attention that answers' evidence is made of (`prefill_with_attention`,
    `step_with_attention`, as the exported `prefill` and `step` return it).

    Args:
        model: the seq2seq model.
        max_answer_tokens: answer slots `prefill` preallocates after each prefix.
        jit_compile: XLA-compile the functions (compiles once per input shape).
    """

    has_attention = True

    def __init__(self, model: UniLMSeq2Seq, max_answer_tokens: int, jit_compile: bool = False):
        super().__init__(model, free_slots=max_answer_tokens, jit_compile=jit_compile)
        self.max_answer_tokens = max_answer_tokens
        ids2 = tf.TensorSpec([None, None], tf.int32)
        ids1 = tf.TensorSpec([None], tf.int32)
        config = model.config
        cache = tf.TensorSpec(
            [model.cache_layers, 2, None, config.num_heads, None, self._cache_shape[2]],
            tf.float32,
        )
        self._prefill_attention = tf.function(
            lambda t, n: kv_cache.prefill(
                model, t, n, tf.shape(t)[1] + max_answer_tokens, return_attention=True
            ),
            input_signature=[ids2, ids1],
            jit_compile=jit_compile,
        )
        self._step_attention = tf.function(
            lambda t, p, k: kv_cache.step(model, t, p, k, return_attention=True),
            input_signature=[ids1, ids1, cache],
            jit_compile=jit_compile,
        )

    def prefill_with_attention(
        self, token_ids: Any, lengths: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """`prefill` and the attention of each row's last real token over the prefix,
        [num_layers, B, L], averaged over the heads."""
        log_probs, cache, attention = self._prefill_attention(
            int32_tensor(token_ids), int32_tensor(lengths)
        )
        return log_probs.numpy(), attention.numpy(), cache

    def step_with_attention(
        self, token_ids: Any, positions: Any, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """`step` and the new token's attention over the cache slots, [num_layers, B, T],
        averaged over the heads."""
        log_probs, cache, attention = self._step_attention(
            int32_tensor(token_ids), int32_tensor(positions), cache
        )
        return log_probs.numpy(), attention.numpy(), cache
