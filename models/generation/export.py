"""SavedModel export of a conditional LM: the writer (the service reads it with
`models.bert.lm_reader.SavedModelLMStepModel`; the signatures are listed in
`models.generation.signatures`).

The SavedModel stands alone (no Keras, no project code needed to call it); `assets/vocab.txt` is
its WordPiece vocabulary; T, the cache slots, is fixed at export (the longest text, `[CLS]`
included) and kept in a variable, so that the loaded SavedModel still tells it.
"""

from __future__ import annotations

import os

import tensorflow as tf

from models.bert import kv_cache
from models.bert.lm_export import cache_spec, condition_spec, ids_spec, vocab_asset
from models.bert.lm_reader import SavedModelLMStepModel
from models.generation import signatures as names
from models.generation.lm import ConditionalLM
from models.saved_model import write_saved_model

# The reader's name before QA and generation shared one (`models.bert.lm_reader`).
SavedModelGenerationStepModel = SavedModelLMStepModel


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
        vocab_file = vocab_asset(vocab_path)
        if cache_length > model.config.max_position:
            raise ValueError(
                f"a cache of {cache_length} exceeds the position table {model.config.max_position}"
            )
        self.model = model
        self.vocab_file = vocab_file
        # A variable (`signatures.CACHE_LENGTH_VARIABLE`), so that the loaded SavedModel still
        # tells its cache length.
        self.cache_length = tf.Variable(cache_length, dtype=tf.int32, trainable=False)
        if model.condition_size is None:
            raise ValueError("a conditional LM's backbone has a condition_size")
        cache = cache_spec(model.config)
        vectors = condition_spec(model.condition_size)
        self.prefill = tf.function(
            self._prefill,
            input_signature=[ids_spec("token_ids", 2), ids_spec("lengths", 1), vectors],
        )
        self.step = tf.function(
            self._step,
            input_signature=[ids_spec("token_ids", 1), ids_spec("positions", 1), cache, vectors],
        )
        self.full_logits = tf.function(
            self._full_logits,
            input_signature=[ids_spec("token_ids", 2), ids_spec("padding_mask", 2), vectors],
        )
        self.label_condition = None
        if model.label_embedding is not None:
            self.label_condition = tf.function(
                self._label_condition, input_signature=[ids_spec("label_ids", 1)]
            )

    def _label_condition(self, label_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {names.CONDITION_KEY: kv_cache.label_condition(self.model, label_ids)}

    def _prefill(
        self, token_ids: tf.Tensor, lengths: tf.Tensor, condition: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs, cache = kv_cache.prefill(
            self.model, token_ids, lengths, self.cache_length, condition
        )
        return {names.LOG_PROBS_KEY: log_probs, names.CACHE_KEY: cache}

    def _step(
        self, token_ids: tf.Tensor, positions: tf.Tensor, cache: tf.Tensor, condition: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs, cache = kv_cache.step(self.model, token_ids, positions, cache, condition)
        return {names.LOG_PROBS_KEY: log_probs, names.CACHE_KEY: cache}

    def _full_logits(
        self, token_ids: tf.Tensor, padding_mask: tf.Tensor, condition: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        return {
            names.LOG_PROBS_KEY: kv_cache.full_logits(
                self.model, token_ids, padding_mask, condition
            )
        }


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
    functions = {
        names.SIGNATURE_PREFILL: module.prefill,
        names.SIGNATURE_STEP: module.step,
        names.SIGNATURE_FULL_LOGITS: module.full_logits,
    }
    if module.label_condition is not None:
        functions[names.SIGNATURE_LABEL_CONDITION] = module.label_condition
    return write_saved_model(path, module, functions, default=names.SIGNATURE_FULL_LOGITS)
