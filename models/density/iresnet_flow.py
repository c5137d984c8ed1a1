"""The i-ResNet / Residual Flow density model: ActNorm, then invertible residual blocks, over a
standard Gaussian base.

Behrmann et al., "Invertible Residual Networks" (ICML 2019), Sec. 3, and Chen et al., "Residual
Flows for Invertible Generative Modeling" (NeurIPS 2019): with z = F(x) = F_L o ... o F_1(x) an
invertible map, the change of variables gives

    log p(x) = log N(F(x); 0, I) + sum_l log |det J_{F_l}|,

each residual block contributing log det(I + J_g) (exact, truncated series or Russian roulette;
see `models.density.logdet`) and each ActNorm the sum of its log-scales. Sampling and inversion run
the blocks backwards, each by fixed-point iteration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from models.density.actnorm import ActNorm
from models.density.logdet import LogDetConfig
from models.density.residual_block import (
    DEFAULT_INVERSE_MAX_ITERATIONS,
    DEFAULT_INVERSE_TOLERANCE,
    InvertibleResidualBlock,
)
from models.density.spectral_norm import DEFAULT_LIPSCHITZ_COEFFICIENT, DEFAULT_POWER_ITERATIONS

_LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: tf.Tensor) -> tf.Tensor:
    """log N(z; 0, I) per example: [B, ...] -> [B]."""
    flat = tf.reshape(z, (tf.shape(z)[0], -1))
    dim = tf.cast(tf.shape(flat)[1], z.dtype)
    return -0.5 * (tf.reduce_sum(tf.square(flat), axis=-1) + dim * _LOG_2PI)


class FlowInverse(NamedTuple):
    """The outcome of `IResNetFlow.inverse`.

    Attributes:
        x: [B, D] the inverse of z.
        iterations: [num_blocks] int32, fixed-point steps each block used, in forward order.
        last_changes: [num_blocks], each block's last max |x_{i+1} - x_i|.
    """

    x: tf.Tensor
    iterations: tf.Tensor
    last_changes: tf.Tensor


@keras.saving.register_keras_serializable(package="kexue_iresnet")
class IResNetFlow(keras.Model):
    """A normalising flow of invertible residual blocks on [B, D] vectors.

    Args:
        num_blocks: residual blocks L.
        hidden_units: widths of each block's hidden layers.
        activation: "lipswish" (Residual Flows) or "elu" (i-ResNet).
        lipschitz_coefficient: c, the spectral-norm bound of every dense layer.
        power_iterations: power iterations per training call, per layer.
        input_actnorm: an ActNorm before the first block (data-dependent initialisation).
        actnorm_between_blocks: an ActNorm before every later block too (Residual Flows).
        seed: base seed of the singular-vector starts.

    Call:
        x: [B, D] -> z [B, D]. `forward` returns the log-determinant too; `log_prob` the density.
        The first call initialises the ActNorms from that batch: call `initialize` on a
        representative batch before anything else.

    Example:
        >>> flow = IResNetFlow(num_blocks=4, hidden_units=(64, 64))
        >>> flow.initialize(x_train[:512])
        >>> log_p = flow.log_prob(x, LogDetConfig(method="roulette"))
        >>> samples = flow.sample(16).x
    """

    def __init__(
        self,
        num_blocks: int = 4,
        hidden_units: Sequence[int] = (64, 64),
        activation: str = "lipswish",
        lipschitz_coefficient: float = DEFAULT_LIPSCHITZ_COEFFICIENT,
        power_iterations: int = DEFAULT_POWER_ITERATIONS,
        input_actnorm: bool = True,
        actnorm_between_blocks: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, not {num_blocks}")
        self.num_blocks = num_blocks
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.lipschitz_coefficient = lipschitz_coefficient
        self.power_iterations = power_iterations
        self.input_actnorm = input_actnorm
        self.actnorm_between_blocks = actnorm_between_blocks
        self.seed = seed

        # In forward order: [ActNorm], block, ([ActNorm], block)...
        self.steps: list[keras.layers.Layer] = []
        for i in range(num_blocks):
            if (i == 0 and input_actnorm) or (i > 0 and actnorm_between_blocks):
                self.steps.append(ActNorm(dtype=self.dtype_policy, name=f"actnorm_{i}"))
            self.steps.append(
                InvertibleResidualBlock(
                    self.hidden_units,
                    activation=activation,
                    lipschitz_coefficient=lipschitz_coefficient,
                    power_iterations=power_iterations,
                    seed=None if seed is None else seed + 1000 * i,
                    dtype=self.dtype_policy,
                    name=f"block_{i}",
                )
            )

    @property
    def blocks(self) -> list[InvertibleResidualBlock]:
        return [s for s in self.steps if isinstance(s, InvertibleResidualBlock)]

    def build(self, input_shape: Any) -> None:
        shape = (None, int(input_shape[-1]))
        for step in self.steps:
            step.build(shape)
        self.built = True

    def _ensure_built(self, x: tf.Tensor) -> None:
        if not self.built:
            self.build(x.shape)

    def initialize(self, x: tf.Tensor) -> tf.Tensor:
        """Data-dependent initialisation of every ActNorm from a batch; returns z of that batch.

        Each ActNorm is set from the statistics of its own input, i.e. of x after the steps
        before it (Kingma & Dhariwal 2018).
        """
        x = tf.cast(x, self.compute_dtype)
        self._ensure_built(x)
        h = x
        for step in self.steps:
            if isinstance(step, ActNorm):
                step.initialize(h)
            h = step(h)
        return h

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        h = x
        for step in self.steps:
            h = step(h, training=training) if isinstance(step, InvertibleResidualBlock) else step(h)
        return h

    def forward(
        self,
        x: tf.Tensor,
        logdet: LogDetConfig | None = None,
        training: bool | None = None,
        generator: tf.random.Generator | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """z = F(x) and log |det J_F(x)|.

        Args:
            x: [B, D].
            logdet: how each block's log det(I + J_g) is computed; exact when None.
            training: advance the spectral-norm power iterations first.
            generator: randomness of the series and roulette estimators.

        Returns:
            (z [B, D], log-determinant [B]).
        """
        x = tf.cast(x, self.compute_dtype)
        self._ensure_built(x)
        h = x
        total = tf.zeros(tf.shape(x)[:1], x.dtype)
        for step in self.steps:
            if isinstance(step, InvertibleResidualBlock):
                h, value = step.forward(h, logdet, training=training, generator=generator)
            else:
                assert isinstance(step, ActNorm)
                h = step(h)
                value = step.log_det(h)
            total += value
        return h, total

    def log_prob(
        self,
        x: tf.Tensor,
        logdet: LogDetConfig | None = None,
        training: bool | None = None,
        generator: tf.random.Generator | None = None,
    ) -> tf.Tensor:
        """log p(x) = log N(F(x); 0, I) + log |det J_F(x)|: [B] in nats (see `forward`)."""
        z, total = self.forward(x, logdet, training=training, generator=generator)
        return standard_normal_log_prob(z) + total

    def inverse(
        self,
        z: tf.Tensor,
        tolerance: float = DEFAULT_INVERSE_TOLERANCE,
        max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
    ) -> FlowInverse:
        """x = F^{-1}(z), each block by fixed-point iteration, ActNorms exactly.

        Args:
            z: [B, D].
            tolerance: per block, stop when the largest change of a step is at most this.
            max_iterations: per block, the most fixed-point steps.

        Returns:
            `FlowInverse` (x, iterations per block, last change per block).
        """
        z = tf.cast(z, self.compute_dtype)
        self._ensure_built(z)
        h = z
        iterations: list[tf.Tensor] = []
        changes: list[tf.Tensor] = []
        for step in reversed(self.steps):
            if isinstance(step, InvertibleResidualBlock):
                result = step.inverse(h, tolerance, max_iterations)
                h = result.x
                iterations.append(result.iterations)
                changes.append(result.last_change)
            else:
                assert isinstance(step, ActNorm)
                h = step.inverse(h)
        return FlowInverse(h, tf.stack(iterations[::-1]), tf.stack(changes[::-1]))

    def sample(
        self,
        num_samples: int,
        dim: int | None = None,
        generator: tf.random.Generator | None = None,
        tolerance: float = DEFAULT_INVERSE_TOLERANCE,
        max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
    ) -> FlowInverse:
        """x = F^{-1}(z) for z ~ N(0, I); `dim` is needed only before the model is built."""
        if dim is None:
            if not self.built:
                raise ValueError("pass dim to sample from a model that has not been built")
            dim = int(self.blocks[0].dense_layers[0].kernel.shape[0])
        generator = generator or tf.random.get_global_generator()
        z = generator.normal((num_samples, dim), dtype=self.compute_dtype)
        return self.inverse(z, tolerance, max_iterations)

    def update_spectral_norms(self, iterations: int | None = None) -> list[tf.Tensor]:
        """Advance every dense layer's power iteration; before inverting or exporting, use many."""
        return [s for block in self.blocks for s in block.update_spectral_norms(iterations)]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_blocks=self.num_blocks,
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            lipschitz_coefficient=self.lipschitz_coefficient,
            power_iterations=self.power_iterations,
            input_actnorm=self.input_actnorm,
            actnorm_between_blocks=self.actnorm_between_blocks,
            seed=self.seed,
        )
        return config
