"""SavedModel export of an i-ResNet / Residual Flow density model, with the signatures a server
scores and samples with.

The SavedModel stands alone (no Keras, no project code needed to call it). Inputs and outputs are
in the units of the training data: the preprocessing (dequantisation scale, logit transform,
per-feature standardisation; `Preprocessing`) is part of the exported graph. Shapes: B rows, D
dimensions, N samples, L residual blocks.

Signatures (argument names are the input tensor names; outputs are dicts):

* `score(x float32 [B, D])` -> `log_prob` float32 [B], `bits_per_dim` float32 [B]; the residual
  blocks' log-determinants by the truncated power series with Hutchinson's trace estimator
  (Behrmann et al., "Invertible Residual Networks", ICML 2019, Sec. 3), with a fixed number of
  terms and probes and probes drawn from a fixed seed. The probes are the same for every row
  (`RowSharedStatelessGenerator`), so a row's score does not depend on the rest of the batch and
  identical inputs always give identical outputs. Also `serving_default`.
* `score_exact(x float32 [B, D])` -> the same, each block's log det(I + J_g) from its full
  Jacobian (D backward passes and a D x D determinant per row; meant for small D).
* `sample(num_samples int32 [], seed int64 [])` -> `samples` float32 [N, D] in data units,
  `iterations` int32 [L] (fixed-point steps each block's inverse took, in forward order) and
  `last_change` float32 [L] (each block's last max |x_{i+1} - x_i|; at most the tolerance when
  it converged). z ~ N(0, I) from a stateless generator, so the same seed gives the same samples.

What `log_prob` is (nats):

* continuous data: log p(x), the model's density of the data in their own units (the flow's
  density plus the log-determinant of the standardisation);
* discrete data with K levels (trained on the dequantised v = x + u, u ~ U[0, 1)^D, fed to the
  flow as v / K): log p_V(x + 1/2), the dequantised density at the centre of x's unit bin. A bin
  has volume 1, so this is the midpoint estimate of log P(x) = log int_bin p_V, and
  `bits_per_dim` = -log_prob / (D ln 2) is bits per dimension of the discrete data, the same
  quantity as `models.density.data.bits_per_dim(log p(v / K), D, K)` (Theis et al., ICLR 2016)
  but at u = 1/2 instead of averaged over u. Values outside [0, K-1] get -inf. `sample` returns
  discrete values there too: floor(v) clipped to [0, K-1].

In both cases `bits_per_dim` = -log_prob / (D ln 2).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import tensorflow as tf

from models.density.iresnet_flow import IResNetFlow
from models.density.logdet import LogDetConfig
from models.density.residual_block import (
    DEFAULT_INVERSE_MAX_ITERATIONS,
    DEFAULT_INVERSE_TOLERANCE,
)

SIGNATURE_SCORE = "score"
SIGNATURE_SCORE_EXACT = "score_exact"
SIGNATURE_SAMPLE = "sample"
SIGNATURE_DEFAULT = "serving_default"
LOG_PROB_KEY = "log_prob"
BITS_PER_DIM_KEY = "bits_per_dim"
SAMPLES_KEY = "samples"
ITERATIONS_KEY = "iterations"
LAST_CHANGE_KEY = "last_change"
# Power iterations per dense layer before export: the stored singular vectors must have converged
# for sigma (and so Lip(g) <= c, on which invertibility and the series rest) to hold.
EXPORT_POWER_ITERATIONS = 500
# Scoring defaults: more terms than in training, since (2) of `models.density.logdet` bounds the
# series' bias by D * sum_{k>n} c^k / k; with c = 0.9, n = 20 leaves 0.05 per dimension at most.
DEFAULT_SCORE_TERMS = 20
DEFAULT_SCORE_PROBES = 4
DEFAULT_SCORE_SEED = 1234
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class Preprocessing:
    """The fixed map from data units to the flow's input, and its log-determinant.

    Continuous data: y = (v - mean) / std when standardised (else y = v). Discrete data with
    `levels` K: p = v / K in [0, 1), then, with a logit alpha, y = logit(alpha + (1 - 2 alpha) p)
    (Real NVP, Dinh et al. 2017, Sec. 4.1), else y = p. v is the (dequantised) value in data units.

    Attributes:
        input_dim: D.
        levels: K for discrete data, None for continuous.
        logit_alpha: alpha of the logit transform (discrete data only), None for none.
        mean: per-feature mean subtracted (continuous data), None for none.
        std: per-feature scale divided by, None for none.
    """

    input_dim: int
    levels: int | None = None
    logit_alpha: float | None = None
    mean: tuple[float, ...] | None = field(default=None)
    std: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, not {self.input_dim}")
        if self.levels is not None and self.levels < 2:
            raise ValueError(f"levels must be >= 2, not {self.levels}")
        if self.logit_alpha is not None:
            if self.levels is None:
                raise ValueError("the logit transform is for discrete (dequantised) data")
            if not 0.0 <= self.logit_alpha < 0.5:
                raise ValueError(f"logit_alpha must be in [0, 0.5), not {self.logit_alpha}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.mean is not None and self.std is not None:
            if self.levels is not None:
                raise ValueError("standardisation is for continuous data")
            if len(self.mean) != self.input_dim or len(self.std) != self.input_dim:
                raise ValueError(f"mean and std need {self.input_dim} values")
            if not all(s > 0 and math.isfinite(s) for s in self.std):
                raise ValueError("std must be positive and finite")

    @classmethod
    def standardizing(cls, data: np.ndarray) -> Preprocessing:
        """Per-feature standardisation from continuous training data [N, D]."""
        data = np.asarray(data, np.float64)
        std = data.std(axis=0)
        # A constant feature keeps scale 1 rather than dividing by zero.
        std = np.where(std > 0, std, 1.0)
        return cls(
            data.shape[1],
            mean=tuple(float(m) for m in data.mean(axis=0)),
            std=tuple(float(s) for s in std),
        )

    def describe(self) -> dict[str, Any]:
        """The manifest's `preprocessing` entry."""
        dequantization = None
        if self.levels is not None:
            dequantization = {
                "noise": "uniform [0, 1) added to each integer value in training",
                "scale": 1.0 / self.levels,
                "score_offset": 0.5,
            }
        return {
            "dequantization": dequantization,
            "logit": None if self.logit_alpha is None else {"alpha": self.logit_alpha},
            "standardization": None
            if self.mean is None
            else {"mean": list(self.mean), "std": list(self.std or ())},
            "log_prob": (
                "log p_V(x + 1/2) of the dequantised density at the bin centre (approximates the "
                "discrete log P(x)); bits_per_dim = -log_prob / (D ln 2)"
                if self.levels is not None
                else "log p(x), density of the data in their units; "
                "bits_per_dim = -log_prob / (D ln 2)"
            ),
        }

    def forward(self, v: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(y [B, D], log |det dy/dv| [B]) of continuous values v in data units."""
        v = tf.convert_to_tensor(v)
        batch = tf.shape(v)[:1]
        if self.levels is not None:
            y = v / self.levels
            logdet = tf.fill(batch, tf.cast(-self.input_dim * math.log(self.levels), v.dtype))
            if self.logit_alpha is not None:
                q = self.logit_alpha + (1.0 - 2.0 * self.logit_alpha) * y
                y = tf.math.log(q) - tf.math.log1p(-q)
                logdet += tf.reduce_sum(
                    math.log1p(-2.0 * self.logit_alpha) - tf.math.log(q) - tf.math.log1p(-q),
                    axis=-1,
                )
            return y, logdet
        if self.mean is not None and self.std is not None:
            mean = tf.constant(self.mean, v.dtype)
            std = tf.constant(self.std, v.dtype)
            logdet_value = -float(np.sum(np.log(self.std)))
            return (v - mean) / std, tf.fill(batch, tf.cast(logdet_value, v.dtype))
        return v, tf.zeros(batch, v.dtype)

    def inverse(self, y: tf.Tensor) -> tf.Tensor:
        """Continuous values v in data units of flow outputs y."""
        y = tf.convert_to_tensor(y)
        if self.levels is not None:
            if self.logit_alpha is not None:
                y = (tf.sigmoid(y) - self.logit_alpha) / (1.0 - 2.0 * self.logit_alpha)
            return y * self.levels
        if self.mean is not None and self.std is not None:
            return y * tf.constant(self.std, y.dtype) + tf.constant(self.mean, y.dtype)
        return y

    def score_point(self, x: tf.Tensor) -> tf.Tensor:
        """Where `score` evaluates the density of x: the bin centre x + 1/2 for discrete data."""
        return x + 0.5 if self.levels is not None else x

    def in_support(self, x: tf.Tensor) -> tf.Tensor:
        """[B] bool: rows inside the model's support (discrete data: every value in [0, K-1])."""
        if self.levels is None:
            return tf.reduce_all(tf.math.is_finite(x), axis=-1)
        return tf.reduce_all((x >= 0.0) & (x <= self.levels - 1.0), axis=-1)

    def to_data(self, v: tf.Tensor) -> tf.Tensor:
        """Samples in data units: discrete data back to integer values floor(v) in [0, K-1]."""
        if self.levels is None:
            return v
        return tf.clip_by_value(tf.floor(v), 0.0, self.levels - 1.0)


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


def data_log_prob(
    flow: IResNetFlow,
    preprocessing: Preprocessing,
    v: tf.Tensor,
    logdet: LogDetConfig | None = None,
    training: bool | None = None,
    generator: Any = None,
) -> tf.Tensor:
    """log p(v) [B] in nats of continuous values v [B, D] in data units: the flow's density of
    the preprocessed values plus the preprocessing's log-determinant (change of variables).

    Args:
        flow: the density model.
        preprocessing: data units -> the flow's input.
        v: [B, D] values in data units (dequantised ones for discrete data).
        logdet: the blocks' log-determinant method; exact when None.
        training: advance the spectral-norm power iterations (training steps).
        generator: randomness of the series and roulette estimators (a `tf.random.Generator`
            or a `RowSharedStatelessGenerator`).
    """
    y, pre_logdet = preprocessing.forward(tf.cast(v, flow.compute_dtype))
    return flow.log_prob(
        y, logdet, training=training, generator=cast(tf.random.Generator, generator)
    ) + tf.cast(pre_logdet, flow.compute_dtype)


def score_data(
    flow: IResNetFlow,
    preprocessing: Preprocessing,
    x: tf.Tensor,
    logdet: LogDetConfig | None,
    seed: int,
) -> dict[str, tf.Tensor]:
    """What the `score` / `score_exact` signatures return (see the module docstring).

    Args:
        flow: the density model.
        preprocessing: data units -> the flow's input.
        x: [B, D] inputs in data units.
        logdet: a "series" config, or None for the exact log-determinant.
        seed: the fixed seed of the series' probes.
    """
    if logdet is not None and logdet.method != "series":
        # The roulette's random length would make a score vary from call to call.
        raise ValueError(f"score uses the exact or series log-det, not {logdet.method!r}")
    x = tf.cast(x, flow.compute_dtype)
    inside = preprocessing.in_support(x)
    # Rows outside the support are scored at a harmless point and then set to -inf, so that
    # NaNs from the logit of values outside (0, 1) never appear.
    point = tf.where(inside[:, None], preprocessing.score_point(x), tf.zeros_like(x) + 0.5)
    generator = RowSharedStatelessGenerator(seed, tf.shape(x)[0])
    log_prob = data_log_prob(flow, preprocessing, point, logdet, generator=generator)
    log_prob = tf.where(inside, log_prob, tf.constant(-np.inf, log_prob.dtype))
    bits = -log_prob / (preprocessing.input_dim * _LN2)
    return {
        LOG_PROB_KEY: tf.cast(log_prob, tf.float32),
        BITS_PER_DIM_KEY: tf.cast(bits, tf.float32),
    }


class DensityModule(tf.Module):
    """What the SavedModel holds: the flow's weights, its preprocessing and the functions.

    Args:
        flow: the trained flow (its averaged weights, when training kept an EMA), with converged
            power iterations (`export_density_saved_model` runs them).
        preprocessing: data units -> the flow's input.
        score_logdet: the "series" config of `score` (n_terms, n_probes, probe).
        score_seed: the fixed seed of its probes.
        inverse_tolerance: the fixed-point inverse's tolerance per block.
        inverse_max_iterations: its most steps per block.
    """

    def __init__(
        self,
        flow: IResNetFlow,
        preprocessing: Preprocessing,
        score_logdet: LogDetConfig,
        score_seed: int = DEFAULT_SCORE_SEED,
        inverse_tolerance: float = DEFAULT_INVERSE_TOLERANCE,
        inverse_max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
    ) -> None:
        super().__init__(name="iresnet_density")
        if score_logdet.method != "series":
            raise ValueError("score_logdet must be a series config")
        self.flow = flow
        self._preprocessing = preprocessing
        self._score_logdet = score_logdet
        self._score_seed = int(score_seed)
        self._tolerance = float(inverse_tolerance)
        self._max_iterations = int(inverse_max_iterations)
        # Variables, so that the loaded SavedModel still tells its shape and discreteness.
        self.input_dim = tf.Variable(preprocessing.input_dim, dtype=tf.int32, trainable=False)
        self.levels = tf.Variable(preprocessing.levels or 0, dtype=tf.int32, trainable=False)
        x_spec = tf.TensorSpec([None, preprocessing.input_dim], tf.float32, name="x")
        self.score = tf.function(self._score, input_signature=[x_spec])
        self.score_exact = tf.function(self._score_exact, input_signature=[x_spec])
        self.sample = tf.function(
            self._sample,
            input_signature=[
                tf.TensorSpec([], tf.int32, name="num_samples"),
                tf.TensorSpec([], tf.int64, name="seed"),
            ],
        )

    def _score(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return score_data(self.flow, self._preprocessing, x, self._score_logdet, self._score_seed)

    def _score_exact(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return score_data(self.flow, self._preprocessing, x, None, self._score_seed)

    def _sample(self, num_samples: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        return sample_data(
            self.flow,
            self._preprocessing,
            num_samples,
            seed,
            self._tolerance,
            self._max_iterations,
        )


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


def export_density_saved_model(
    path: str | os.PathLike[str],
    flow: IResNetFlow,
    preprocessing: Preprocessing,
    *,
    score_logdet: LogDetConfig | None = None,
    score_seed: int = DEFAULT_SCORE_SEED,
    inverse_tolerance: float = DEFAULT_INVERSE_TOLERANCE,
    inverse_max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
    power_iterations: int = EXPORT_POWER_ITERATIONS,
) -> list[str]:
    """Writes the SavedModel (saved_model.pb, variables/) into `path`.

    Runs `power_iterations` power iterations on every layer first (this changes the flow's stored
    singular vectors): with a single iteration per training step sigma may lag the weights, and
    an underestimated sigma would let Lip(g) exceed c.

    Args:
        path: the (existing or new) folder to write into.
        flow: the trained, built flow.
        preprocessing: data units -> the flow's input.
        score_logdet: the series of `score`; default `DEFAULT_SCORE_TERMS` terms and
            `DEFAULT_SCORE_PROBES` Rademacher probes.
        score_seed: the seed of its probes.
        inverse_tolerance: `sample`'s fixed-point tolerance per block.
        inverse_max_iterations: `sample`'s most fixed-point steps per block.
        power_iterations: power iterations per layer before export.

    Returns:
        The names of the exported signatures.
    """
    if not flow.built:
        raise ValueError("the flow must be built (initialised on data) before export")
    if power_iterations > 0:
        flow.update_spectral_norms(power_iterations)
    score_logdet = score_logdet or default_score_logdet()
    module = DensityModule(
        flow, preprocessing, score_logdet, score_seed, inverse_tolerance, inverse_max_iterations
    )
    signatures = {
        SIGNATURE_SCORE: module.score.get_concrete_function(),
        SIGNATURE_SCORE_EXACT: module.score_exact.get_concrete_function(),
        SIGNATURE_SAMPLE: module.sample.get_concrete_function(),
        # TensorFlow Serving's REST API calls this one when a request names no signature.
        SIGNATURE_DEFAULT: module.score.get_concrete_function(),
    }
    tf.saved_model.save(module, os.fspath(path), signatures=signatures)
    return list(signatures)


def default_score_logdet() -> LogDetConfig:
    """The series `score` uses unless told otherwise (recorded in the manifest)."""
    return LogDetConfig(
        method="series", n_terms=DEFAULT_SCORE_TERMS, n_probes=DEFAULT_SCORE_PROBES,
        probe="rademacher",
    )  # fmt: skip


class SavedModelDensity:
    """The scoring and sampling interface on an exported SavedModel (what the service drives).

    Args:
        saved_model: the SavedModel folder, or an already loaded SavedModel object.
    """

    def __init__(self, saved_model: str | os.PathLike[str] | Any) -> None:
        if isinstance(saved_model, (str, os.PathLike)):
            saved_model = tf.saved_model.load(os.fspath(saved_model))
        self.saved_model = saved_model
        signatures = saved_model.signatures
        self._score = signatures[SIGNATURE_SCORE]
        self._score_exact = signatures[SIGNATURE_SCORE_EXACT]
        self._sample = signatures[SIGNATURE_SAMPLE]
        self.input_dim = int(saved_model.input_dim.numpy())
        self.levels = int(saved_model.levels.numpy()) or None

    def score(self, x: Any, exact: bool = False) -> dict[str, np.ndarray]:
        """{"log_prob": [B], "bits_per_dim": [B]} of rows x [B, D] in data units."""
        fn = self._score_exact if exact else self._score
        out = fn(x=tf.convert_to_tensor(np.asarray(x, np.float32)))
        return {key: value.numpy() for key, value in out.items()}

    def sample(self, num_samples: int, seed: int) -> dict[str, np.ndarray]:
        """{"samples": [N, D], "iterations": [L], "last_change": [L]}."""
        out = self._sample(
            num_samples=tf.constant(num_samples, tf.int32), seed=tf.constant(seed, tf.int64)
        )
        return {key: value.numpy() for key, value in out.items()}
