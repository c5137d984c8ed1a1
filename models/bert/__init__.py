"""BERT encoder family: backbone, masks, tied MLM head, checkpoint readers, tokenizer, pooling;
the cached language-model task that QA and generation share (`bert_lm`, `kv_cache`), and its
SavedModel reader (`lm_reader`).

The names below load on first use, so that importing a module of this package (the tokenizer,
the SavedModel reader) does not import the Keras model code with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BertBackbone": "bert_backbone",
    "BertConfig": "bert_backbone",
    "build_attention_mask": "masks",
    "BertEmbeddings": "bert_layers",
    "BertSelfAttention": "bert_layers",
    "BertTransformerLayer": "bert_layers",
    "LoadedBert": "checkpoint",
    "load_hf_folder": "checkpoint",
    "load_tf_checkpoint": "checkpoint",
    "causal_mask": "masks",
    "combine_masks": "masks",
    "mask_to_bias": "masks",
    "padding_mask": "masks",
    "unilm_mask": "masks",
    "BertMaskedLMHead": "mlm_head",
    "l2_normalize": "pooling",
    "masked_mean_pool": "pooling",
    "sentence_embedding": "pooling",
    "BertTokenizer": "tokenizer",
    "EncodedBatch": "tokenizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
