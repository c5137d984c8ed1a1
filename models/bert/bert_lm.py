"""The BERT language-model task that QA and generation share: a `BertBackbone` under a left-to-right
mask, the tied MLM head as the output layer, and optionally a condition on every LayerNorm.

The logits at position t are the distribution of token t + 1 (`next_token_loss`). What differs
between the two families is small and lives in their subclasses: the mask (`attention_mode`:
"unilm" for QA, whose source is read bidirectionally; "causal" for generation), the segment of the
tokens the model writes (`target_segment`), the inputs it reads (`model_inputs`), and whether it
takes a condition (generation's labels or vectors, through `ConditionalLayerNorm`s). The cached
decoding of both is `models.bert.kv_cache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import keras
import tensorflow as tf

from models.bert.bert_backbone import AttentionMode, BertBackbone, BertConfig
from models.bert.checkpoint import (
    GOOGLE_CONFIG_FILE,
    HF_CONFIG_FILE,
    LoadedBert,
    load_hf_folder,
    load_tf_checkpoint,
)
from models.bert.lm_signatures import CONDITION_KEY, LABEL_IDS
from models.bert.masks import build_attention_mask
from models.bert.mlm_head import BertMaskedLMHead, next_token_loss

LOSS_MASK_KEY = "loss_mask"
LABEL_IDS_KEY = LABEL_IDS


def lm_config(
    vocab_size: int, max_position: int, shape: dict[str, Any], **overrides: Any
) -> BertConfig:
    """A `BertConfig` of a family's from-scratch `shape` (hidden size, layers, heads, feed-forward
    width), with any field overridden."""
    return BertConfig(
        **{"vocab_size": vocab_size, "max_position": max_position, **shape, **overrides}
    )


def load_pretrained_bert(folder: str | Path, **options: Any) -> LoadedBert:
    """A Hugging Face folder (config.json, model.safetensors, vocab.txt) or Google's TF checkpoint
    folder (bert_config.json, bert_model.ckpt.*, vocab.txt), with `load_hf_folder`'s options."""
    folder = Path(folder)
    if (folder / HF_CONFIG_FILE).exists():
        return load_hf_folder(folder, **options)
    if (folder / GOOGLE_CONFIG_FILE).exists():
        return load_tf_checkpoint(folder, **options)
    raise FileNotFoundError(f"{folder} holds neither {HF_CONFIG_FILE} nor {GOOGLE_CONFIG_FILE}")


