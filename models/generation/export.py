"""SavedModel export of a conditional LM, with the signatures a server decodes with.

The SavedModel stands alone (no Keras, no project code needed to call it); `assets/vocab.txt` is
its WordPiece vocabulary. Shapes: B rows, L prefix length (padded), V vocabulary, C condition
width, T cache slots (fixed at export: the longest text, `[CLS]` included), and the cache
`[num_layers, 2, B, heads, T, head_size]` float32 (`models.generation.kv_cache`).

Signatures (argument names are the input tensor names; outputs are dicts):

* `label_condition(label_ids int32 [B])` -> `condition` float32 [B, C] (labelled models only);
* `prefill(token_ids int32 [B, L], lengths int32 [B], condition float32 [B, C])`
  -> `log_probs` float32 [B, V] (the token after each prefix), `cache` [layers, 2, B, heads, T, Dh];
* `step(token_ids int32 [B], positions int32 [B], cache, condition float32 [B, C])`
  -> `log_probs` [B, V], `cache`; `positions[b]` is where row b's token goes (< T);
* `full_logits(token_ids int32 [B, L], padding_mask int32 [B, L], condition float32 [B, C])`
  -> `log_probs` [B, L, V], the no-cache reference; also `serving_default`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.tensors import float32_tensor, int32_tensor
from models.bert.tokenizer import VOCAB_FILE
from models.generation import kv_cache
from models.generation.lm import ConditionalLM

SIGNATURE_LABEL_CONDITION = "label_condition"
SIGNATURE_PREFILL = "prefill"
SIGNATURE_STEP = "step"
SIGNATURE_FULL_LOGITS = "full_logits"
SIGNATURE_DEFAULT = "serving_default"
LOG_PROBS_KEY = "log_probs"
CACHE_KEY = "cache"
CONDITION_KEY = "condition"
VOCAB_ASSET_PATH = f"assets/{VOCAB_FILE}"


class ConditionalLMModule(tf.Module):
    """What the SavedModel holds: the weights, the vocabulary asset and the functions.

    Args:
        model: the trained model (its averaged weights, when training kept an EMA).
        vocab_path: the model's vocab.txt, copied into `assets/`.
        cache_length: T, the slots `prefill` allocates (at most the position table).
    """

    def __init__(
        self, model: ConditionalLM, vocab_path: str | os.PathLike[str], cache_length: int
    ) -> None:
        super().__init__(name="conditional_lm")
        if Path(vocab_path).name != VOCAB_FILE:
            raise ValueError(f"the vocabulary must be a file named {VOCAB_FILE}: {vocab_path}")
        if cache_length > model.config.max_position:
            raise ValueError(
                f"a cache of {cache_length} exceeds the position table {model.config.max_position}"
            )
        self.model = model
        self.vocab_file = tf.saved_model.Asset(str(vocab_path))
        # A variable, so that the loaded SavedModel still tells its cache length.
        self.cache_length = tf.Variable(cache_length, dtype=tf.int32, trainable=False)
        config = model.config
        head_size = config.hidden_size // config.num_heads
        cache = tf.TensorSpec(
            [config.num_layers, 2, None, config.num_heads, None, head_size],
            tf.float32,
            name=CACHE_KEY,
        )
        vectors = tf.TensorSpec([None, model.condition_size], tf.float32, name=CONDITION_KEY)

        def ids(name: str, rank: int) -> tf.TensorSpec:
            return tf.TensorSpec([None] * rank, tf.int32, name=name)

        self.prefill = tf.function(
            self._prefill, input_signature=[ids("token_ids", 2), ids("lengths", 1), vectors]
        )
        self.step = tf.function(
            self._step,
            input_signature=[ids("token_ids", 1), ids("positions", 1), cache, vectors],
        )
        self.full_logits = tf.function(
            self._full_logits,
            input_signature=[ids("token_ids", 2), ids("padding_mask", 2), vectors],
        )
        self.label_condition = None
        if model.label_embedding is not None:
            self.label_condition = tf.function(
                self._label_condition, input_signature=[ids("label_ids", 1)]
            )

    def _label_condition(self, label_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {CONDITION_KEY: kv_cache.label_condition(self.model, label_ids)}

    def _prefill(
        self, token_ids: tf.Tensor, lengths: tf.Tensor, condition: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs, cache = kv_cache.prefill(
            self.model, token_ids, lengths, condition, self.cache_length
        )
        return {LOG_PROBS_KEY: log_probs, CACHE_KEY: cache}

    def _step(
        self, token_ids: tf.Tensor, positions: tf.Tensor, cache: tf.Tensor, condition: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs, cache = kv_cache.step(self.model, token_ids, positions, cache, condition)
        return {LOG_PROBS_KEY: log_probs, CACHE_KEY: cache}

    def _full_logits(
        self, token_ids: tf.Tensor, padding_mask: tf.Tensor, condition: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        return {LOG_PROBS_KEY: kv_cache.full_logits(self.model, token_ids, padding_mask, condition)}


def export_generation_saved_model(
    path: str | os.PathLike[str],
    model: ConditionalLM,
    vocab_path: str | os.PathLike[str],
    cache_length: int | None = None,
) -> list[str]:
    """Writes the SavedModel (saved_model.pb, variables/, assets/vocab.txt) into `path`.

    Args:
        path: the (existing or new) folder to write into.
        model: the trained model.
        vocab_path: the model's vocab.txt.
        cache_length: the longest text in tokens, `[CLS]` included (default: the position
            table).

    Returns:
        The names of the exported signatures.
    """
    module = ConditionalLMModule(model, vocab_path, cache_length or model.config.max_position)
    signatures = {
        SIGNATURE_PREFILL: module.prefill.get_concrete_function(),
        SIGNATURE_STEP: module.step.get_concrete_function(),
        SIGNATURE_FULL_LOGITS: module.full_logits.get_concrete_function(),
        # TensorFlow Serving's REST API calls this one when a request names no signature.
        SIGNATURE_DEFAULT: module.full_logits.get_concrete_function(),
    }
    if module.label_condition is not None:
        signatures[SIGNATURE_LABEL_CONDITION] = module.label_condition.get_concrete_function()
    tf.saved_model.save(module, os.fspath(path), signatures=signatures)
    return list(signatures)


class SavedModelGenerationStepModel:
    """The decoding interface on an exported SavedModel (what the service drives); the methods of
    `models.generation.kv_cache.KerasGenerationStepModel`.

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
        self.cache_length = int(saved_model.cache_length.numpy())
        spec = self._prefill.structured_input_signature[1][CONDITION_KEY]
        self.condition_size = int(spec.shape[-1])
        # [num_layers, 2, B, heads, T, head_size], B and T left open in the signature.
        cache = self._step.structured_input_signature[1][CACHE_KEY].shape
        self._cache_shape = (int(cache[0]), int(cache[3]), int(cache[5]))

    def label_condition(self, label_ids: Any) -> np.ndarray:
        if self._label_condition is None:
            raise ValueError("the model is conditioned on vectors, not labels")
        return self._label_condition(label_ids=int32_tensor(label_ids))[CONDITION_KEY].numpy()

    def prefill(self, token_ids: Any, lengths: Any, condition: Any) -> tuple[np.ndarray, Any]:
        out = self._prefill(
            token_ids=int32_tensor(token_ids),
            lengths=int32_tensor(lengths),
            condition=float32_tensor(condition),
        )
        return out[LOG_PROBS_KEY].numpy(), out[CACHE_KEY]

    def step(
        self, token_ids: Any, positions: Any, cache: Any, condition: Any
    ) -> tuple[np.ndarray, Any]:
        out = self._step(
            token_ids=int32_tensor(token_ids),
            positions=int32_tensor(positions),
            cache=tf.convert_to_tensor(cache, tf.float32),
            condition=float32_tensor(condition),
        )
        return out[LOG_PROBS_KEY].numpy(), out[CACHE_KEY]

    def full_logits(self, token_ids: Any, padding_mask: Any, condition: Any) -> np.ndarray:
        out = self._full_logits(
            token_ids=int32_tensor(token_ids),
            padding_mask=int32_tensor(padding_mask),
            condition=float32_tensor(condition),
        )
        return np.asarray(out[LOG_PROBS_KEY])

    def select_rows(self, cache: Any, rows: Any) -> Any:
        return kv_cache.select_rows(cache, rows)

    def concat_rows(self, first: Any, second: Any) -> Any:
        return kv_cache.concat_rows(first, second)

    def empty_rows(self, count: int) -> Any:
        layers, heads, head_size = self._cache_shape
        return kv_cache.empty_rows(layers, heads, head_size, self.cache_length, count)
