"""Activation normalisation with data-dependent initialisation (Kingma & Dhariwal, "Glow:
Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018, Sec. 3.1; used between the blocks
of i-ResNet and Residual Flows).

An invertible per-feature affine map

    y = (x + b) * exp(s),    log |det dy/dx| = sum_j s_j  (the same for every example),

whose b and s are set from the first batch it sees so that y has zero mean and unit variance per
feature: b = -mean(x), s = -log(std(x)). After that they are ordinary trainable weights. A
log-scale rather than a scale keeps the map invertible whatever the optimiser does.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

# Added to the batch variance before the log, so a constant feature gets a finite scale.
ACTNORM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="kexue_iresnet")
class ActNorm(keras.layers.Layer):
    """Per-feature y = (x + b) * exp(s), initialised from the first batch; over the last axis.

    Args:
        epsilon: added to the first batch's variance.

    Call:
        x: [B, ..., D]. The first call (or `initialize`) sets b and s from x's statistics over all
        axes but the last; a flag weight records this, so a saved and reloaded layer is not
        initialised again.

    Example:
        >>> norm = ActNorm()
        >>> y = norm(x)                      # first batch: y has zero mean, unit variance
        >>> logdet = norm.log_det(x)         # [B], each sum(s)
    """

    def __init__(self, epsilon: float = ACTNORM_EPSILON, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[-1])
        self.bias = self.add_weight(shape=(width,), initializer="zeros", name="bias")
        self.log_scale = self.add_weight(shape=(width,), initializer="zeros", name="log_scale")
        self.initialized = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="initialized"
        )
        self.built = True

    def initialize(self, x: tf.Tensor) -> None:
        """Set b and s from a batch: zero mean, unit variance per feature afterwards."""
        if not self.built:
            self.build(x.shape)
        x = tf.cast(x, self.variable_dtype)
        axes = list(range(len(x.shape) - 1))
        mean, variance = tf.nn.moments(x, axes=axes)
        self.bias.assign(-mean)
        self.log_scale.assign(-0.5 * tf.math.log(variance + self.epsilon))
        self.initialized.assign(1)

    def _maybe_initialize(self, x: tf.Tensor) -> None:
        if tf.executing_eagerly():
            if int(self.initialized.numpy()) == 0:
                self.initialize(x)
            return

        if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
            # A replica of a distributed step cannot assign mirrored variables inside control
            # flow; a distributed job initialises explicitly (`initialize`) before its first step.
            return

        # Inside tf.function the flag is only known at run time.
        def initialize() -> tf.Tensor:
            self.initialize(x)
            return tf.constant(True)

        tf.cond(tf.equal(self.initialized, 0), initialize, lambda: tf.constant(False))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        self._maybe_initialize(x)
        return (x + self.bias) * tf.exp(self.log_scale)

    def inverse(self, y: tf.Tensor) -> tf.Tensor:
        """x = y * exp(-s) - b."""
        return y * tf.exp(-tf.convert_to_tensor(self.log_scale)) - self.bias

    def log_det(self, x: tf.Tensor) -> tf.Tensor:
        """log |det dy/dx| = sum_j s_j per example: [B] (x only gives the batch size)."""
        per_position = tf.reduce_sum(self.log_scale)
        # With [B, ..., D] inputs the map acts on every position, so each adds sum(s).
        positions = tf.reduce_prod(tf.shape(x)[1:-1])
        return tf.fill(tf.shape(x)[:1], per_position * tf.cast(positions, per_position.dtype))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config
