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
unconditioned LM (or the pretrained checkpoint) and learns what the condition changes. The model
is the shared BERT LM task (`models.bert.bert_lm.BertLM`) under the causal mask, with a condition;
what is generation's own is the decoding rule (`models.generation.decoding`, `sampling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from models.bert.bert_backbone import BertBackbone, BertConfig
from models.bert.bert_lm import (
    LABEL_IDS_KEY,
    LOSS_MASK_KEY,
    BertLM,
    lm_config,
    load_pretrained_bert,
)
from models.bert.lm_signatures import CONDITION_KEY
from models.bert.mlm_head import next_token_loss

# bert4keras' conditional LM embeds its labels in 128 dimensions.
DEFAULT_LABEL_EMBEDDING_SIZE = 128
# A small LM for training from scratch on a CPU.
SMALL_HIDDEN_SIZE = 256
SMALL_NUM_LAYERS = 4
SMALL_NUM_HEADS = 4
SMALL_INTERMEDIATE_SIZE = 1024
SMALL_SHAPE = {
    "hidden_size": SMALL_HIDDEN_SIZE,
    "num_layers": SMALL_NUM_LAYERS,
    "num_heads": SMALL_NUM_HEADS,
    "intermediate_size": SMALL_INTERMEDIATE_SIZE,
}
MODEL_INPUTS = ("token_ids", "padding_mask")

__all__ = [
    "CONDITION_KEY",
    "ConditionalLM",
    "DEFAULT_LABEL_EMBEDDING_SIZE",
    "LABEL_IDS_KEY",
    "LOSS_MASK_KEY",
    "MODEL_INPUTS",
    "build_generation_model",
    "lm_loss",
    "small_lm_config",
]


def small_lm_config(vocab_size: int, max_position: int, **overrides: Any) -> BertConfig:
    """The from-scratch LM's shape (used without an initial checkpoint).

    Args:
        vocab_size: size of the vocabulary built from the training data.
        max_position: the longest sequence, `[CLS]` and `[SEP]` included.
        **overrides: any other `BertConfig` field.
    """
    return lm_config(vocab_size, max_position, SMALL_SHAPE, **overrides)


# Every real token after [CLS] is a target, the closing [SEP] included.
lm_loss = next_token_loss


@keras.saving.register_keras_serializable(package="kexue_generation")
class ConditionalLM(BertLM):
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

    attention_mode = "causal"
    model_inputs = MODEL_INPUTS
    requires_condition = True


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
        loaded = load_pretrained_bert(
            init_checkpoint,
            with_mlm_head=True,
            attention_mode="causal",
            condition_size=condition_size,
            condition_hidden_units=condition_hidden_units,
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
