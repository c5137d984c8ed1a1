"""The invertible residual block F(x) = x + g(x) and its inverse by fixed-point iteration.

Behrmann et al., "Invertible Residual Networks" (ICML 2019), Sec. 2: g is an MLP of spectrally
normalised dense layers (||W_i||_2 <= c < 1) and 1-Lipschitz activations, so Lip(g) <= c < 1 and F
is invertible. Its inverse at y is the unique fixed point of x -> y - g(x), a contraction with
rate Lip(g), so the iteration (their Algorithm 1, started at x_0 = y)

    x_{i+1} = y - g(x_i)

converges linearly from any start, and after a step that moved x by delta the remaining error is at
most Lip(g) / (1 - Lip(g)) * delta (Banach's fixed-point theorem). The iteration stops once the
largest change in the batch is below a tolerance, or after a maximum number of steps, and reports
how many steps it took.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from models.density.activations import activation_derivative, make_activation
from models.density.logdet import LogDetConfig, ResidualFn, residual_logdet
from models.density.spectral_norm import (
    DEFAULT_LIPSCHITZ_COEFFICIENT,
    DEFAULT_POWER_ITERATIONS,
    SpectralNormDense,
)

# Largest change per step at which the fixed-point iteration stops. With c = 0.9 the remaining
# error is at most 9x this; float32 rounding sits near 1e-7 for |x| ~ 1.
DEFAULT_INVERSE_TOLERANCE = 1e-6
# i-ResNet inverts with a fixed budget of iterations; 0.9^100 ~ 3e-5 of the starting error.
DEFAULT_INVERSE_MAX_ITERATIONS = 100


class FixedPointResult(NamedTuple):
    """The outcome of `fixed_point_inverse`.

    Attributes:
        x: [B, ...] the inverse estimate.
        iterations: int32 scalar, evaluations of g used (>= 1).
        last_change: scalar, max |x_{i+1} - x_i| of the last step; <= tolerance if converged.
    """

    x: tf.Tensor
    iterations: tf.Tensor
    last_change: tf.Tensor


def fixed_point_inverse(
    residual: ResidualFn,
    y: tf.Tensor,
    tolerance: float = DEFAULT_INVERSE_TOLERANCE,
    max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
) -> FixedPointResult:
    """Solve x + g(x) = y by x <- y - g(x), starting at x = y.

    Args:
        residual: g with Lip(g) < 1, applied row by row.
        y: [B, ...] outputs of the block.
        tolerance: stop when max |x_{i+1} - x_i| over the batch is at most this.
        max_iterations: stop after this many steps whatever the change.

    Returns:
        `FixedPointResult` (x, iterations, last_change).
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, not {max_iterations}")
    y = tf.convert_to_tensor(y)

    def step(
        i: tf.Tensor, x: tf.Tensor, change: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x_next = y - residual(x)
        return i + 1, x_next, tf.reduce_max(tf.abs(x_next - x))

    iterations, x, change = tf.while_loop(
        lambda i, x, change: tf.logical_and(i < max_iterations, change > tolerance),
        step,
        (tf.constant(0), y, tf.constant(float("inf"), y.dtype)),
    )
    return FixedPointResult(x, iterations, change)


@keras.saving.register_keras_serializable(package="kexue_iresnet")
class InvertibleResidualBlock(keras.layers.Layer):
    """y = x + g(x), g = SNDense -> act -> ... -> SNDense back to the input width; Lip(g) <= c.

    Args:
        hidden_units: widths of g's hidden layers (i-ResNet's toy models use 2-3 of width 64-128).
        activation: "lipswish" or "elu".
        lipschitz_coefficient: c, the spectral-norm bound of every dense layer in g.
        power_iterations: power iterations per training call, per layer.
        seed: base seed of the layers' singular-vector starts.

    Call:
        x: [B, D]. With `training=True` every layer's power iteration advances once before g runs,
        so one forward pass updates u, v once however often the log-det estimator evaluates g.

    Example:
        >>> block = InvertibleResidualBlock([32, 32])
        >>> y, logdet = block.forward(x, LogDetConfig(method="exact"))
        >>> x_back = block.inverse(y).x
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (64, 64),
        activation: str = "lipswish",
        lipschitz_coefficient: float = DEFAULT_LIPSCHITZ_COEFFICIENT,
        power_iterations: int = DEFAULT_POWER_ITERATIONS,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.lipschitz_coefficient = lipschitz_coefficient
        self.power_iterations = power_iterations
        self.seed = seed
        self.dense_layers: list[SpectralNormDense] = []
        self.activations: list[keras.layers.Layer] = []

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[-1])
        fan_in = width
        for i, units in enumerate((*self.hidden_units, width)):
            dense = SpectralNormDense(
                units,
                lipschitz_coefficient=self.lipschitz_coefficient,
                power_iterations=self.power_iterations,
                seed=None if self.seed is None else self.seed + 2 * i,
                dtype=self.dtype_policy,
                name=f"dense_{i}",
            )
            dense.build((None, fan_in))
            self.dense_layers.append(dense)
            fan_in = units
        for i, units in enumerate(self.hidden_units):
            activation = make_activation(
                self.activation, dtype=self.dtype_policy, name=f"activation_{i}"
            )
            activation.build((None, units))
            self.activations.append(activation)
        self.built = True

    def _ensure_built(self, x: tf.Tensor) -> None:
        if not self.built:
            self.build(x.shape)

    def update_spectral_norms(self, iterations: int | None = None) -> list[tf.Tensor]:
        """Advance every layer's power iteration; return the new sigma estimates.

        Args:
            iterations: steps per layer; each layer's `power_iterations` when None. Call with many
                (say 100) before inverting or exporting a trained block.
        """
        return [dense.power_iterate(iterations) for dense in self.dense_layers]

    def residual(self, x: tf.Tensor) -> tf.Tensor:
        """g(x) with the stored singular-vector estimates (no power iteration)."""
        self._ensure_built(x)
        h = x
        for dense, activation in zip(self.dense_layers[:-1], self.activations, strict=True):
            h = activation(dense(h, training=False))
        return self.dense_layers[-1](h, training=False)

    def residual_and_jacobian(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """g(x) [B, D] and its per-row Jacobian J_g(x) [B, D_out, D_in], in closed form.

        g is a chain of dense layers and elementwise activations, so by the chain rule

            J_g(x) = W_L^T diag(a'(z_{L-1})) W_{L-1}^T ... diag(a'(z_1)) W_1^T

        (W_i the normalised kernels, z_i the pre-activations), carried forward as a [B, H, D]
        tensor: one forward pass with D tangents, the cost of D forward passes and no tracing of
        D backward passes (`tape.batch_jacobian`, which TensorFlow vectorises slowly at trace
        time). The same values as autodiff's Jacobian (tested).
        """
        self._ensure_built(x)
        h = x
        tangent: tf.Tensor | None = None  # d h / d x, [B, width, D]; None for the identity
        for i, dense in enumerate(self.dense_layers):
            kernel = dense.normalized_kernel()  # [fan_in, units]
            z = tf.matmul(h, kernel)
            if dense.bias is not None:
                z = z + dense.bias
            if tangent is None:
                shape = tf.stack([tf.shape(x)[0], tf.shape(kernel)[1], tf.shape(kernel)[0]])
                tangent = tf.broadcast_to(tf.transpose(kernel)[None], shape)
            else:
                tangent = tf.einsum("bid,iu->bud", tangent, kernel)
            if i < len(self.activations):
                activation = self.activations[i]
                h = activation(z)
                tangent = activation_derivative(activation, z)[:, :, None] * tangent
            else:
                h = z
        assert tangent is not None
        return h, tangent

    def exact_logdet(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(g(x), log det(I + J_g(x))) with the closed-form Jacobian (`residual_and_jacobian`).

        In 2-D the determinant is written out; above, `slogdet`. It is positive when
        Lip(g) < 1, so its log is the log of the absolute value.
        """
        gx, jacobian = self.residual_and_jacobian(x)
        if x.shape[-1] == 2:
            j = jacobian
            det = (1.0 + j[:, 0, 0]) * (1.0 + j[:, 1, 1]) - j[:, 0, 1] * j[:, 1, 0]
            return gx, tf.math.log(det)
        eye = tf.eye(tf.shape(jacobian)[-1], dtype=jacobian.dtype)
        _, logabsdet = tf.linalg.slogdet(eye + jacobian)
        return gx, logabsdet

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training:
            self.update_spectral_norms()
        return x + self.residual(x)

    def forward(
        self,
        x: tf.Tensor,
        logdet: LogDetConfig | None = None,
        training: bool | None = None,
        generator: tf.random.Generator | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """y = x + g(x) and log det(I + J_g(x)).

        Args:
            x: [B, D].
            logdet: how to compute the log-determinant; exact when None.
            training: advance the power iterations first.
            generator: randomness of the series and roulette estimators.

        Returns:
            (y [B, D], log det [B]).
        """
        self._ensure_built(x)
        if training:
            self.update_spectral_norms()
        if logdet is None or logdet.method == "exact":
            gx, value = self.exact_logdet(x)
        else:
            gx, value = residual_logdet(self.residual, x, logdet, generator)
        return x + gx, value

    def inverse(
        self,
        y: tf.Tensor,
        tolerance: float = DEFAULT_INVERSE_TOLERANCE,
        max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
    ) -> FixedPointResult:
        """x with x + g(x) = y by fixed-point iteration (see `fixed_point_inverse`)."""
        self._ensure_built(y)
        return fixed_point_inverse(self.residual, y, tolerance, max_iterations)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            lipschitz_coefficient=self.lipschitz_coefficient,
            power_iterations=self.power_iterations,
            seed=self.seed,
        )
        return config
