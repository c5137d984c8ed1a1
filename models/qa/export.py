"""SavedModel export of a UniLM seq2seq QA model: the writer (the service reads it with
`models.bert.lm_reader.SavedModelLMStepModel`; the signatures are listed in `models.qa.signatures`).

The SavedModel stands alone (no Keras, no project code needed to call it); `assets/vocab.txt` is
the model's WordPiece vocabulary. `max_answer_tokens` is fixed at export (prefill preallocates
that many slots); `max_passage_tokens`, `max_question_tokens` and `max_answer_tokens` are recorded
in the manifest by the training job. Not XLA-compiled by default: B changes from step to step
(passages without an answer leave, beams fill up) and XLA would compile each new shape;
`jit_compile=True` is for servers padding to buckets.
"""

from __future__ import annotations

import os

import tensorflow as tf

from models.bert import kv_cache
from models.bert.lm_export import cache_spec, ids_spec, vocab_asset
from models.bert.lm_reader import SavedModelLMStepModel
from models.qa import signatures as names
from models.qa.samples import max_sample_length
from models.qa.seq2seq import UniLMSeq2Seq
from models.saved_model import write_saved_model

# The reader's name before QA and generation shared one (`models.bert.lm_reader`).
SavedModelStepModel = SavedModelLMStepModel


class QASeq2SeqModule(tf.Module):
    """What the SavedModel holds: the model's weights, the vocabulary asset, four functions
    (`prefill` and `step` also return the attention that answers' evidence is made of).

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
        vocab_file = vocab_asset(vocab_path)
        self.model = model
        self.vocab_file = vocab_file
        self.max_answer_tokens = tf.constant(max_answer_tokens, tf.int32)
        cache = cache_spec(model.config, model.cache_layers)
        self.prefill = tf.function(
            self._prefill,
            input_signature=[
                ids_spec("token_ids", 2),
                ids_spec("segment_ids", 2),
                ids_spec("lengths", 1),
            ],
            jit_compile=jit_compile,
        )
        self.step = tf.function(
            self._step,
            input_signature=[ids_spec("token_ids", 1), cache, ids_spec("positions", 1)],
            jit_compile=jit_compile,
        )
        self.reorder = tf.function(
            self._reorder, input_signature=[cache, ids_spec("beam_indices", 1)]
        )
        self.full_logits = tf.function(
            self._full_logits,
            input_signature=[
                ids_spec("token_ids", 2),
                ids_spec("segment_ids", 2),
                ids_spec("padding_mask", 2),
            ],
            jit_compile=jit_compile,
        )

    def _prefill(
        self, token_ids: tf.Tensor, segment_ids: tf.Tensor, lengths: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        cache_length = tf.shape(token_ids)[1] + self.max_answer_tokens
        log_probs, cache, attention = kv_cache.prefill(
            self.model,
            token_ids,
            lengths,
            cache_length,
            segment_ids=segment_ids,
            return_attention=True,
        )
        return {
            names.LOG_PROBS_KEY: log_probs,
            names.CACHE_KEY: cache,
            names.ATTENTION_KEY: attention,
        }

    def _step(
        self, token_ids: tf.Tensor, cache: tf.Tensor, positions: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs, cache, attention = kv_cache.step(
            self.model, token_ids, positions, cache, return_attention=True
        )
        return {
            names.LOG_PROBS_KEY: log_probs,
            names.CACHE_KEY: cache,
            names.ATTENTION_KEY: attention,
        }

    def _reorder(self, cache: tf.Tensor, beam_indices: tf.Tensor) -> dict[str, tf.Tensor]:
        return {names.CACHE_KEY: kv_cache.select_rows(cache, beam_indices)}

    def _full_logits(
        self, token_ids: tf.Tensor, segment_ids: tf.Tensor, padding_mask: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        log_probs = kv_cache.full_logits(
            self.model, token_ids, padding_mask, segment_ids=segment_ids
        )
        return {names.LOG_PROBS_KEY: log_probs}


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
    functions = {
        names.SIGNATURE_PREFILL: module.prefill,
        names.SIGNATURE_STEP: module.step,
        names.SIGNATURE_REORDER: module.reorder,
        names.SIGNATURE_FULL_LOGITS: module.full_logits,
    }
    return write_saved_model(path, module, functions, default=names.SIGNATURE_FULL_LOGITS)
