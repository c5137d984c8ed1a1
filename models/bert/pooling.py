"""Sentence embeddings from token states: masked mean pooling and L2 normalisation.

This is the pooling of sentence-transformers' all-MiniLM-L6-v2 (`1_Pooling`: mean of the token
states over real tokens, then its `Normalize` module), as in Reimers & Gurevych, "Sentence-BERT",
EMNLP 2019, Sec. 3 ("MEAN strategy").
"""

from __future__ import annotations

import tensorflow as tf

# Floor on the token count and the norm, so that an all-padding row gives zeros, not NaN
# (sentence-transformers clamps the count at 1e-9 and F.normalize the norm at 1e-12).
COUNT_FLOOR = 1e-9
NORM_FLOOR = 1e-12


def masked_mean_pool(sequence_output: tf.Tensor, padding_mask: tf.Tensor) -> tf.Tensor:
    """Mean of the token states over real tokens.

    Args:
        sequence_output: [B, L, H] token states.
        padding_mask: [B, L] 1 for real tokens, 0 for padding.

    Returns:
        [B, H] mean over the positions where padding_mask is 1.
    """
    weights = tf.cast(padding_mask, sequence_output.dtype)[:, :, tf.newaxis]
    total = tf.reduce_sum(sequence_output * weights, axis=1)
    count = tf.maximum(tf.reduce_sum(weights, axis=1), COUNT_FLOOR)
    return total / count


def packed_mean_pool(
    sequence_output: tf.Tensor, sequence_ids: tf.Tensor, texts_per_row: int
) -> tf.Tensor:
    """Mean of the token states of each text packed into a row (`masks.packed_mask`).

    Args:
        sequence_output: [B, L, H] token states.
        sequence_ids: [B, L] 1..texts_per_row for the row's texts, 0 for padding.
        texts_per_row: K, the most texts a row may hold (a static size: XLA compiles it in).

    Returns:
        [B, K, H]: slot k - 1 holds the mean of text k's states; slots of absent texts are 0.
    """
    # One-hot membership [B, L, K] (padding, id 0, belongs to no slot): one matmul pools
    # every text of the row, where a gather or segment sum would want a dynamic shape.
    members = tf.one_hot(sequence_ids - 1, texts_per_row, dtype=sequence_output.dtype)
    total = tf.einsum("blk,blh->bkh", members, sequence_output)
    count = tf.maximum(tf.reduce_sum(members, axis=1), COUNT_FLOOR)[:, :, tf.newaxis]
    return total / count


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """Rows of x scaled to unit L2 norm (zero rows stay zero)."""
    norm = tf.norm(x, axis=-1, keepdims=True)
    return x / tf.maximum(norm, NORM_FLOOR)


def sentence_embedding(
    sequence_output: tf.Tensor, padding_mask: tf.Tensor, normalize: bool = True
) -> tf.Tensor:
    """[B, L, H] token states -> [B, H] mean-pooled (and by default unit-norm) sentence vectors."""
    pooled = masked_mean_pool(sequence_output, padding_mask)
    return l2_normalize(pooled) if normalize else pooled
