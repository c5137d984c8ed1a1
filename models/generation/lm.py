"""A conditional language model: BERT with a causal mask and the tied MLM head as the output
layer, every LayerNorm conditioned on a label or a vector (bert4keras'
`task_conditional_language_model.py`; Su, "基于Conditional Layer Normalization的条件文本生成",
kexue.fm/archives/7124).

A text is one sequence `[CLS] text [SEP]`, all segment 0; the logits at position t are the
distribution of token t + 1, and the loss covers every token after [CLS], the closing [SEP]
included, so that the model learns where a text ends. The condition is a [B, C] vector: a class
label's row of a learned embedding table (labels named in the manifest), or a vector the caller
gives (image or sentence features). It reaches the model only through the conditional LayerNorms
(`models.bert.conditional_layer_norm`), whose projections start at zero: the model starts as the
unconditioned LM (or the pretrained checkpoint) and learns what the condition changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from models.bert.bert_backbone import BertBackbone, BertConfig, build_attention_mask
from models.bert.checkpoint import (
    GOOGLE_CONFIG_FILE,
    HF_CONFIG_FILE,
    load_hf_folder,
    load_tf_checkpoint,
)
from models.bert.mlm_head import BertMaskedLMHead, next_token_loss

# bert4keras' conditional LM embeds its labels in 128 dimensions.
DEFAULT_LABEL_EMBEDDING_SIZE = 128
# A small LM for training from scratch on a CPU.
SMALL_HIDDEN_SIZE = 256
SMALL_NUM_LAYERS = 4
SMALL_NUM_HEADS = 4
SMALL_INTERMEDIATE_SIZE = 1024
MODEL_INPUTS = ("token_ids", "padding_mask")
LOSS_MASK_KEY = "loss_mask"
LABEL_IDS_KEY = "label_ids"
CONDITION_KEY = "condition"


def small_lm_config(vocab_size: int, max_position: int, **overrides: Any) -> BertConfig:
    """The from-scratch LM's shape (used without an initial checkpoint).

    Args:
        vocab_size: size of the vocabulary built from the training data.
        max_position: the longest sequence, `[CLS]` and `[SEP]` included.
        **overrides: any other `BertConfig` field.
    """
    fields: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": SMALL_HIDDEN_SIZE,
        "num_layers": SMALL_NUM_LAYERS,
        "num_heads": SMALL_NUM_HEADS,
        "intermediate_size": SMALL_INTERMEDIATE_SIZE,
        "max_position": max_position,
    }
    fields.update(overrides)
    return BertConfig(**fields)


# Every real token after [CLS] is a target, the closing [SEP] included.
lm_loss = next_token_loss


@keras.saving.register_keras_serializable(package="kexue_generation")
class ConditionalLM(keras.Model):
    """Causal BERT LM with conditional LayerNorms: {"token_ids", "padding_mask" ([B, L] int32),
    and "label_ids" ([B] int32) or "condition" ([B, C] float32)} -> next-token logits [B, L, V].

    Args:
        backbone: a `BertBackbone` with `attention_mode="causal"` and a `condition_size`.
        mlm_head: its tied head, conditioned the same way (a fresh one when None).
        labels: class names, in condition order; the model then embeds `label_ids` itself
            (a [len(labels), condition_size] table). None: the caller gives condition vectors.

    Example:
        >>> model = build_generation_model(small_lm_config(100, 64), labels=["neg", "pos"])
        >>> logits = model({"token_ids": ids, "padding_mask": pad, "label_ids": [1, 0]})
    """

    def __init__(
        self,
        backbone: BertBackbone,
        mlm_head: BertMaskedLMHead | None = None,
        labels: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if backbone.attention_mode != "causal":
            raise ValueError(f"the backbone's attention_mode is {backbone.attention_mode!r}")
        if backbone.condition_size is None:
            raise ValueError("the backbone has no condition_size (plain LayerNorms)")
        self.backbone = backbone
        backbone.pooler.trainable = False
        config = backbone.config
        self.condition_size = int(backbone.condition_size)
        if mlm_head is None:
            mlm_head = BertMaskedLMHead(
                backbone.token_embedding,
                config.hidden_act,
                config.layer_norm_epsilon,
                backbone.condition_size,
                backbone.condition_hidden_units,
                name="mlm_head",
            )
        if not mlm_head.built:
            mlm_head.build((None, None, config.hidden_size))
        self.mlm_head = mlm_head
        self.labels = list(labels) if labels is not None else None
        self.label_embedding: keras.layers.Embedding | None = None
        if self.labels is not None:
            if len(set(self.labels)) != len(self.labels) or not self.labels:
                raise ValueError(f"labels must be distinct and not empty: {self.labels}")
            self.label_embedding = keras.layers.Embedding(
                len(self.labels), self.condition_size, name="label_embedding"
            )
            self.label_embedding.build((None,))

    @property
    def config(self) -> BertConfig:
        return self.backbone.config

    def condition_vectors(self, inputs: dict[str, Any]) -> tf.Tensor:
        """[B, C] condition: the labels' embeddings, or the given vectors."""
        if self.label_embedding is not None and LABEL_IDS_KEY in inputs:
            return self.label_embedding(tf.cast(inputs[LABEL_IDS_KEY], tf.int32))
        if CONDITION_KEY not in inputs:
            raise KeyError(f"give {LABEL_IDS_KEY!r} (a labelled model) or {CONDITION_KEY!r}")
        return tf.cast(inputs[CONDITION_KEY], tf.float32)

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> tf.Tensor:
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        padding = tf.cast(inputs["padding_mask"], tf.int32)
        segment_ids = tf.zeros_like(token_ids)
        condition = self.condition_vectors(inputs)
        mask = build_attention_mask(padding, segment_ids, "causal")
        states = self.backbone.encode(
            token_ids, segment_ids, mask, training=training, condition=condition
        )
        return self.mlm_head(states, condition=condition)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> tf.Tensor:
        loss = lm_loss(y_pred, x["token_ids"], x[LOSS_MASK_KEY])
        if self.losses:
            loss += tf.add_n(self.losses)
        return loss

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "labels": self.labels,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> ConditionalLM:
        config = dict(config)
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(backbone, **config)


