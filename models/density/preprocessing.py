"""The fixed map between data units and the flow's input, part of the exported graph."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf


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
