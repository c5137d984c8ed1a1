"""Attention masks: visibility tables written out by hand."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.bert.masks import (
    MASK_NEGATIVE,
    causal_mask,
    combine_masks,
    mask_to_bias,
    padding_mask,
    unilm_mask,
)


def test_unilm_mask_matches_hand_written_table() -> None:
    # Source "a b c" (segment 0), target "x y" (segment 1): cumsum = 0 0 0 1 2.
    segments = tf.constant([[0, 0, 0, 1, 1]])
    expected = np.array(
        [
            # a  b  c  x  y
            [1, 1, 1, 0, 0],  # a: the whole source, no target
            [1, 1, 1, 0, 0],  # b
            [1, 1, 1, 0, 0],  # c
            [1, 1, 1, 1, 0],  # x: the source and itself
            [1, 1, 1, 1, 1],  # y: the source, x and itself
        ],
        bool,
    )
    np.testing.assert_array_equal(unilm_mask(segments).numpy()[0], expected)


def test_unilm_mask_with_padding_hides_padded_keys() -> None:
    # "a b | x y [PAD]": the pad keeps the target's cumsum (0 0 1 2 2), so UniLM alone would let
    # y see it; the padding mask removes it.
    segments = tf.constant([[0, 0, 1, 1, 0]])
    real = tf.constant([[1, 1, 1, 1, 0]])
    alone = unilm_mask(segments).numpy()[0]
    assert alone[3, 4]  # y would see the pad
    combined = combine_masks(unilm_mask(segments), padding_mask(real))
    assert combined is not None
    expected = np.array(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(combined.numpy()[0], expected)


def test_causal_mask_is_lower_triangular_per_batch_row() -> None:
    mask = causal_mask(2, 4).numpy()
    assert mask.shape == (2, 4, 4)
    expected = np.array(
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]],
        bool,
    )
    np.testing.assert_array_equal(mask[0], expected)
    np.testing.assert_array_equal(mask[1], expected)


def test_padding_mask_hides_padded_keys_in_every_row() -> None:
    mask = padding_mask(tf.constant([[1, 1, 0], [1, 0, 0]])).numpy()
    np.testing.assert_array_equal(mask[0], [[1, 1, 0]] * 3)
    np.testing.assert_array_equal(mask[1], [[1, 0, 0]] * 3)


def test_mask_to_bias_and_combine() -> None:
    bias = mask_to_bias(tf.constant([[[True, False]]])).numpy()
    assert bias.shape == (1, 1, 1, 2)
    np.testing.assert_allclose(bias[0, 0, 0], [0.0, MASK_NEGATIVE])
    assert combine_masks(None, None) is None
    both = combine_masks(tf.constant([[[True, True]]]), None, tf.constant([[[False, True]]]))
    assert both is not None
    np.testing.assert_array_equal(both.numpy(), [[[False, True]]])
