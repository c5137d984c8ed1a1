"""Spectral normalisation: power-iteration sigma against the SVD, and the soft bound <= c."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.density.spectral_norm import (
    SpectralNormConv2D,
    SpectralNormDense,
    conv2d_operator_matrix,
    exact_spectral_norm,
)

COEFF = 0.9


def _dense(kernel: np.ndarray, **kwargs) -> SpectralNormDense:
    layer = SpectralNormDense(kernel.shape[1], seed=3, dtype="float64", **kwargs)
    layer.build((None, kernel.shape[0]))
    layer.kernel.assign(kernel)
    return layer


@pytest.mark.parametrize("shape", [(5, 7), (8, 3), (6, 6)])
def test_dense_power_iteration_matches_svd_and_bounds_the_norm(shape):
    rng = np.random.default_rng(sum(shape))
    kernel = 2.0 * rng.standard_normal(shape)
    layer = _dense(kernel, lipschitz_coefficient=COEFF)
    sigma = float(layer.power_iterate(500))
    top = np.linalg.svd(kernel, compute_uv=False)[0]
    assert sigma == pytest.approx(top, rel=1e-4)
    assert top > COEFF  # the rescaling is exercised
    normalized = np.asarray(layer.normalized_kernel())
    assert exact_spectral_norm(normalized) <= COEFF + 1e-6
    # The layer computes x W_tilde + b with that kernel.
    x = rng.standard_normal((4, shape[0]))
    np.testing.assert_allclose(layer(x), x @ normalized + np.asarray(layer.bias), atol=1e-12)


def test_dense_kernel_below_the_coefficient_is_left_alone():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((4, 4))
    kernel *= 0.5 / np.linalg.svd(kernel, compute_uv=False)[0]
    layer = _dense(kernel, lipschitz_coefficient=COEFF)
    layer.power_iterate(200)
    np.testing.assert_allclose(layer.normalized_kernel(), kernel, atol=1e-12)


def test_power_iteration_runs_only_in_training_calls():
    keras.utils.set_random_seed(1)
    layer = SpectralNormDense(5, power_iterations=2, seed=0)
    x = tf.random.normal((3, 4))
    layer(x)  # build
    u0 = layer.u.numpy().copy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    layer(x, training=True)
    assert np.abs(layer.u.numpy() - u0).max() > 1e-4
    assert np.linalg.norm(layer.u.numpy()) == pytest.approx(1.0, abs=1e-5)


def test_sigma_is_differentiable_in_the_kernel_only():
    keras.utils.set_random_seed(2)
    layer = SpectralNormDense(3, seed=0, dtype="float64")
    layer.build((None, 3))
    layer.power_iterate(300)
    with tf.GradientTape() as tape:
        sigma = layer.sigma()
    grad = tape.gradient(sigma, layer.kernel)
    # d(u^T W v)/dW = u v^T with u, v held fixed: the top singular pair's outer product.
    np.testing.assert_allclose(grad, np.outer(layer.u.numpy(), layer.v.numpy()), atol=1e-12)


def test_conv_operator_matrix_applies_the_convolution():
    rng = np.random.default_rng(4)
    kernel = rng.standard_normal((3, 3, 2, 3))
    x = rng.standard_normal((5, 5, 2))
    matrix = conv2d_operator_matrix(kernel, (5, 5, 2), strides=1, padding="SAME")
    expected = tf.nn.conv2d(x[None], kernel, strides=1, padding="SAME").numpy().reshape(-1)
    np.testing.assert_allclose(matrix @ x.reshape(-1), expected, atol=1e-12)


@pytest.mark.parametrize(("strides", "padding"), [(1, "same"), (2, "same"), (1, "valid")])
def test_conv_power_iteration_matches_operator_norm(strides, padding):
    keras.utils.set_random_seed(5)
    layer = SpectralNormConv2D(
        3, kernel_size=3, strides=strides, padding=padding, seed=1, dtype="float64"
    )
    layer.build((None, 6, 6, 2))
    # The convolution's top singular values are close together (1.710, 1.700): slow convergence.
    sigma = float(layer.power_iterate(2000))
    matrix = conv2d_operator_matrix(layer.kernel.numpy(), (6, 6, 2), strides, padding.upper())
    top = exact_spectral_norm(matrix)
    assert sigma == pytest.approx(top, rel=1e-4)
    # The operator norm, not the reshaped kernel's, is what is bounded.
    assert abs(top - exact_spectral_norm(layer.kernel.numpy().reshape(-1, 3))) > 1e-3
    if top > COEFF:
        normalized = conv2d_operator_matrix(
            layer.normalized_kernel().numpy(), (6, 6, 2), strides, padding.upper()
        )
        assert exact_spectral_norm(normalized) <= COEFF + 1e-6


def test_layers_round_trip_their_config():
    dense = SpectralNormDense(4, lipschitz_coefficient=0.7, power_iterations=3, seed=9)
    clone = SpectralNormDense.from_config(dense.get_config())
    assert (clone.units, clone.lipschitz_coefficient, clone.power_iterations, clone.seed) == (
        4,
        0.7,
        3,
        9,
    )
    conv = SpectralNormConv2D(8, kernel_size=1, strides=2, padding="valid")
    clone_conv = SpectralNormConv2D.from_config(conv.get_config())
    assert (clone_conv.filters, clone_conv.strides, clone_conv.padding) == (8, 2, "valid")
