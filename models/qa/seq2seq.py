"""UniLM seq2seq model for reading comprehension: a BERT encoder under the UniLM mask and the tied
MLM head as the decoder's output layer (Dong et al., "Unified Language Model Pre-training for
Natural Language Understanding and Generation", NeurIPS 2019; bert4keras'
`task_reading_comprehension_by_seq2seq.py`).

One encoder both reads `[CLS] passage [SEP] question [SEP]` (segment 0, bidirectional) and writes
the answer (segment 1, left to right): the logits at position t are the distribution of token
t + 1. Training minimises the cross-entropy of the answer tokens and the closing [SEP] only
(`seq2seq_loss`; `models.qa.samples` builds the inputs and the loss mask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from models.bert.bert_backbone import BertBackbone, BertConfig
from models.bert.checkpoint import (
    GOOGLE_CONFIG_FILE,
    HF_CONFIG_FILE,
    load_hf_folder,
    load_tf_checkpoint,
)
from models.bert.mlm_head import BertMaskedLMHead, next_token_loss
from models.qa.samples import max_sample_length

MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")
LOSS_MASK_KEY = "loss_mask"

# A small encoder for training from scratch on a few thousand samples on a CPU (a quarter of
# BERT-base's width, 4 of its 12 layers; MiniLM-L6's 384 wide would be 4x slower per step).
SMALL_HIDDEN_SIZE = 128
SMALL_NUM_LAYERS = 4
SMALL_NUM_HEADS = 4
SMALL_INTERMEDIATE_SIZE = 512


def small_qa_config(
    vocab_size: int, max_position: int | None = None, **overrides: Any
) -> BertConfig:
    """The from-scratch encoder's shape (used without `--init-checkpoint`).

    Args:
        vocab_size: size of the vocabulary built from the training data.
        max_position: position table length; default the longest sample at the default limits.
        **overrides: any other `BertConfig` field.
    """
    fields: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": SMALL_HIDDEN_SIZE,
        "num_layers": SMALL_NUM_LAYERS,
        "num_heads": SMALL_NUM_HEADS,
        "intermediate_size": SMALL_INTERMEDIATE_SIZE,
        "max_position": max_position or max_sample_length(),
    }
    fields.update(overrides)
    return BertConfig(**fields)


# The answer's tokens and closing [SEP] are the targets (`samples.QASample.loss_mask`).
seq2seq_loss = next_token_loss


def answer_window_loss(
    model: UniLMSeq2Seq,
    inputs: dict[str, tf.Tensor],
    window: int,
    training: bool | None = None,
) -> tf.Tensor:
    """`seq2seq_loss` with the MLM head applied to the answer positions only.

    The targets of a sample (its answer and closing [SEP]) are its last tokens, at most `window`
    of them (`max_answer_tokens + 1`): the logits that predict them come from the `window`
    positions before each row's end. Scoring only those, not every position, over the whole
    vocabulary is what makes fine-tuning a BERT with a 21k-30k vocabulary affordable on a CPU
    (the head's [B, L, V] logits are most of a step otherwise). Fixed shapes ([B, window]), so
    the step still compiles with XLA. Equal to `seq2seq_loss(model(inputs), ...)` whenever every
    target lies within the window (`build_sample` guarantees it).
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
    logits = model.mlm_head(tf.gather(states, positions, batch_dims=1))
    targets = tf.gather(token_ids, positions + 1, batch_dims=1)
    mask = tf.gather(loss_mask, positions + 1, batch_dims=1) * valid
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.reduce_sum(cross_entropy * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="kexue_qa")
class UniLMSeq2Seq(keras.Model):
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

    def __init__(
        self, backbone: BertBackbone, mlm_head: BertMaskedLMHead | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if backbone.attention_mode != "unilm":
            raise ValueError(f"the backbone's attention_mode is {backbone.attention_mode!r}")
        self.backbone = backbone
        # The [CLS] pooler feeds nothing here; frozen, it gets no (missing-gradient) updates.
        backbone.pooler.trainable = False
        config = backbone.config
        if mlm_head is None:
            mlm_head = BertMaskedLMHead(
                backbone.token_embedding,
                config.hidden_act,
                config.layer_norm_epsilon,
                name="mlm_head",
            )
        if not mlm_head.built:
            mlm_head.build((None, None, config.hidden_size))
        self.mlm_head = mlm_head

    @property
    def config(self) -> BertConfig:
        return self.backbone.config

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        features = {key: inputs[key] for key in MODEL_INPUTS}
        states = self.backbone(features, training=training)["sequence_output"]
        return self.mlm_head(states)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> tf.Tensor:
        loss = seq2seq_loss(y_pred, x["token_ids"], x[LOSS_MASK_KEY])
        if self.losses:
            loss += tf.add_n(self.losses)
        return loss

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> UniLMSeq2Seq:
        config = dict(config)
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(backbone, **config)


def build_qa_model(
    config: BertConfig | None = None, init_checkpoint: str | Path | None = None
) -> UniLMSeq2Seq:
    """A UniLM seq2seq QA model, from a pretrained BERT folder or from scratch.

    Args:
        config: the encoder's shape when starting from scratch (`small_qa_config`); ignored
            when `init_checkpoint` is given (the checkpoint's own config wins).
        init_checkpoint: a Hugging Face folder (config.json, model.safetensors, vocab.txt) or
            Google's TF checkpoint folder (bert_config.json, bert_model.ckpt.*, vocab.txt); its
            MLM head is loaded when present (a sentence-transformers folder has none, and the
            head's transform then starts fresh). Tokenise with `BertTokenizer.from_folder`.

    Returns:
        The model, built (all weights exist).
    """
    if init_checkpoint is not None:
        folder = Path(init_checkpoint)
        if (folder / HF_CONFIG_FILE).exists():
            loaded = load_hf_folder(folder, with_mlm_head=True, attention_mode="unilm")
        elif (folder / GOOGLE_CONFIG_FILE).exists():
            loaded = load_tf_checkpoint(folder, with_mlm_head=True, attention_mode="unilm")
        else:
            raise FileNotFoundError(
                f"{folder} holds neither {HF_CONFIG_FILE} nor {GOOGLE_CONFIG_FILE}"
            )
        return UniLMSeq2Seq(loaded.backbone, loaded.mlm_head, name="unilm_seq2seq")
    if config is None:
        raise ValueError("give a BertConfig (small_qa_config) or an init_checkpoint folder")
    backbone = BertBackbone.from_bert_config(config, attention_mode="unilm")
    return UniLMSeq2Seq(backbone, name="unilm_seq2seq")
