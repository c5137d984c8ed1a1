"""What the writers of QA's and generation's SavedModels share: the input specs and the vocabulary
asset. The signatures themselves are each family's (`models.qa.export`, `models.generation.export`);
their names are in `models.bert.lm_signatures`.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from models.bert.bert_backbone import BertConfig
from models.bert.lm_signatures import CACHE_KEY, CONDITION_KEY
from models.bert.tokenizer import VOCAB_FILE


def vocab_asset(vocab_path: str | os.PathLike[str]) -> tf.saved_model.Asset:
    """The model's vocab.txt, copied into the SavedModel's `assets/`."""
    if Path(vocab_path).name != VOCAB_FILE:
        raise ValueError(f"the vocabulary must be a file named {VOCAB_FILE}: {vocab_path}")
    return tf.saved_model.Asset(str(vocab_path))


def ids_spec(name: str, rank: int) -> tf.TensorSpec:
    """int32 ids of any shape of `rank` (B, and L for rank 2)."""
    return tf.TensorSpec([None] * rank, tf.int32, name=name)


def cache_spec(config: BertConfig, layers: int | None = None) -> tf.TensorSpec:
    """[num_layers, 2, B, heads, T, head_size] float32, B and T left open (`layers`: the model's
    `cache_layers` when its output layer keeps entries there too)."""
    return tf.TensorSpec(
        [
            config.num_layers if layers is None else layers,
            2,
            None,
            config.num_heads,
            None,
            config.hidden_size // config.num_heads,
        ],
        tf.float32,
        name=CACHE_KEY,
    )


def condition_spec(condition_size: int) -> tf.TensorSpec:
    return tf.TensorSpec([None, condition_size], tf.float32, name=CONDITION_KEY)