def build_generation_model(
    config: BertConfig | None = None,
    *,
    labels: Sequence[str] | None = None,
    condition_size: int | None = None,
    condition_hidden_units: int | None = None,
    init_checkpoint: str | Path | None = None,
) -> ConditionalLM:
    """A conditional LM, from a pretrained BERT folder or from scratch.

    Args:
        config: the shape when starting from scratch (`small_lm_config`); ignored with
            `init_checkpoint`.
        labels: class names of a label-conditioned model (embedded in `condition_size`,
            default `DEFAULT_LABEL_EMBEDDING_SIZE`).
        condition_size: width of the condition vectors; required without `labels`.
        condition_hidden_units: the conditional LayerNorms' hidden projection width.
        init_checkpoint: a Hugging Face or Google BERT folder; its weights load into the
            backbone and MLM head, the conditions' projections start at zero.
    """
    if condition_size is None:
        if labels is None:
            raise ValueError("give labels, or the condition_size of a vector-conditioned model")
        condition_size = DEFAULT_LABEL_EMBEDDING_SIZE
    if init_checkpoint is not None:
        folder = Path(init_checkpoint)
        options: dict[str, Any] = {
            "with_mlm_head": True,
            "attention_mode": "causal",
            "condition_size": condition_size,
            "condition_hidden_units": condition_hidden_units,
        }
        if (folder / HF_CONFIG_FILE).exists():
            loaded = load_hf_folder(folder, **options)
        elif (folder / GOOGLE_CONFIG_FILE).exists():
            loaded = load_tf_checkpoint(folder, **options)
        else:
            raise FileNotFoundError(
                f"{folder} holds neither {HF_CONFIG_FILE} nor {GOOGLE_CONFIG_FILE}"
            )
        return ConditionalLM(loaded.backbone, loaded.mlm_head, labels, name="conditional_lm")
    if config is None:
        raise ValueError("give a BertConfig (small_lm_config) or an init_checkpoint folder")
    backbone = BertBackbone.from_bert_config(
        config,
        attention_mode="causal",
        condition_size=condition_size,
        condition_hidden_units=condition_hidden_units,
    )
    return ConditionalLM(backbone, labels=labels, name="conditional_lm")
