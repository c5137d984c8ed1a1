"""BERT encoder family: backbone, masks, tied MLM head, checkpoint readers, tokenizer, pooling;
the cached language-model task that QA and generation share (`bert_lm`, `kv_cache`) and its
SavedModel reader (`lm_reader`).

The names below import their module on first use (`models.lazy_exports`): the tokenizer and the
sentence encoder's SavedModel reader (`models.bert.encoder_reader`) run without the Keras model
code.
"""

from typing import Any

from models.lazy_exports import LazyExports

_EXPORTS = LazyExports(
    __name__,
    {
        "models.bert.bert_backbone": ["BertBackbone", "BertConfig"],
        "models.bert.bert_layers": [
            "BertEmbeddings", "BertSelfAttention", "BertTransformerLayer",
        ],
        "models.bert.checkpoint": ["LoadedBert", "load_hf_folder", "load_tf_checkpoint"],
        "models.bert.masks": [
            "build_attention_mask", "causal_mask", "combine_masks", "mask_to_bias", "padding_mask",
            "unilm_mask",
        ],
        "models.bert.mlm_head": ["BertMaskedLMHead"],
        "models.bert.pooling": ["l2_normalize", "masked_mean_pool", "sentence_embedding"],
        "models.bert.tokenizer": ["BertTokenizer", "EncodedBatch"],
    },
)  # fmt: skip
__all__ = _EXPORTS.names


def __getattr__(name: str) -> Any:
    return _EXPORTS.resolve(name)
