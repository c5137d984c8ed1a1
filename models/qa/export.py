"""SavedModel export of a UniLM seq2seq QA model, with the signatures a server decodes with.

The SavedModel stands alone (no Keras, no project code needed to call it); `assets/vocab.txt` is
the model's WordPiece vocabulary. Shapes: B rows (passages x beams), L prefix length (padded),
V vocabulary, T = L + max_answer_tokens cache slots, and the cache
`[num_layers, 2, B, num_heads, T, head_size]` float32 (`models.qa.kv_cache` explains its layout).

Signatures (argument names are the input tensor names; outputs are dicts):

* `prefill(token_ids int32 [B, L], segment_ids int32 [B, L], lengths int32 [B])`
  -> `log_probs` float32 [B, V] (first answer token), `cache` float32 [layers, 2, B, heads, T, Dh];
  rows are `[CLS] passage [SEP] question [SEP]` (`samples.build_prefix`) padded after `lengths`.
* `step(token_ids int32 [B], cache float32 [layers, 2, B, heads, T, Dh], positions int32 [B])`
  -> `log_probs` float32 [B, V], `cache` (same shape); `positions[b] = lengths[b] + k` for the
  k-th answer token of row b (k = 0 for the token chosen from prefill's log-probs), < T.
* `reorder(cache float32 [layers, 2, B, heads, T, Dh], beam_indices int32 [B'])`
  -> `cache` [layers, 2, B', heads, T, Dh] (rows gathered: beams that survive).
* `full_logits(token_ids int32 [B, L], segment_ids int32 [B, L], padding_mask int32 [B, L])`
  -> `log_probs` float32 [B, L, V]: the no-cache reference (position t predicts token t + 1).
* `serving_default`: `full_logits`.

`max_answer_tokens` is fixed at export (prefill preallocates that many slots); `max_passage_tokens`,
`max_question_tokens` and `max_answer_tokens` are recorded in the manifest by the training job.
Not XLA-compiled by default: B changes from step to step (passages without an answer leave, beams
fill up) and XLA would compile each new shape; `jit_compile=True` is for servers padding to buckets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.tensors import int32_tensor
from models.bert.tokenizer import VOCAB_FILE
from models.qa import kv_cache
from models.qa.samples import max_sample_length
from models.qa.seq2seq import UniLMSeq2Seq

SIGNATURE_PREFILL = "prefill"
SIGNATURE_STEP = "step"
SIGNATURE_REORDER = "reorder"
SIGNATURE_FULL_LOGITS = "full_logits"
SIGNATURE_DEFAULT = "serving_default"
LOG_PROBS_KEY = "log_probs"
CACHE_KEY = "cache"
VOCAB_ASSET_PATH = f"assets/{VOCAB_FILE}"


class QASeq2SeqModule(tf.Module):
    """What the SavedModel holds: the model's weights, the vocabulary asset, four functions.

    Args:
        model: the trained seq2seq model (its averaged weights, when training kept an EMA).
        vocab_path: the model's vocab.txt, copied into `assets/`.
        max_answer_tokens: answer slots `prefill` preallocates in the cache.
        jit_compile: XLA-compile the functions (once per input shape).
    """

    def __init__(
        self,
        model: UniLMSeq2Seq,
        vocab_path: str | os.PathLike[str],
        max_answer_tokens: int,
        jit_compile: bool = False,
    ) -> None:
        super().__init__(name="qa_seq2seq")
        if Path(vocab_path).name != VOCAB_FILE:
            raise ValueError(f"the vocabulary must be a file named {VOCAB_FILE}: {vocab_path}")
        self.model = model
        self.vocab_file = tf.saved_model.Asset(str(vocab_path))
        self.max_answer_tokens = tf.constant(max_answer_tokens, tf.int32)
        config = model.config
        cache_spec = tf.TensorSpec(
            [
                config.num_layers,
                2,
                None,
                config.num_heads,
                None,
                config.hidden_size // config.num_heads,
            ],
            tf.float32,
            name=CACHE_KEY,
        )

        def ids(name: str, rank: int) -> tf.TensorSpec:
            return tf.TensorSpec([None] * rank, tf.int32, name=name)

        self.prefill = tf.function(
            self._prefill,
            input_signature=[ids("token_ids", 2), ids("segment_ids", 2), ids("lengths", 1)],
            jit_compile=jit_compile,
        )
        self.step = tf.function(
            self._step,
            input_signature=[ids("token_ids", 1), cache_spec, ids("positions", 1)],
            jit_compile=jit_compile,
        )
        self.reorder = tf.function(
            self._reorder, input_signature=[cache_spec, ids("beam_indices", 1)]
        )
        self.full_logits = tf.function(
            self._full_logits,
            input_signature=[ids("token_ids", 2), ids("segment_ids", 2), ids("padding_mask", 2)],
            jit_compile=jit_compile,
        )

    def _prefill(
        self, token_ids: tf.Tensor, segment_ids: tf.Tensor, lengths: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs, cache = kv_cache.prefill(
            self.model, token_ids, segment_ids, lengths, self.max_answer_tokens
        )
        return {LOG_PROBS_KEY: log_probs, CACHE_KEY: cache}

    def _step(
        self, token_ids: tf.Tensor, cache: tf.Tensor, positions: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs, cache = kv_cache.step(self.model, token_ids, cache, positions)
        return {LOG_PROBS_KEY: log_probs, CACHE_KEY: cache}

    def _reorder(self, cache: tf.Tensor, beam_indices: tf.Tensor) -> dict[str, tf.Tensor]:
        return {CACHE_KEY: kv_cache.reorder(cache, beam_indices)}

    def _full_logits(
        self, token_ids: tf.Tensor, segment_ids: tf.Tensor, padding_mask: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        return {
            LOG_PROBS_KEY: kv_cache.full_logits(self.model, token_ids, segment_ids, padding_mask)
        }


def export_qa_saved_model(
    path: str | os.PathLike[str],
    model: UniLMSeq2Seq,
    tokenizer_vocab_path: str | os.PathLike[str],
    max_passage_tokens: int,
    max_question_tokens: int,
    max_answer_tokens: int,
    jit_compile: bool = False,
) -> list[str]:
    """Writes the SavedModel (saved_model.pb, variables/, assets/vocab.txt) into `path`.

    Args:
        path: the (existing or new) folder to write into.
        model: the trained model.
        tokenizer_vocab_path: the model's vocab.txt.
        max_passage_tokens, max_question_tokens: prefix limits; with `max_answer_tokens` they
            must fit the position table.
        max_answer_tokens: answer slots `prefill` preallocates (the longest answer decodable).
        jit_compile: XLA-compile the serving functions.

    Returns:
        The names of the exported signatures.
    """
    longest = max_sample_length(max_passage_tokens, max_question_tokens, max_answer_tokens)
    if longest > model.config.max_position:
        raise ValueError(
            f"{longest} tokens do not fit the position table of {model.config.max_position}"
        )
    module = QASeq2SeqModule(model, tokenizer_vocab_path, max_answer_tokens, jit_compile)
    signatures = {
        SIGNATURE_PREFILL: module.prefill.get_concrete_function(),
        SIGNATURE_STEP: module.step.get_concrete_function(),
        SIGNATURE_REORDER: module.reorder.get_concrete_function(),
        SIGNATURE_FULL_LOGITS: module.full_logits.get_concrete_function(),
        # TensorFlow Serving's REST API calls this one when a request names no signature.
        SIGNATURE_DEFAULT: module.full_logits.get_concrete_function(),
    }
    tf.saved_model.save(module, os.fspath(path), signatures=signatures)
    return list(signatures)


class SavedModelStepModel:
    """The decoder's step interface on an exported SavedModel (what the service drives).

    Same methods as `models.qa.kv_cache.KerasStepModel`: `prefill`, `step`, `reorder`,
    `full_logits`; log-probabilities come back as numpy arrays, the cache as an opaque tensor.

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
        self._reorder = signatures[SIGNATURE_REORDER]
        self._full_logits = signatures[SIGNATURE_FULL_LOGITS]

    def prefill(self, token_ids: Any, segment_ids: Any, lengths: Any) -> tuple[np.ndarray, Any]:
        out = self._prefill(
            token_ids=int32_tensor(token_ids),
            segment_ids=int32_tensor(segment_ids),
            lengths=int32_tensor(lengths),
        )
        return out[LOG_PROBS_KEY].numpy(), out[CACHE_KEY]

    def step(self, token_ids: Any, cache: Any, positions: Any) -> tuple[np.ndarray, Any]:
        out = self._step(
            token_ids=int32_tensor(token_ids),
            cache=tf.convert_to_tensor(cache, tf.float32),
            positions=int32_tensor(positions),
        )
        return out[LOG_PROBS_KEY].numpy(), out[CACHE_KEY]

    def reorder(self, cache: Any, beam_indices: Any) -> Any:
        cache = tf.convert_to_tensor(cache, tf.float32)
        return self._reorder(cache=cache, beam_indices=int32_tensor(beam_indices))[CACHE_KEY]

    def full_logits(self, token_ids: Any, segment_ids: Any, padding_mask: Any) -> np.ndarray:
        out = self._full_logits(
            token_ids=int32_tensor(token_ids),
            segment_ids=int32_tensor(segment_ids),
            padding_mask=int32_tensor(padding_mask),
        )
        return np.asarray(out[LOG_PROBS_KEY])
