"""The step protocol of `models.bert.kv_cache` on an exported QA or generation SavedModel: what the
service decodes with.

Both families export `prefill`, `step` and `full_logits` with the same outputs; their inputs
differ only in what one of them has (`segment_ids` for QA, `condition` for generation), so one
reader drives both, by input name. No Keras model code is imported here (a test checks): the
SavedModel stands alone.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.kv_cache import CacheRows, check_condition
from models.bert.lm_signatures import (
    ATTENTION_KEY,
    CACHE_KEY,
    CACHE_LENGTH_VARIABLE,
    CONDITION_KEY,
    LABEL_IDS,
    LENGTHS,
    LOG_PROBS_KEY,
    PADDING_MASK,
    POSITIONS,
    SEGMENT_IDS,
    SIGNATURE_FULL_LOGITS,
    SIGNATURE_LABEL_CONDITION,
    SIGNATURE_PREFILL,
    SIGNATURE_STEP,
    TOKEN_IDS,
)
from models.bert.tensors import float32_tensor, int32_tensor


class SavedModelLMStepModel(CacheRows):
    """The step protocol (`prefill`, `step`, `full_logits`, `select_rows`, `concat_rows`,
    `empty_rows`, `label_condition`) on a QA or generation SavedModel; log-probabilities come
    back as numpy arrays, the cache as an opaque tensor.

    Attributes:
        condition_size: C of a conditioned model, None for one without a condition (QA).
        cache_length: T of a model whose cache is fixed at export (generation); None when T
            follows the prefix (QA: L + max_answer_tokens).

    Args:
        saved_model: the SavedModel folder, or an already loaded SavedModel object.
    """

    def __init__(self, saved_model: str | os.PathLike[str] | Any) -> None:
        if isinstance(saved_model, (str, os.PathLike)):
            saved_model = tf.saved_model.load(os.fspath(saved_model))
        self.saved_model = saved_model
        signatures = saved_model.signatures
        self._prefill = signatures[SIGNATURE_PREFILL]
        self._step = signatures[SIGNATURE_STEP]
        self._full_logits = signatures[SIGNATURE_FULL_LOGITS]
        self._label_condition = signatures.get(SIGNATURE_LABEL_CONDITION)
        prefill_inputs = self._prefill.structured_input_signature[1]
        condition = prefill_inputs.get(CONDITION_KEY)
        self.condition_size = None if condition is None else int(condition.shape[-1])
        # A prefix is segment 0 (the source); the input exists only where the model reads it.
        self._prefill_segments = SEGMENT_IDS in prefill_inputs
        variable = getattr(saved_model, CACHE_LENGTH_VARIABLE, None)
        self.cache_length = None if variable is None else int(variable.numpy())
        # [num_layers, 2, B, heads, T, head_size], B and T left open in the signature.
        cache = self._step.structured_input_signature[1][CACHE_KEY].shape
        self._cache_shape = (int(cache[0]), int(cache[3]), int(cache[5]))
        # QA versions exported since answers carry evidence return the attention too.
        self.has_attention = ATTENTION_KEY in self._step.structured_outputs and (
            ATTENTION_KEY in self._prefill.structured_outputs
        )

    def _condition(self, condition: Any) -> dict[str, tf.Tensor]:
        check_condition(self.condition_size is not None, condition)
        return {} if condition is None else {CONDITION_KEY: float32_tensor(condition)}

    def label_condition(self, label_ids: Any) -> np.ndarray:
        if self._label_condition is None:
            raise ValueError("the model is conditioned on vectors, not labels")
        out = self._label_condition(**{LABEL_IDS: int32_tensor(label_ids)})
        return out[CONDITION_KEY].numpy()

    def prefill(
        self, token_ids: Any, lengths: Any, condition: Any = None
    ) -> tuple[np.ndarray, Any]:
        out = self._call_prefill(token_ids, lengths, condition)
        return out[LOG_PROBS_KEY].numpy(), out[CACHE_KEY]

    def _call_prefill(self, token_ids: Any, lengths: Any, condition: Any) -> dict[str, Any]:
        token_ids = int32_tensor(token_ids)
        inputs = {TOKEN_IDS: token_ids, LENGTHS: int32_tensor(lengths)}
        if self._prefill_segments:
            inputs[SEGMENT_IDS] = tf.zeros_like(token_ids)
        return dict(self._prefill(**inputs, **self._condition(condition)))

    def step(
        self, token_ids: Any, positions: Any, cache: Any, condition: Any = None
    ) -> tuple[np.ndarray, Any]:
        out = self._call_step(token_ids, positions, cache, condition)
        return out[LOG_PROBS_KEY].numpy(), out[CACHE_KEY]

    def _call_step(
        self, token_ids: Any, positions: Any, cache: Any, condition: Any
    ) -> dict[str, Any]:
        return dict(
            self._step(
                **{
                    TOKEN_IDS: int32_tensor(token_ids),
                    POSITIONS: int32_tensor(positions),
                    CACHE_KEY: tf.convert_to_tensor(cache, tf.float32),
                },
                **self._condition(condition),
            )
        )

    def _check_attention(self) -> None:
        if not self.has_attention:
            raise ValueError(
                "this SavedModel was exported without the attention output; export it again"
            )

    def prefill_with_attention(
        self, token_ids: Any, lengths: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """`prefill` and the attention of each row's last real token over the prefix,
        [num_layers, B, L] (heads averaged); only for versions that export it (`has_attention`).
        """
        self._check_attention()
        out = self._call_prefill(token_ids, lengths, None)
        return out[LOG_PROBS_KEY].numpy(), out[ATTENTION_KEY].numpy(), out[CACHE_KEY]

    def step_with_attention(
        self, token_ids: Any, positions: Any, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """`step` and the new token's attention over the cache slots, [num_layers, B, T] (heads
        averaged); only for versions that export it (`has_attention`)."""
        self._check_attention()
        out = self._call_step(token_ids, positions, cache, None)
        return out[LOG_PROBS_KEY].numpy(), out[ATTENTION_KEY].numpy(), out[CACHE_KEY]

    def full_logits(
        self, token_ids: Any, padding_mask: Any, condition: Any = None, segment_ids: Any = None
    ) -> np.ndarray:
        inputs = {TOKEN_IDS: int32_tensor(token_ids), PADDING_MASK: int32_tensor(padding_mask)}
        if segment_ids is not None:
            inputs[SEGMENT_IDS] = int32_tensor(segment_ids)
        elif self._prefill_segments:
            inputs[SEGMENT_IDS] = tf.zeros_like(inputs[TOKEN_IDS])
        out = self._full_logits(**inputs, **self._condition(condition))
        return np.asarray(out[LOG_PROBS_KEY])
