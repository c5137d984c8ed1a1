"""1-Lipschitz activations for the residual branch g of an invertible residual block.

Lip(g) <= prod_i ||W_i||_2 only if every activation is 1-Lipschitz (Behrmann et al., "Invertible
Residual Networks", ICML 2019, Sec. 2). ELU (alpha = 1) is, since its slope lies in (0, 1]. Residual
Flows (Chen et al., "Residual Flows for Invertible Generative Modeling", NeurIPS 2019, Sec. 3.3)
replace it by LipSwish,

    LipSwish(x) = x * sigmoid(beta x) / 1.1,    beta = softplus(beta_raw) > 0,

because ELU's and ReLU's derivatives saturate at 1 exactly where |J_g| needs headroom, while Swish
keeps a smooth, non-monotone slope; |d/dx x sigmoid(beta x)| <= 1.0998 for every beta > 0, hence
the division by 1.1.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

# sup_x |d/dx x sigmoid(beta x)| = 1.0998 for every beta > 0 (Chen et al. 2019, Sec. 3.3).
LIPSWISH_SCALE = 1.1
# Residual Flows' initial beta_raw, so beta = softplus(0.5) = 0.974.
LIPSWISH_INITIAL_BETA_RAW = 0.5


@keras.saving.register_keras_serializable(package="kexue_iresnet")
class LipSwish(keras.layers.Layer):
    """x * sigmoid(beta x) / 1.1 with one learnable beta = softplus(beta_raw) per layer.

    Args:
        initial_beta_raw: starting value of beta_raw (beta = softplus(beta_raw)).

    Example:
        >>> act = LipSwish()
        >>> y = act(x)   # same shape as x, |y(a) - y(b)| <= |a - b| elementwise
    """

    def __init__(self, initial_beta_raw: float = LIPSWISH_INITIAL_BETA_RAW, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial_beta_raw = initial_beta_raw

    def build(self, input_shape: Any) -> None:
        self.beta_raw = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_beta_raw),
            name="beta_raw",
        )
        self.built = True

    @property
    def beta(self) -> tf.Tensor:
        # softplus keeps beta > 0, where the 1.1 bound holds.
        return tf.nn.softplus(tf.convert_to_tensor(self.beta_raw))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return x * tf.sigmoid(self.beta * x) / LIPSWISH_SCALE

    def derivative(self, x: tf.Tensor) -> tf.Tensor:
        """d/dx LipSwish(x), elementwise: (s + beta x s (1 - s)) / 1.1 with s = sigmoid(beta x)."""
        beta = self.beta
        s = tf.sigmoid(beta * x)
        return (s + beta * x * s * (1.0 - s)) / LIPSWISH_SCALE

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(initial_beta_raw=self.initial_beta_raw)
        return config


ACTIVATIONS = ("lipswish", "elu")


def make_activation(kind: str, **kwargs: Any) -> keras.layers.Layer:
    """A 1-Lipschitz activation layer by kind: "lipswish" or "elu" (alpha = 1).

    Args:
        kind: one of `ACTIVATIONS`.
        **kwargs: passed to the layer (name, dtype).

    Returns:
        The layer.
    """
    if kind == "lipswish":
        return LipSwish(**kwargs)
    if kind == "elu":
        # alpha = 1: slope exp(x) <= 1 for x < 0 and 1 for x > 0; a larger alpha breaks the bound.
        return keras.layers.ELU(alpha=1.0, **kwargs)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, not {kind!r}")


def activation_derivative(layer: keras.layers.Layer, x: tf.Tensor) -> tf.Tensor:
    """The elementwise slope of an activation layer of `make_activation` at x (same shape).

    Used for the closed-form Jacobian of a residual branch (`InvertibleResidualBlock.jacobian`);
    any other elementwise layer falls back to autodiff of sum(layer(x)).
    """
    if isinstance(layer, LipSwish):
        return layer.derivative(x)
    if isinstance(layer, keras.layers.ELU) and float(layer.alpha) == 1.0:
        return tf.where(x > 0, tf.ones_like(x), tf.exp(tf.minimum(x, 0.0)))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        y = layer(x)
    return tape.gradient(y, x)
