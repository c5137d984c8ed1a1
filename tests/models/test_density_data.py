"""Dequantisation, the logit transform, bits per dimension and the 2-D toy samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.density.data import (
    TOY_DATASETS,
    bits_per_dim,
    checkerboard,
    circles,
    eight_gaussians,
    inverse_logit_transform,
    logit_transform,
    sample_toy,
    uniform_dequantize,
)


def test_dequantisation_stays_in_the_bin_of_each_level():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 5))
    x[0, 0], x[0, 1] = 0, 255
    y = uniform_dequantize(x, rng, levels=256)
    assert y.min() >= 0.0 and y.max() < 1.0
    np.testing.assert_array_equal(np.floor(y * 256).astype(int), x)
    assert abs((y * 256 - x).mean() - 0.5) < 0.02  # u ~ U[0, 1)
    with pytest.raises(ValueError):
        uniform_dequantize(np.array([256]), rng, levels=256)


def test_bits_per_dim_known_cases():
    # A uniform density on [0, 1)^D over 8-bit data costs exactly 8 bits per dimension.
    assert bits_per_dim(0.0, dim=3072, levels=256) == pytest.approx(8.0)
    # Standard normal at its mode: log p = -D/2 log(2 pi), so log2(2 pi) / 2 bits per dimension.
    dim = 4
    log_p = np.array([-dim / 2 * math.log(2 * math.pi)])
    np.testing.assert_allclose(bits_per_dim(log_p, dim), [math.log2(2 * math.pi) / 2])
    np.testing.assert_allclose(
        bits_per_dim(log_p, dim, levels=16), [math.log2(2 * math.pi) / 2 + 4.0]
    )


def test_logit_transform_inverts_and_its_logdet_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, size=(6, 3))
    y, logdet = logit_transform(x, alpha=0.05)
    np.testing.assert_allclose(inverse_logit_transform(y, alpha=0.05), x, atol=1e-12)
    h = 1e-6  # elementwise map: the Jacobian is diagonal
    slope = (logit_transform(x + h)[0] - logit_transform(x - h)[0]) / (2 * h)
    np.testing.assert_allclose(logdet, np.log(slope).sum(axis=1), rtol=1e-7)
    assert np.isfinite(logit_transform(np.array([[0.0, 1.0]]), alpha=1e-6)[0]).all()


def test_toy_samplers_are_seeded_and_have_their_shapes():
    for name in TOY_DATASETS:
        a = sample_toy(name, 300, np.random.default_rng(7))
        b = sample_toy(name, 300, np.random.default_rng(7))
        c = sample_toy(name, 300, np.random.default_rng(8))
        assert a.shape == (300, 2)
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)
    with pytest.raises(ValueError):
        sample_toy("spirals", 10, np.random.default_rng(0))


def test_toy_samplers_geometry():
    rng = np.random.default_rng(3)
    board = checkerboard(2000, rng)
    assert np.abs(board).max() <= 2.0
    # Black squares only: column and row indices of equal parity.
    cells = np.floor(board).astype(int)
    assert np.all((cells[:, 0] + cells[:, 1]) % 2 == 0)

    radius = np.linalg.norm(circles(2000, rng, noise=0.0), axis=1)
    np.testing.assert_allclose(np.sort(np.unique(np.round(radius, 8))), [1.0, 2.0])

    points = eight_gaussians(4000, rng, radius=2.0, scale=0.01)
    angles = np.round(np.arctan2(points[:, 1], points[:, 0]) / (np.pi / 4)) % 8
    assert len(np.unique(angles)) == 8
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 2.0, atol=0.06)


def test_true_toy_log_densities_integrate_to_one_and_fit_their_samplers():
    from models.density.data import TOY_LOG_DENSITIES, toy_log_density

    assert set(TOY_LOG_DENSITIES) == set(TOY_DATASETS)
    axis = np.linspace(-6.0, 6.0, 161)
    xs, ys = np.meshgrid(axis, axis)
    points = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    area = (axis[1] - axis[0]) ** 2
    for name in TOY_DATASETS:
        density = np.exp(toy_log_density(name, points))
        # The checkerboard's edges fall between grid points, so its sum is coarser.
        assert abs(density.sum() * area - 1.0) < (0.03 if name == "checkerboard" else 2e-3), name
        # Where the sampler draws, the density is positive; a histogram of many draws matches it
        # on coarse cells (within sampling noise and the cells' averaging).
        draws = sample_toy(name, 200_000, np.random.default_rng(5))
        assert np.isfinite(toy_log_density(name, draws[:2000])).all(), name
        edges = np.linspace(-6.0, 6.0, 25)  # cells of 0.5 x 0.5
        counts, _, _ = np.histogram2d(draws[:, 0], draws[:, 1], bins=(edges, edges))
        fine = np.linspace(-6.0, 6.0, 241)[:-1] + 0.025  # cell centres of a 0.05 grid
        fx, fy = np.meshgrid(fine, fine, indexing="ij")
        cell_density = np.exp(toy_log_density(name, np.stack([fx.ravel(), fy.ravel()], -1)))
        mass = cell_density.reshape(24, 10, 24, 10).sum(axis=(1, 3)) * 0.05**2
        np.testing.assert_allclose(counts / len(draws), mass, atol=4e-3, err_msg=name)
    with pytest.raises(ValueError):
        toy_log_density("spirals", points[:1])


def test_two_blobs_gap_is_empty_and_checkerboard_white_squares_are_zero():
    from models.density.data import checkerboard_log_density, two_blobs_log_density

    lp = two_blobs_log_density(np.array([[0.0, 0.0], [3.0, 0.0]]))
    # Centre: log(1/2 N(0; 0, 0.25 I)); the gap is 6 standard deviations from both centres, so
    # both halves add there: 2 * 1/2 * exp(-6^2 / 2) against the centre's 1/2: -18 + log 2.
    np.testing.assert_allclose(lp[1], math.log(0.5 / (2 * math.pi * 0.25)), rtol=1e-9)
    np.testing.assert_allclose(lp[0] - lp[1], -18.0 + math.log(2.0), atol=1e-6)
    board = checkerboard_log_density(np.array([[-1.5, -1.5], [-0.5, -1.5], [2.5, 0.0]]))
    assert board[0] == pytest.approx(-math.log(8.0)) and np.isneginf(board[1:]).all()
