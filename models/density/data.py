"""Data helpers for density models: dequantisation, the logit transform, bits per dimension, and
the 2-D toy densities of the flow literature.

Dequantisation (Theis et al., "A note on the evaluation of generative models", ICLR 2016; Uria et
al. 2013): a density on [0, 1)^D fitted to x' = (x + u) / K with x in {0, ..., K-1}^D and
u ~ U[0, 1)^D bounds the discrete log-likelihood from below,

    log P(x) >= E_u[log p(x')] - D log K,

so bits per dimension on the discrete data are -log p(x') / (D ln 2) + log2 K.

The logit transform (Dinh et al., "Density estimation using Real NVP", ICLR 2017, Sec. 4.1) maps
[0, 1) to the real line so that an unbounded flow can model it; it shrinks x towards 0.5 first,
p = alpha + (1 - 2 alpha) x, so that 0 does not go to -inf, and its log-determinant
sum_j log((1 - 2 alpha) / (p_j (1 - p_j))) joins the flow's.

The toy samplers (two moons, circles, eight Gaussians, checkerboard) follow the 2-D densities of
Grathwohl et al.'s FFJORD (ICLR 2019), which i-ResNet and Residual Flows also show; each draws from
the numpy generator it is given, so a seed fixes the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Real NVP's shrinkage for [0, 1) image data; i-ResNet and Residual Flows use 0.05 and 1e-6.
DEFAULT_LOGIT_ALPHA = 0.05
# 8-bit data.
DEFAULT_LEVELS = 256


def uniform_dequantize(
    x: np.ndarray, rng: np.random.Generator, levels: int = DEFAULT_LEVELS
) -> np.ndarray:
    """(x + u) / levels with u ~ U[0, 1): integers in {0, ..., levels-1} -> floats in [0, 1).

    Args:
        x: integer-valued array.
        rng: source of u.
        levels: number of discrete values K.

    Returns:
        float64 array of x's shape.
    """
    x = np.asarray(x, np.float64)
    if x.size and (x.min() < 0 or x.max() > levels - 1):
        raise ValueError(f"x must lie in [0, {levels - 1}]")
    return (x + rng.uniform(0.0, 1.0, size=x.shape)) / levels


def logit_transform(
    x: np.ndarray, alpha: float = DEFAULT_LOGIT_ALPHA
) -> tuple[np.ndarray, np.ndarray]:
    """y = logit(alpha + (1 - 2 alpha) x) and its log-determinant per example.

    Args:
        x: [B, ...] values in [0, 1].
        alpha: shrinkage towards 0.5, in [0, 0.5).

    Returns:
        (y of x's shape, log |det dy/dx| [B]).
    """
    x = np.asarray(x, np.float64)
    p = alpha + (1.0 - 2.0 * alpha) * x
    y = np.log(p) - np.log1p(-p)
    log_jacobian = math.log1p(-2.0 * alpha) - np.log(p) - np.log1p(-p)
    return y, log_jacobian.reshape(x.shape[0], -1).sum(axis=-1)


def inverse_logit_transform(y: np.ndarray, alpha: float = DEFAULT_LOGIT_ALPHA) -> np.ndarray:
    """x = (sigmoid(y) - alpha) / (1 - 2 alpha), the inverse of `logit_transform`."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(y, np.float64)))
    return (p - alpha) / (1.0 - 2.0 * alpha)


def bits_per_dim(
    log_prob: np.ndarray | float, dim: int, levels: int | None = None
) -> np.ndarray | float:
    """-log p / (D ln 2), plus log2(levels) for data dequantised and scaled to [0, 1).

    Args:
        log_prob: log-density in nats of the (continuous, scaled) data, per example.
        dim: D, the number of dimensions.
        levels: K of the dequantisation x' = (x + u) / K; None for continuous data.

    Returns:
        Bits per dimension, of log_prob's shape.
    """
    bits = -np.asarray(log_prob, np.float64) / (dim * math.log(2.0))
    if levels is not None:
        # The 1/K scaling multiplies the density by K^D: log2 K bits per dimension back.
        bits = bits + math.log2(levels)
    return float(bits) if bits.ndim == 0 else bits


def two_moons(num_samples: int, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """Two interleaved half circles with Gaussian noise, centred near the origin: [N, 2]."""
    upper = rng.random(num_samples) < 0.5
    angle = rng.uniform(0.0, math.pi, num_samples)
    x = np.where(upper, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x - 0.5, y - 0.25], axis=-1) * 2.0
    return points + noise * rng.standard_normal((num_samples, 2))


def circles(
    num_samples: int,
    rng: np.random.Generator,
    radii: tuple[float, float] = (1.0, 2.0),
    noise: float = 0.08,
) -> np.ndarray:
    """Two concentric rings of radii `radii`, half the points on each, with noise: [N, 2]."""
    radius = np.where(rng.random(num_samples) < 0.5, radii[0], radii[1])
    angle = rng.uniform(0.0, 2.0 * math.pi, num_samples)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return points + noise * rng.standard_normal((num_samples, 2))


def eight_gaussians(
    num_samples: int, rng: np.random.Generator, radius: float = 2.0, scale: float = 0.2
) -> np.ndarray:
    """An equal mixture of 8 Gaussians (std `scale`) evenly spaced on a circle: [N, 2]."""
    angle = rng.integers(0, 8, num_samples) * (math.pi / 4.0)
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return centres + scale * rng.standard_normal((num_samples, 2))


def checkerboard(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the 8 black squares of a 4x4 board over [-2, 2]^2 (2 per row): [N, 2]."""
    x = rng.uniform(-2.0, 2.0, num_samples)
    # Within each unit column pick one of its two black squares: rows alternate with the column.
    row = rng.integers(0, 2, num_samples) * 2 + (np.floor(x).astype(np.int64) % 2)
    y = row - 2.0 + rng.uniform(0.0, 1.0, num_samples)
    return np.stack([x, y], axis=-1)


TOY_DATASETS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "two_moons": two_moons,
    "circles": circles,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
}


def sample_toy(name: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """[N, 2] float64 draws from the toy density `name` (a key of `TOY_DATASETS`)."""
    if name not in TOY_DATASETS:
        raise ValueError(f"toy dataset must be one of {sorted(TOY_DATASETS)}, not {name!r}")
    return TOY_DATASETS[name](num_samples, rng)
