"""Samples in data units by the flow's fixed-point inverse: what the `sample` signature returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf

from models.density.preprocessing import Preprocessing
from models.density.residual_block import (
    DEFAULT_INVERSE_MAX_ITERATIONS,
    DEFAULT_INVERSE_TOLERANCE,
)
from models.density.signatures import ITERATIONS_KEY, LAST_CHANGE_KEY, SAMPLES_KEY

if TYPE_CHECKING:
    from models.density.iresnet_flow import IResNetFlow


def sample_data(
    flow: IResNetFlow,
    preprocessing: Preprocessing,
    num_samples: tf.Tensor | int,
    seed: tf.Tensor | int,
    tolerance: float = DEFAULT_INVERSE_TOLERANCE,
    max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
) -> dict[str, tf.Tensor]:
    """What the `sample` signature returns: x = F^{-1}(z), z ~ N(0, I) from `seed`, in data units.

    Args:
        flow: the density model.
        preprocessing: data units -> the flow's input.
        num_samples: N.
        seed: the seed of z (stateless: the same seed, the same samples).
        tolerance: the fixed-point inverse's tolerance per block.
        max_iterations: its most steps per block.
    """
    seed = tf.cast(seed, tf.int64)
    shape = tf.stack([tf.cast(num_samples, tf.int32), preprocessing.input_dim])
    z = tf.random.stateless_normal(shape, tf.stack([seed, tf.constant(0, tf.int64)]))
    inverse = flow.inverse(tf.cast(z, flow.compute_dtype), tolerance, max_iterations)
    samples = preprocessing.to_data(preprocessing.inverse(inverse.x))
    return {
        SAMPLES_KEY: tf.cast(samples, tf.float32),
        ITERATIONS_KEY: tf.cast(inverse.iterations, tf.int32),
        LAST_CHANGE_KEY: tf.cast(inverse.last_changes, tf.float32),
    }
