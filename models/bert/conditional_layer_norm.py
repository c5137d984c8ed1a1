"""Conditional Layer Normalization (Su, "基于Conditional Layer Normalization的条件文本生成",
kexue.fm/archives/7124, 2019; bert4keras' `LayerNormalization(conditional=True)`).

A LayerNorm whose gain and bias depend on a condition vector c (a class label's embedding, image or
sentence features):

    y = (gamma + c W_gamma) * (x - mean(x)) / sqrt(var(x) + eps) + (beta + c W_beta)

W_gamma and W_beta are bias-free dense layers initialised to zero, so a model whose LayerNorms are
all conditional starts out computing exactly what the unconditioned model computes, whatever the
condition: a pretrained checkpoint's gamma and beta load unchanged and training only has to learn
how the condition moves them. An optional hidden dense layer (no bias) maps c to a smaller width
first, when c is wide (bert4keras' `hidden_units`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kexue_bert")
class ConditionalLayerNorm(keras.layers.Layer):
    """LayerNorm over the last axis with gamma and beta shifted by projections of a condition.

    Args:
        epsilon: added to the variance.
        condition_size: width C of the condition vectors; None makes a plain LayerNorm.
        hidden_units: width of the optional hidden projection of the condition.

    Call:
        x: [B, ..., H] states; condition: [B, C] or None. Without a condition the layer is the
        plain LayerNorm (gamma, beta), which is also what it computes with one while W_gamma and
        W_beta are still zero.

    Example:
        >>> norm = ConditionalLayerNorm(1e-12, condition_size=16)
        >>> y = norm(x, condition=c)            # x [B, L, H], c [B, 16]
    """

    def __init__(
        self,
        epsilon: float = 1e-12,
        condition_size: int | None = None,
        hidden_units: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.condition_size = condition_size
        self.hidden_units = hidden_units
        self.hidden_dense: keras.layers.Dense | None = None
        self.gamma_dense: keras.layers.Dense | None = None
        self.beta_dense: keras.layers.Dense | None = None

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[-1])
        self.width = width
        # Named as Keras' LayerNormalization's, so checkpoint loaders assign them alike.
        self.gamma = self.add_weight(shape=(width,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(width,), initializer="zeros", name="beta")
        if self.condition_size is not None:
            projected = self.condition_size
            if self.hidden_units is not None:
                self.hidden_dense = keras.layers.Dense(
                    self.hidden_units,
                    use_bias=False,
                    kernel_initializer="glorot_uniform",
                    name="condition_hidden",
                )
                self.hidden_dense.build((None, self.condition_size))
                projected = self.hidden_units
            # Zero-initialised: the conditioned model starts as the unconditioned one.
            self.gamma_dense = keras.layers.Dense(
                width, use_bias=False, kernel_initializer="zeros", name="condition_gamma"
            )
            self.beta_dense = keras.layers.Dense(
                width, use_bias=False, kernel_initializer="zeros", name="condition_beta"
            )
            self.gamma_dense.build((None, projected))
            self.beta_dense.build((None, projected))
        self.built = True

    def call(self, x: tf.Tensor, condition: tf.Tensor | None = None) -> tf.Tensor:
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        normed = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        gamma: tf.Tensor = tf.convert_to_tensor(self.gamma)
        beta: tf.Tensor = tf.convert_to_tensor(self.beta)
        if condition is not None and self.condition_size is not None:
            assert self.gamma_dense is not None and self.beta_dense is not None
            c = tf.cast(condition, x.dtype)
            if self.hidden_dense is not None:
                c = self.hidden_dense(c)
            # [B, H] -> [B, 1, ..., 1, H]: one shift per row, the same at every position.
            shape = tf.concat(
                [tf.shape(c)[:1], tf.ones([tf.rank(x) - 2], tf.int32), [self.width]], axis=0
            )
            gamma = gamma + tf.reshape(self.gamma_dense(c), shape)
            beta = beta + tf.reshape(self.beta_dense(c), shape)
        return normed * gamma + beta

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            epsilon=self.epsilon,
            condition_size=self.condition_size,
            hidden_units=self.hidden_units,
        )
        return config


def make_layer_norm(
    epsilon: float,
    name: str,
    condition_size: int | None = None,
    hidden_units: int | None = None,
) -> keras.layers.Layer:
    """Keras' LayerNormalization, or a `ConditionalLayerNorm` when there is a condition."""
    if condition_size is None:
        return keras.layers.LayerNormalization(epsilon=epsilon, name=name)
    return ConditionalLayerNorm(epsilon, condition_size, hidden_units, name=name)


def apply_layer_norm(
    norm: keras.layers.Layer, x: tf.Tensor, condition: tf.Tensor | None
) -> tf.Tensor:
    """`norm(x)`, passing the condition on to a conditional LayerNorm."""
    if isinstance(norm, ConditionalLayerNorm):
        return norm(x, condition=condition)
    return norm(x)
