"""BERT encoder family: backbone, masks, tied MLM head, checkpoint readers, tokenizer, pooling."""

from models.bert.bert_backbone import BertBackbone, BertConfig, build_attention_mask
from models.bert.bert_layers import BertEmbeddings, BertSelfAttention, BertTransformerLayer
from models.bert.checkpoint import LoadedBert, load_hf_folder, load_tf_checkpoint
from models.bert.masks import causal_mask, combine_masks, mask_to_bias, padding_mask, unilm_mask
from models.bert.mlm_head import BertMaskedLMHead
from models.bert.pooling import l2_normalize, masked_mean_pool, sentence_embedding
from models.bert.tokenizer import BertTokenizer, EncodedBatch

__all__ = [
    "BertBackbone",
    "BertConfig",
    "BertEmbeddings",
    "BertMaskedLMHead",
    "BertSelfAttention",
    "BertTokenizer",
    "BertTransformerLayer",
    "EncodedBatch",
    "LoadedBert",
    "build_attention_mask",
    "causal_mask",
    "combine_masks",
    "l2_normalize",
    "load_hf_folder",
    "load_tf_checkpoint",
    "mask_to_bias",
    "masked_mean_pool",
    "padding_mask",
    "sentence_embedding",
    "unilm_mask",
]
