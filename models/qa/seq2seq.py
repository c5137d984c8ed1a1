"""UniLM seq2seq model for reading comprehension: a BERT encoder under the UniLM mask and the tied
MLM head as the decoder's output layer (Dong et al., "Unified Language Model Pre-training for
Natural Language Understanding and Generation", NeurIPS 2019; bert4keras'
`task_reading_comprehension_by_seq2seq.py`).

One encoder both reads `[CLS] passage [SEP] question [SEP]` (segment 0, bidirectional) and writes
the answer (segment 1, left to right): the logits at position t are the distribution of token
t + 1. Training minimises the cross-entropy of the answer tokens and the closing [SEP] only
(`seq2seq_loss`; `models.qa.samples` builds the inputs and the loss mask). The model is the
shared BERT LM task (`models.bert.bert_lm.BertLM`) under the UniLM mask; what is QA's own is the
loss window (`answer_window_loss`) and the decoding rule (`models.qa.decoding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from models.bert.bert_backbone import BertBackbone, BertConfig
from models.bert.bert_lm import LOSS_MASK_KEY, BertLM, lm_config, load_pretrained_bert
from models.bert.lm_signatures import CACHE_SLOT_AXIS
from models.bert.masks import build_attention_mask
from models.bert.mlm_head import BertMaskedLMHead, next_token_loss
from models.bert.overlap import DEFAULT_MAX_SENTENCE_COUNT
from models.qa import copy_attention
from models.qa.copy_attention import CopyAttention
from models.qa.samples import TARGET_SEGMENT, max_sample_length

MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")
# The targets of samples whose answer slots read the passage's next token (`samples.QASample`).
LABEL_IDS_KEY = "label_ids"

# A small encoder for training from scratch on a few thousand samples on a CPU (a quarter of
# BERT-base's width, 4 of its 12 layers; MiniLM-L6's 384 wide would be 4x slower per step).
SMALL_HIDDEN_SIZE = 128
SMALL_NUM_LAYERS = 4
SMALL_NUM_HEADS = 4
SMALL_INTERMEDIATE_SIZE = 512
SMALL_SHAPE = {
    "hidden_size": SMALL_HIDDEN_SIZE,
    "num_layers": SMALL_NUM_LAYERS,
    "num_heads": SMALL_NUM_HEADS,
    "intermediate_size": SMALL_INTERMEDIATE_SIZE,
}

__all__ = [
    "LOSS_MASK_KEY",
    "MODEL_INPUTS",
    "LABEL_IDS_KEY",
    "UniLMSeq2Seq",
    "answer_window_loss",
    "build_qa_model",
    "seq2seq_loss",
    "small_qa_config",
]


def small_qa_config(
    vocab_size: int, max_position: int | None = None, **overrides: Any
) -> BertConfig:
    """The from-scratch encoder's shape (used without `--init-checkpoint`).

    Args:
        vocab_size: size of the vocabulary built from the training data.
        max_position: position table length; default the longest sample at the default limits.
        **overrides: any other `BertConfig` field.
    """
    return lm_config(vocab_size, max_position or max_sample_length(), SMALL_SHAPE, **overrides)


# The answer's tokens and closing [SEP] are the targets (`samples.QASample.loss_mask`).
seq2seq_loss = next_token_loss


def answer_window_loss(
    model: UniLMSeq2Seq,
    inputs: dict[str, tf.Tensor],
    window: int,
    training: bool | None = None,
    first_token_weight: float = 1.0,
    input_softmax: bool = False,
) -> tf.Tensor:
    """`seq2seq_loss` with the MLM head applied to the answer positions only.

    The targets of a sample (its answer and closing [SEP]) are its last tokens, at most `window`
    of them (`max_answer_tokens + 1`): the logits that predict them come from the `window`
    positions before each row's end. Scoring only those, not every position, over the whole
    vocabulary is what makes fine-tuning a BERT with a 21k-30k vocabulary affordable on a CPU
    (the head's [B, L, V] logits are most of a step otherwise). Fixed shapes ([B, window]), so
    the step still compiles with XLA. Equal to `seq2seq_loss(model(inputs), ...)` whenever every
    target lies within the window (`build_sample` guarantees it).

    `first_token_weight` weighs each row's first target (the answer's first token, or the [SEP]
    of "no answer": where a reader decides whether, and whose, value it gives) that many times
    the others; the mean is over the weights. 1.0: the plain mean.

    `input_softmax`: each target's softmax runs over the tokens the row holds (prefix and
    answer) instead of the whole vocabulary (`models.qa.input_softmax`, which decodes such a
    model).
    """
    token_ids = tf.cast(inputs["token_ids"], tf.int32)
    loss_mask = tf.cast(inputs[LOSS_MASK_KEY], tf.float32)
    features = {key: inputs[key] for key in MODEL_INPUTS}
    states = model.backbone(features, training=training)["sequence_output"]
    lengths = tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32), axis=1)
    # Position t predicts token t + 1; the last `window` predictions of each row end at len - 2.
    positions = lengths[:, tf.newaxis] - 1 - window + tf.range(window)[tf.newaxis, :]
    valid = tf.cast(positions >= 0, tf.float32)
    positions = tf.maximum(positions, 0)
    slot_states = tf.gather(states, positions, batch_dims=1)
    logits = model.mlm_head(slot_states)
    if input_softmax:
        logits = _keep_input_tokens(logits, token_ids, inputs["padding_mask"])
    # The answer slots of a "next" sample read other tokens than they predict (`label_ids`).
    labels = tf.cast(inputs[LABEL_IDS_KEY], tf.int32) if LABEL_IDS_KEY in inputs else token_ids
    targets = tf.gather(labels, positions + 1, batch_dims=1)
    mask = tf.gather(loss_mask, positions + 1, batch_dims=1) * valid
    if first_token_weight != 1.0:
        first = tf.cast(tf.equal(tf.cumsum(mask, axis=1), 1.0), tf.float32) * mask
        mask = mask + (first_token_weight - 1.0) * first
    if model.copy_attention is not None:
        scores = model.copy_attention(slot_states, states, _source(inputs))
        cross_entropy = copy_attention.copy_loss(logits, scores, token_ids, targets)
    else:
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets, logits=logits
        )
    return tf.reduce_sum(cross_entropy * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def _source(inputs: dict[str, Any]) -> tf.Tensor:
    """[B, L] bool: the positions copy attention may point at, the row's real segment-0 tokens
    (`[CLS] passage [SEP] question [SEP]`, as `kv_cache.prefill` reads a prefix)."""
    real = tf.cast(inputs["padding_mask"], tf.bool)
    return real & tf.equal(tf.cast(inputs["segment_ids"], tf.int32), 0)


def _keep_input_tokens(
    logits: tf.Tensor, token_ids: tf.Tensor, padding_mask: tf.Tensor
) -> tf.Tensor:
    """Logits [B, W, V] with every token row b does not hold set to a large negative: the
    softmax then runs over the row's own tokens. Built by a scatter ([B, V]), not a one-hot
    ([B, L, V] would be most of the step)."""
    batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    rows = tf.tile(tf.range(batch)[:, tf.newaxis], [1, length])
    indices = tf.stack([rows, token_ids], axis=-1)
    counts = tf.scatter_nd(
        indices, tf.cast(padding_mask, tf.float32), tf.stack([batch, tf.shape(logits)[-1]])
    )
    logits = tf.cast(logits, tf.float32)
    return tf.where(counts[:, tf.newaxis, :] > 0, logits, tf.constant(-1e9, tf.float32))


@keras.saving.register_keras_serializable(package="kexue_qa")
class UniLMSeq2Seq(BertLM):
    """BERT under the UniLM mask + tied MLM head: {"token_ids", "segment_ids", "padding_mask"}
    ([B, L] int32 each) -> next-token logits [B, L, V].

    `fit` needs no labels: give it dicts that also hold `loss_mask` (`samples.pad_samples`) and
    the loss is `seq2seq_loss`. The backbone must have `attention_mode="unilm"`.

    Args:
        backbone: a `BertBackbone` built with `attention_mode="unilm"`.
        mlm_head: its tied `BertMaskedLMHead` (a fresh one when None).

    Example:
        >>> model = build_qa_model(small_qa_config(vocab_size=100, max_position=64))
        >>> logits = model({"token_ids": ids, "segment_ids": segs, "padding_mask": pad})
    """

    attention_mode = "unilm"
    model_inputs = MODEL_INPUTS
    target_segment = TARGET_SEGMENT

    def __init__(
        self,
        backbone: BertBackbone,
        mlm_head: BertMaskedLMHead | None = None,
        copy_attention: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, mlm_head, **kwargs)
        # Answer tokens written by pointing at the source too (`models.qa.copy_attention`).
        self.copy_attention: CopyAttention | None = None
        if copy_attention:
            self.copy_attention = CopyAttention(self.config.hidden_size, name="copy_attention")
            self.copy_attention.build()

    @property
    def cache_layers(self) -> int:
        extra = 0 if self.copy_attention is None else copy_attention.CACHE_LAYERS
        return self.config.num_layers + extra

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> tf.Tensor:
        if self.copy_attention is None:
            return super().call(inputs, training=training)
        # Log-probabilities of the shared softmax at every position (their log-softmax is
        # themselves: `kv_cache.full_logits` reads them as it reads logits).
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        segment_ids = tf.cast(inputs["segment_ids"], tf.int32)
        padding = tf.cast(inputs["padding_mask"], tf.int32)
        mask = build_attention_mask(padding, segment_ids, self.attention_mode)
        states = self.backbone.encode(token_ids, segment_ids, mask, training=training)
        scores = self.copy_attention(states, states, _source(inputs))
        return copy_attention.merged_log_probs(self.mlm_head(states), scores, token_ids)

    def prefill_log_probs(
        self,
        states: tf.Tensor,
        token_ids: tf.Tensor,
        lengths: tf.Tensor,
        cache: tf.Tensor,
        condition: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        log_probs, cache = super().prefill_log_probs(states, token_ids, lengths, cache, condition)
        if self.copy_attention is None:
            return log_probs, cache
        entry = copy_attention.cache_entry(
            self.copy_attention,
            states,
            token_ids,
            lengths,
            tf.shape(cache)[CACHE_SLOT_AXIS],
            self.config.num_heads,
        )
        cache = tf.concat([cache, entry], axis=0)
        last = tf.gather(states, lengths - 1, batch_dims=1)
        vocab_logits = self.mlm_head(last[:, tf.newaxis, :])[:, 0, :]
        return copy_attention.step_log_probs(
            self.copy_attention, vocab_logits, last, entry[0]
        ), cache

    def step_log_probs(
        self, states: tf.Tensor, cache: tf.Tensor, condition: tf.Tensor | None = None
    ) -> tf.Tensor:
        if self.copy_attention is None:
            return super().step_log_probs(states, cache, condition)
        vocab_logits = self.mlm_head(states[:, tf.newaxis, :])[:, 0, :]
        entry = cache[self.config.num_layers]
        return copy_attention.step_log_probs(self.copy_attention, vocab_logits, states, entry)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.copy_attention is not None:
            config["copy_attention"] = True
        return config


def build_qa_model(
    config: BertConfig | None = None,
    init_checkpoint: str | Path | None = None,
    overlap_sep_id: int | None = None,
    overlap_max_length: int | None = None,
    sentence_end_ids: Sequence[int] | None = None,
    sentence_max_count: int = DEFAULT_MAX_SENTENCE_COUNT,
    sentence_join_ids: Sequence[int] = (),
    copy_attention: bool = False,
) -> UniLMSeq2Seq:
    """A UniLM seq2seq QA model, from a pretrained BERT folder or from scratch.

    Args:
        config: the encoder's shape when starting from scratch (`small_qa_config`); ignored
            when `init_checkpoint` is given (the checkpoint's own config wins).
        init_checkpoint: a Hugging Face folder (config.json, model.safetensors, vocab.txt) or
            Google's TF checkpoint folder (bert_config.json, bert_model.ckpt.*, vocab.txt); its
            MLM head is loaded when present (a sentence-transformers folder has none, and the
            head's transform then starts fresh). Tokenise with `BertTokenizer.from_folder`.
        overlap_sep_id: the tokenizer's [SEP] id, to give the encoder the n-gram "exact match"
            feature (which passage tokens are in a bigram of the question, and the reverse:
            `models.bert.overlap`); None: none. With `init_checkpoint` its vector starts at
            zero (no checkpoint holds one): the model starts as the checkpoint is.
        overlap_max_length: with `overlap_sep_id`, the match-length feature capped at this
            (`models.bert.overlap.match_length_overlap`) instead of the bigram marks.
        sentence_end_ids: with `overlap_sep_id`, the ids that end a sentence, to give the
            encoder the sentence-level feature too (each passage token: how many distinct
            question bigrams its sentence holds, capped at `sentence_max_count`:
            `models.bert.overlap.sentence_overlap`); None: not read. Its vectors start at zero.
        sentence_join_ids: with `sentence_end_ids`, the ids that, opening a sentence, join it to
            the one before (a pronoun subject counts the name it refers back to).
        copy_attention: answer tokens written by pointing at the source too
            (`models.qa.copy_attention`); its weights start fresh.

    Returns:
        The model, built (all weights exist).
    """
    if init_checkpoint is not None:
        loaded = load_pretrained_bert(
            init_checkpoint,
            with_mlm_head=True,
            attention_mode="unilm",
            overlap_sep_id=overlap_sep_id,
            overlap_max_length=overlap_max_length,
            sentence_end_ids=sentence_end_ids,
            sentence_max_count=sentence_max_count,
            sentence_join_ids=sentence_join_ids,
        )
        return UniLMSeq2Seq(
            loaded.backbone, loaded.mlm_head, copy_attention=copy_attention, name="unilm_seq2seq"
        )
    if config is None:
        raise ValueError("give a BertConfig (small_qa_config) or an init_checkpoint folder")
    backbone = BertBackbone.from_bert_config(
        config,
        attention_mode="unilm",
        overlap_sep_id=overlap_sep_id,
        overlap_max_length=overlap_max_length,
        sentence_end_ids=sentence_end_ids,
        sentence_max_count=sentence_max_count,
        sentence_join_ids=sentence_join_ids,
    )
    return UniLMSeq2Seq(backbone, copy_attention=copy_attention, name="unilm_seq2seq")
