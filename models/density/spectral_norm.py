"""Spectral normalisation with a Lipschitz coefficient, for the residual branches of an i-ResNet.

Behrmann et al., "Invertible Residual Networks" (ICML 2019), Sec. 2: a residual block
F(x) = x + g(x) is invertible when Lip(g) < 1, and Lip(g) <= prod_i ||W_i||_2 for a chain of linear
maps W_i and 1-Lipschitz activations. Each W is therefore rescaled by its estimated largest singular
value sigma, but only when sigma exceeds the coefficient c < 1:

    W_tilde = W / max(1, sigma / c)

so a layer whose norm is already below c is left alone (a softer constraint than Miyato et al.'s
W / sigma, "Spectral Normalization for Generative Adversarial Networks", ICLR 2018).

sigma comes from power iteration with persistent singular-vector estimates u (left) and v (right):
v <- W^T u / |W^T u|, u <- W v / |W v|, sigma = u^T W v. A training call runs a few iterations
(often just one) and stores u and v, so that the estimate improves as the weights drift slowly;
inference reuses the stored vectors and never changes them, so forward and inverse passes see the
same W_tilde. u^T W v never exceeds the true sigma, so before inverting or exporting a trained
model call `power_iterate` with many iterations to make the Lipschitz bound hold tightly.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

# c = 0.9 as in Behrmann et al. 2019's CIFAR runs; Residual Flows' image models go up to 0.98,
# which is more expressive but needs more fixed-point steps and series terms.
DEFAULT_LIPSCHITZ_COEFFICIENT = 0.9
# Power iterations per training call: one is enough when the weights move little per step, since
# u and v carry over (Miyato et al. 2018; i-ResNet's CIFAR scripts also use 1, its code default 5).
DEFAULT_POWER_ITERATIONS = 1
# Added to a norm before dividing by it, so a zero kernel does not give NaN.
_NORM_EPSILON = 1e-12


def exact_spectral_norm(matrix: np.ndarray | tf.Tensor) -> float:
    """The largest singular value of a 2-D matrix, by a full SVD (for tests and checks).

    Args:
        matrix: [M, N] array or tensor.

    Returns:
        ||matrix||_2 as a Python float.
    """
    return float(np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)[0])


def conv2d_operator_matrix(
    kernel: np.ndarray | tf.Tensor,
    input_shape: tuple[int, int, int],
    strides: int = 1,
    padding: str = "SAME",
) -> np.ndarray:
    """The dense matrix of the linear map x -> conv2d(x, kernel) on one [H, W, C_in] input.

    Column j is the convolution of the j-th unit image, so the matrix is [H' W' C_out, H W C_in];
    its largest singular value is the exact spectral norm of the convolution (which is not the norm
    of the reshaped kernel). Only for tiny shapes: it runs H W C_in convolutions at once.

    Args:
        kernel: [kh, kw, C_in, C_out] filters.
        input_shape: (H, W, C_in) of one input.
        strides: the convolution's stride in both spatial directions.
        padding: "SAME" or "VALID".

    Returns:
        The operator matrix, float64.
    """
    kernel64 = tf.cast(tf.convert_to_tensor(kernel), tf.float64)
    size = int(np.prod(input_shape))
    basis = tf.reshape(tf.eye(size, dtype=tf.float64), (size, *input_shape))
    columns = tf.nn.conv2d(basis, kernel64, strides=strides, padding=padding.upper())
    return np.asarray(tf.reshape(columns, (size, -1))).T


def _normalize(vector: tf.Tensor) -> tf.Tensor:
    return vector / (tf.norm(vector) + _NORM_EPSILON)


@keras.saving.register_keras_serializable(package="kexue_iresnet")
class SpectralNormDense(keras.layers.Layer):
    """A dense layer y = x W_tilde + b whose kernel is softly rescaled to spectral norm <= c.

    Args:
        units: output width.
        lipschitz_coefficient: c in W / max(1, sigma / c); < 1 for an invertible residual block.
        power_iterations: power iterations per training call.
        use_bias: add a bias (it does not change the Lipschitz constant).
        kernel_initializer: initializer of the raw kernel W [in, out].
        bias_initializer: initializer of b.
        seed: seed of the random starting singular vectors.

    Call:
        x: [B, in]. With `training=True` the stored u, v are first advanced by `power_iterations`
        steps; otherwise they are used as they are.

    Example:
        >>> layer = SpectralNormDense(16, lipschitz_coefficient=0.9)
        >>> y = layer(x, training=True)                  # x [B, 8]
        >>> sigma = layer.power_iterate(200)             # tighten the estimate before export
    """

    def __init__(
        self,
        units: int,
        lipschitz_coefficient: float = DEFAULT_LIPSCHITZ_COEFFICIENT,
        power_iterations: int = DEFAULT_POWER_ITERATIONS,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not lipschitz_coefficient > 0:
            raise ValueError(f"lipschitz_coefficient must be > 0, not {lipschitz_coefficient}")
        if power_iterations < 0:
            raise ValueError(f"power_iterations must be >= 0, not {power_iterations}")
        self.units = units
        self.lipschitz_coefficient = lipschitz_coefficient
        self.power_iterations = power_iterations
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed

    def build(self, input_shape: Any) -> None:
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(fan_in, self.units), initializer=self.kernel_initializer, name="kernel"
        )
        self.bias = (
            self.add_weight(shape=(self.units,), initializer=self.bias_initializer, name="bias")
            if self.use_bias
            else None
        )
        # The kernel is [in, out]: u lives in the input space, v in the output space.
        seed = self.seed
        self.u = self.add_weight(
            shape=(fan_in,),
            initializer=keras.initializers.RandomNormal(seed=seed),
            trainable=False,
            # Replicas of a distributed run iterate on the same kernel: keep the first's.
            aggregation="only_first_replica",
            name="u",
        )
        self.v = self.add_weight(
            shape=(self.units,),
            initializer=keras.initializers.RandomNormal(seed=None if seed is None else seed + 1),
            trainable=False,
            aggregation="only_first_replica",
            name="v",
        )
        self.u.assign(_normalize(tf.convert_to_tensor(self.u)))
        self.v.assign(_normalize(tf.convert_to_tensor(self.v)))
        self.built = True

    def power_iterate(self, iterations: int | None = None) -> tf.Tensor:
        """Advance the stored singular vectors and return the new estimate of sigma.

        Args:
            iterations: number of steps; `power_iterations` when None.

        Returns:
            Scalar sigma = u^T W v (a lower bound on ||W||_2 that tightens with iterations).
        """
        w = tf.convert_to_tensor(self.kernel)
        u = tf.convert_to_tensor(self.u)
        v = tf.convert_to_tensor(self.v)
        for _ in range(self.power_iterations if iterations is None else iterations):
            v = _normalize(tf.linalg.matvec(w, u, transpose_a=True))
            u = _normalize(tf.linalg.matvec(w, v))
        self.u.assign(u)
        self.v.assign(v)
        return self.sigma()

    def sigma(self) -> tf.Tensor:
        """The current estimate u^T W v, differentiable in W only (u, v are constants)."""
        u = tf.stop_gradient(tf.convert_to_tensor(self.u))
        v = tf.stop_gradient(tf.convert_to_tensor(self.v))
        return tf.tensordot(u, tf.linalg.matvec(tf.convert_to_tensor(self.kernel), v), axes=1)

    def normalized_kernel(self) -> tf.Tensor:
        """W / max(1, sigma / c): the kernel the layer applies."""
        factor = tf.maximum(tf.ones_like(self.sigma()), self.sigma() / self.lipschitz_coefficient)
        return tf.convert_to_tensor(self.kernel) / factor

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training:
            self.power_iterate()
        y = tf.matmul(x, self.normalized_kernel())
        if self.bias is not None:
            y = y + self.bias
        return y

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            lipschitz_coefficient=self.lipschitz_coefficient,
            power_iterations=self.power_iterations,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="kexue_iresnet")
class SpectralNormConv2D(keras.layers.Layer):
    """A 2-D convolution whose operator norm (not its reshaped kernel's) is softly kept <= c.

    As in i-ResNet's convolutional blocks, power iteration runs on the convolution itself: u has the
    shape of one input [H, W, C_in], v of one output, W v is `conv2d` and W^T u is its adjoint
    `conv2d_transpose` with the same stride and padding. The spatial size is fixed at build time.

    Args:
        filters: output channels.
        kernel_size: square filter size.
        strides: stride in both spatial directions.
        padding: "same" or "valid".
        lipschitz_coefficient: c in W / max(1, sigma / c).
        power_iterations: power iterations per training call.
        use_bias: add a per-channel bias.
        kernel_initializer: initializer of the raw filters [k, k, C_in, C_out].
        seed: seed of the random starting singular vectors.

    Call:
        x: [B, H, W, C_in] with the H, W it was built with.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        padding: str = "same",
        lipschitz_coefficient: float = DEFAULT_LIPSCHITZ_COEFFICIENT,
        power_iterations: int = DEFAULT_POWER_ITERATIONS,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if padding.lower() not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding.lower()
        self.lipschitz_coefficient = lipschitz_coefficient
        self.power_iterations = power_iterations
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed

    def _conv(self, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return tf.nn.conv2d(x, kernel, strides=self.strides, padding=self.padding.upper())

    def build(self, input_shape: Any) -> None:
        height, width, channels = (int(d) for d in input_shape[1:])
        self.spatial_input_shape = (height, width, channels)
        self.kernel = self.add_weight(
            shape=(self.kernel_size, self.kernel_size, channels, self.filters),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.bias = (
            self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )
        probe = tf.zeros((1, height, width, channels), self.variable_dtype)
        output_shape = tuple(int(d) for d in self._conv(probe, self.kernel).shape[1:])
        seed = self.seed
        self.u = self.add_weight(
            shape=(1, height, width, channels),
            initializer=keras.initializers.RandomNormal(seed=seed),
            trainable=False,
            # Replicas of a distributed run iterate on the same kernel: keep the first's.
            aggregation="only_first_replica",
            name="u",
        )
        self.v = self.add_weight(
            shape=(1, *output_shape),
            initializer=keras.initializers.RandomNormal(seed=None if seed is None else seed + 1),
            trainable=False,
            aggregation="only_first_replica",
            name="v",
        )
        self.u.assign(_normalize(tf.convert_to_tensor(self.u)))
        self.v.assign(_normalize(tf.convert_to_tensor(self.v)))
        self.built = True

    def power_iterate(self, iterations: int | None = None) -> tf.Tensor:
        """Advance the stored singular vectors; return the new sigma estimate (as the Dense one)."""
        kernel = tf.convert_to_tensor(self.kernel)
        u = tf.convert_to_tensor(self.u)
        v = tf.convert_to_tensor(self.v)
        for _ in range(self.power_iterations if iterations is None else iterations):
            # The operator maps input-shaped u to output-shaped v; its adjoint is the transpose.
            v = _normalize(self._conv(u, kernel))
            u = _normalize(
                tf.nn.conv2d_transpose(
                    v,
                    kernel,
                    output_shape=(1, *self.spatial_input_shape),
                    strides=self.strides,
                    padding=self.padding.upper(),
                )
            )
        self.u.assign(u)
        self.v.assign(v)
        return self.sigma()

    def sigma(self) -> tf.Tensor:
        """The current estimate <v, conv(u)>, differentiable in the filters only."""
        u = tf.stop_gradient(tf.convert_to_tensor(self.u))
        v = tf.stop_gradient(tf.convert_to_tensor(self.v))
        return tf.reduce_sum(v * self._conv(u, tf.convert_to_tensor(self.kernel)))

    def normalized_kernel(self) -> tf.Tensor:
        """Filters / max(1, sigma / c): the filters the layer applies."""
        factor = tf.maximum(tf.ones_like(self.sigma()), self.sigma() / self.lipschitz_coefficient)
        return tf.convert_to_tensor(self.kernel) / factor

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training:
            self.power_iterate()
        y = self._conv(x, self.normalized_kernel())
        if self.bias is not None:
            y = y + self.bias
        return y

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            lipschitz_coefficient=self.lipschitz_coefficient,
            power_iterations=self.power_iterations,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            seed=self.seed,
        )
        return config