class BertLM(keras.Model):
    """BERT + tied MLM head, a next-token LM: {`model_inputs`, and for a conditioned model
    "label_ids" ([B] int32) or "condition" ([B, C] float32)} -> next-token logits [B, L, V].

    `fit` needs no labels: give it dicts that also hold `loss_mask` ([B, L], 1 on the tokens to
    predict) and the loss is `next_token_loss`. Not used directly: `UniLMSeq2Seq` (QA) and
    `ConditionalLM` (generation) say which mask, inputs and condition.

    Args:
        backbone: a `BertBackbone` with the subclass's `attention_mode`.
        mlm_head: its tied head, conditioned as the backbone is (a fresh one when None).
        labels: class names, in condition order, of a conditioned model that embeds `label_ids`
            itself (a [len(labels), condition_size] table); None: the caller gives condition
            vectors (or the model has no condition).

    Example:
        >>> from models.qa.seq2seq import build_qa_model, small_qa_config
        >>> model = build_qa_model(small_qa_config(vocab_size=100, max_position=64))
        >>> logits = model({"token_ids": ids, "segment_ids": segs, "padding_mask": pad})
    """

    attention_mode: ClassVar[AttentionMode]
    # The inputs besides the condition; without "segment_ids" every token is segment 0.
    model_inputs: ClassVar[tuple[str, ...]] = ("token_ids", "padding_mask")
    # Segment of the tokens the model writes (and `kv_cache.step` feeds back).
    target_segment: ClassVar[int] = 0
    # Whether the backbone must have conditional LayerNorms (generation's).
    requires_condition: ClassVar[bool] = False

    def __init__(
        self,
        backbone: BertBackbone,
        mlm_head: BertMaskedLMHead | None = None,
        labels: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if backbone.attention_mode != self.attention_mode:
            raise ValueError(f"the backbone's attention_mode is {backbone.attention_mode!r}")
        if self.requires_condition and backbone.condition_size is None:
            raise ValueError("the backbone has no condition_size (plain LayerNorms)")
        self.backbone = backbone
        # The [CLS] pooler feeds nothing here; frozen, it gets no (missing-gradient) updates.
        backbone.pooler.trainable = False
        config = backbone.config
        self.condition_size = (
            None if backbone.condition_size is None else int(backbone.condition_size)
        )
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
            if self.condition_size is None:
                raise ValueError("labels need a backbone with a condition_size")
            if len(set(self.labels)) != len(self.labels) or not self.labels:
                raise ValueError(f"labels must be distinct and not empty: {self.labels}")
            self.label_embedding = keras.layers.Embedding(
                len(self.labels), self.condition_size, name="label_embedding"
            )
            self.label_embedding.build((None,))

    @property
    def config(self) -> BertConfig:
        return self.backbone.config

    @property
    def cache_layers(self) -> int:
        """Entries on the key/value cache's first axis (`models.bert.kv_cache`): one per encoder
        layer, and any a subclass keeps there for its output layer."""
        return self.config.num_layers

    def prefill_log_probs(
        self,
        states: tf.Tensor,
        token_ids: tf.Tensor,
        lengths: tf.Tensor,
        cache: tf.Tensor,
        condition: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """`kv_cache.prefill`'s output layer: log-probabilities [B, V] of the token after each
        prefix, from its final states [B, L, H], and the cache (a subclass may add to it).

        Args:
            states: [B, L, H] the prefixes' final states.
            token_ids: [B, L] int32 the prefixes.
            lengths: [B] int32 real tokens per row.
            cache: the encoder's cache, `[num_layers, 2, B, heads, T, head_size]`.
            condition: [B, C] of a conditioned model.
        """
        # The last real token of each row predicts the first new one.
        last = tf.gather(states, lengths - 1, batch_dims=1)[:, tf.newaxis, :]
        logits = self.mlm_head(last, condition=condition)[:, 0, :]
        return tf.nn.log_softmax(logits, axis=-1), cache

    def step_log_probs(
        self, states: tf.Tensor, cache: tf.Tensor, condition: tf.Tensor | None = None
    ) -> tf.Tensor:
        """`kv_cache.step`'s output layer: [B, H] new tokens' final states -> log-probabilities
        [B, V] of the token after each (`cache`: after the step, `cache_layers` entries)."""
        logits = self.mlm_head(states[:, tf.newaxis, :], condition=condition)[:, 0, :]
        return tf.nn.log_softmax(logits, axis=-1)

    def condition_vectors(self, inputs: dict[str, Any]) -> tf.Tensor | None:
        """[B, C] condition: the labels' embeddings, or the given vectors (None: no condition)."""
        if self.condition_size is None:
            return None
        if self.label_embedding is not None and LABEL_IDS_KEY in inputs:
            return self.label_embedding(tf.cast(inputs[LABEL_IDS_KEY], tf.int32))
        if CONDITION_KEY not in inputs:
            raise KeyError(f"give {LABEL_IDS_KEY!r} (a labelled model) or {CONDITION_KEY!r}")
        return tf.cast(inputs[CONDITION_KEY], tf.float32)

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> tf.Tensor:
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        padding = tf.cast(inputs["padding_mask"], tf.int32)
        if "segment_ids" in self.model_inputs and "segment_ids" in inputs:
            segment_ids = tf.cast(inputs["segment_ids"], tf.int32)
        else:
            segment_ids = tf.zeros_like(token_ids)
        condition = self.condition_vectors(inputs)
        mask = build_attention_mask(padding, segment_ids, self.attention_mode)
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
        loss = next_token_loss(y_pred, x["token_ids"], x[LOSS_MASK_KEY])
        if self.losses:
            loss += tf.add_n(self.losses)
        return loss

    def get_config(self) -> dict[str, Any]:
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }
        if self.condition_size is not None:
            config["labels"] = self.labels
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> BertLM:
        config = dict(config)
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(backbone, **config)
