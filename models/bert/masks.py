"""Attention masks for a BERT encoder: padding, causal (left-to-right LM) and UniLM seq2seq.

Every mask is a [B, L, L] boolean tensor `m` with `m[b, i, j]` True when query position i may
attend to key position j. Masks combine with `tf.logical_and` (`combine_masks`); the attention
layer turns one into an additive bias with `mask_to_bias`.

The UniLM mask is the one of Dong et al., "Unified Language Model Pre-training for Natural
Language Understanding and Generation" (NeurIPS 2019), Fig. 1 "Seq-to-Seq LM", in the form
bert4keras builds it from segment ids: with s = cumsum(segment_ids) along the sequence, position
i sees position j iff s[j] <= s[i]. The source segment (segment 0) has s = 0 and so sees all of
itself and nothing of the target; each target token (segment 1) sees the whole source and the
target up to and including itself.
"""

from __future__ import annotations

import tensorflow as tf

# Added to the logits of hidden keys. Large enough that exp() underflows to exactly 0 in
# float32 softmax, small enough not to overflow when added to a logit (float16 max is 65504).
MASK_NEGATIVE = -1e4


def padding_mask(mask: tf.Tensor) -> tf.Tensor:
    """Bidirectional attention over the real tokens.

    Args:
        mask: [B, L] 1 (or True) for real tokens, 0 for padding.

    Returns:
        [B, L, L] bool: every query sees every real key.
    """
    keys = tf.cast(mask, tf.bool)[:, tf.newaxis, :]
    length = tf.shape(mask)[1]
    return tf.broadcast_to(keys, [tf.shape(mask)[0], length, length])


def causal_mask(batch_size: int | tf.Tensor, length: int | tf.Tensor) -> tf.Tensor:
    """Left-to-right language model mask: position i sees positions j <= i.

    Args:
        batch_size: B.
        length: L.

    Returns:
        [B, L, L] bool, lower triangular in the last two axes.
    """
    positions = tf.range(length)
    lower = positions[tf.newaxis, :] <= positions[:, tf.newaxis]
    return tf.broadcast_to(lower[tf.newaxis], [batch_size, length, length])


def unilm_mask(segment_ids: tf.Tensor) -> tf.Tensor:
    """UniLM seq2seq mask (Dong et al. 2019): i sees j iff cumsum(segment)[j] <= cumsum(segment)[i].

    Combine with `padding_mask` so that no query sees padded keys (padding after the target has
    the target's cumsum and would otherwise be visible to the last target tokens' successors).

    Args:
        segment_ids: [B, L] 0 for the source (question and passage), 1 for the target (answer).

    Returns:
        [B, L, L] bool.
    """
    cumulative = tf.cumsum(tf.cast(segment_ids, tf.int32), axis=1)
    return cumulative[:, tf.newaxis, :] <= cumulative[:, :, tf.newaxis]


def build_attention_mask(
    padding: tf.Tensor, segment_ids: tf.Tensor, attention_mode: str
) -> tf.Tensor:
    """The [B, L, L] mask of `attention_mode`, always combined with the padding mask."""
    mask = padding_mask(padding)
    if attention_mode == "causal":
        mask = tf.logical_and(mask, causal_mask(tf.shape(padding)[0], tf.shape(padding)[1]))
    elif attention_mode == "unilm":
        mask = tf.logical_and(mask, unilm_mask(segment_ids))
    return mask


def packed_mask(sequence_ids: tf.Tensor) -> tf.Tensor:
    """Block-diagonal attention for several texts packed into one row.

    Each text sees all of itself and nothing else, so a row holding texts one after another
    gives every text the states it has alone in a row of its own (with its own positions,
    restarting at 0: `BertEmbeddings`' `position_ids`). Padding (id 0) sees only padding, which
    keeps every softmax row with at least one key.

    Args:
        sequence_ids: [B, L] int, 1, 2, ... for the first, second, ... text of the row; 0 for
            padding.

    Returns:
        [B, L, L] bool: i sees j iff sequence_ids[i] == sequence_ids[j].
    """
    return tf.equal(sequence_ids[:, :, tf.newaxis], sequence_ids[:, tf.newaxis, :])


def combine_masks(*masks: tf.Tensor | None) -> tf.Tensor | None:
    """Logical AND of the masks given; None entries are skipped, and all None gives None."""
    present = [tf.cast(m, tf.bool) for m in masks if m is not None]
    if not present:
        return None
    combined = present[0]
    for m in present[1:]:
        combined = tf.logical_and(combined, m)
    return combined


def mask_to_bias(mask: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """[B, L, L] bool (or 0/1) mask -> [B, 1, L, L] additive attention bias (0 or MASK_NEGATIVE).

    The extra axis broadcasts over attention heads.

    Args:
        mask: [B, Lq, Lk] True (or 1) where attention is allowed.
        dtype: dtype of the attention logits the bias is added to.
    """
    allowed = tf.cast(mask, dtype)
    return ((1.0 - allowed) * tf.constant(MASK_NEGATIVE, dtype))[:, tf.newaxis, :, :]
