"""Probes of the log-determinant series that every row of a batch shares, drawn without state."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


class RowSharedStatelessGenerator:
    """Stands in for a `tf.random.Generator` in the series estimator, without state.

    Each call draws from `tf.random.stateless_*` with the seed (seed, call number), so a traced
    function gives the same probes every time it runs and concurrent calls cannot disturb each
    other (a stateful generator would advance, or race, between requests). The probes are drawn
    once per probe copy and broadcast over the rows of the batch: rows sharing probes makes each
    row's estimate independent of the batch it is in; Hutchinson's estimator stays unbiased per
    row, only the errors of different rows become correlated.

    Args:
        seed: the fixed seed.
        batch_size: B, the rows of the batch the estimator tiles into `n_probes * B` rows.
    """

    def __init__(self, seed: int, batch_size: tf.Tensor | int) -> None:
        self.seed = int(seed)
        self.batch_size = tf.maximum(tf.cast(batch_size, tf.int32), 1)
        self.calls = 0

    def _next_seed(self) -> tf.Tensor:
        seed = tf.constant([self.seed, self.calls], tf.int64)
        self.calls += 1
        return seed

    def _shapes(self, shape: Any) -> tuple[tf.Tensor, tf.Tensor]:
        shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)
        copies = shape[0] // self.batch_size
        draw_shape = tf.concat([[copies, 1], shape[1:]], axis=0)
        return shape, draw_shape

    def _broadcast(self, draw: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
        full = tf.concat([[tf.shape(draw)[0], self.batch_size], shape[1:]], axis=0)
        return tf.reshape(tf.broadcast_to(draw, full), shape)

    def normal(self, shape: Any, dtype: tf.DType = tf.float32) -> tf.Tensor:
        shape, draw_shape = self._shapes(shape)
        draw = tf.random.stateless_normal(draw_shape, self._next_seed(), dtype=dtype)
        return self._broadcast(draw, shape)

    def uniform(
        self, shape: Any, minval: Any = 0, maxval: Any = None, dtype: tf.DType = tf.float32
    ) -> tf.Tensor:
        shape, draw_shape = self._shapes(shape)
        draw = tf.random.stateless_uniform(
            draw_shape, self._next_seed(), minval=minval, maxval=maxval, dtype=dtype
        )
        return self._broadcast(draw, shape)
