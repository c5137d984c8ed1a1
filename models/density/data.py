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
Grathwohl et al.'s FFJORD (ICLR 2019), which i-ResNet and Residual Flows also show, plus two
Gaussian blobs with an empty gap between them (the anomaly-detection case); each draws from the
numpy generator it is given, so a seed fixes the data. `toy_log_density` gives each one's true
log-density: in closed form for the Gaussian mixtures and the checkerboard, and for the moons and
rings (a uniform angle on a curve, blurred by Gaussian noise) as a fine quadrature over the angle.
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


# Two blobs: centres (+-BLOB_OFFSET, 0), std BLOB_SCALE, so the gap at the origin lies 6 standard
# deviations from either centre (its true density is e^-18 of theirs).
BLOB_OFFSET = 3.0
BLOB_SCALE = 0.5


def two_blobs(
    num_samples: int,
    rng: np.random.Generator,
    offset: float = BLOB_OFFSET,
    scale: float = BLOB_SCALE,
) -> np.ndarray:
    """An equal mixture of two isotropic Gaussians at (+-offset, 0), std `scale`: [N, 2]."""
    side = np.where(rng.random(num_samples) < 0.5, -1.0, 1.0)
    centres = np.stack([side * offset, np.zeros(num_samples)], axis=-1)
    return centres + scale * rng.standard_normal((num_samples, 2))


TOY_DATASETS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "two_blobs": two_blobs,
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


# Quadrature nodes over the angle of the moons and rings: the arcs have radius <= 2 and noise
# >= 0.08, so nodes at most 2 pi * 2 / 2048 = 0.006 apart resolve the Gaussian blur 13-fold.
_ANGLE_NODES = 2048
_LOG_2PI = math.log(2.0 * math.pi)


def _log_mixture_of_isotropic(x: np.ndarray, centres: np.ndarray, scale: float) -> np.ndarray:
    """log of the equal mixture of N(centre, scale^2 I) over `centres` [M, 2], at x [N, 2]: [N].

    A mixture over many centres (quadrature nodes along a curve) is evaluated in chunks of rows,
    with a log-sum-exp so that points far from every centre do not underflow to -inf. The squared
    distances are |x|^2 + |c|^2 - 2 x.c, one matrix product (in float64 the cancellation costs
    ~1e-12 of distances of order 10, far below the scales): 30% less CPU than forming every x - c
    (the rings on a 240 x 240 grid; the exp is the rest).
    """
    x = np.asarray(x, np.float64)
    centres = np.asarray(centres, np.float64)
    centre_sq = (centres**2).sum(axis=-1)
    out = np.empty(len(x))
    for start in range(0, len(x), 2048):
        part = x[start : start + 2048]
        sq = (part**2).sum(axis=-1)[:, None] + centre_sq[None, :] - 2.0 * (part @ centres.T)
        logits = -0.5 * np.maximum(sq, 0.0) / scale**2
        top = logits.max(axis=1)
        out[start : start + 2048] = top + np.log(np.exp(logits - top[:, None]).mean(axis=1))
    return out - _LOG_2PI - 2.0 * math.log(scale)


def _midpoints(low: float, high: float, count: int) -> np.ndarray:
    return low + (np.arange(count) + 0.5) * (high - low) / count


def two_blobs_log_density(x: np.ndarray) -> np.ndarray:
    centres = np.array([[-BLOB_OFFSET, 0.0], [BLOB_OFFSET, 0.0]])
    return _log_mixture_of_isotropic(x, centres, BLOB_SCALE)


def eight_gaussians_log_density(x: np.ndarray) -> np.ndarray:
    angle = np.arange(8) * (math.pi / 4.0)
    return _log_mixture_of_isotropic(x, 2.0 * np.stack([np.cos(angle), np.sin(angle)], -1), 0.2)


def two_moons_log_density(x: np.ndarray) -> np.ndarray:
    """`two_moons`: each half circle's angle is uniform on [0, pi], then scaled by 2, plus noise."""
    angle = _midpoints(0.0, math.pi, _ANGLE_NODES // 2)
    upper = np.stack([np.cos(angle) - 0.5, np.sin(angle) - 0.25], axis=-1)
    lower = np.stack([0.5 - np.cos(angle), 0.25 - np.sin(angle)], axis=-1)
    return _log_mixture_of_isotropic(x, 2.0 * np.concatenate([upper, lower]), 0.1)


def circles_log_density(x: np.ndarray) -> np.ndarray:
    """`circles` with its default radii (1, 2) and noise 0.08."""
    angle = _midpoints(0.0, 2.0 * math.pi, _ANGLE_NODES)
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return _log_mixture_of_isotropic(x, np.concatenate([ring, 2.0 * ring]), 0.08)


def checkerboard_log_density(x: np.ndarray) -> np.ndarray:
    """1/8 on the 8 black unit squares of [-2, 2]^2 (column + row even, from -2), else 0."""
    x = np.asarray(x, np.float64)
    inside = np.all((x >= -2.0) & (x < 2.0), axis=-1)
    cells = np.floor(x + 2.0).astype(np.int64)
    black = (cells[:, 0] % 2) == (cells[:, 1] % 2)
    return np.where(inside & black, -math.log(8.0), -np.inf)


TOY_LOG_DENSITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "two_blobs": two_blobs_log_density,
    "two_moons": two_moons_log_density,
    "circles": circles_log_density,
    "eight_gaussians": eight_gaussians_log_density,
    "checkerboard": checkerboard_log_density,
}


def toy_log_density(name: str, x: np.ndarray) -> np.ndarray:
    """The true log-density [N] of toy `name` (a key of `TOY_DATASETS`) at points x [N, 2]."""
    if name not in TOY_LOG_DENSITIES:
        raise ValueError(f"toy dataset must be one of {sorted(TOY_LOG_DENSITIES)}, not {name!r}")
    return TOY_LOG_DENSITIES[name](x)
