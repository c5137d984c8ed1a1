"""ActNorm's data-dependent initialisation and log-determinant; the 1-Lipschitz activations."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.density.activations import LipSwish, make_activation
from models.density.actnorm import ActNorm


def test_actnorm_initialises_to_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3)) * [0.5, 2.0, 10.0] + [1.0, -3.0, 7.0]
    norm = ActNorm(dtype="float64")
    y = norm(x).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-5)
    # log |det| = sum of log-scales = -sum log std, for every example.
    expected = -np.log(x.std(axis=0)).sum()
    np.testing.assert_allclose(norm.log_det(x), np.full(500, expected), rtol=1e-5)
    # ... which is the log-determinant of its (diagonal) Jacobian.
    x_tf = tf.constant(x[:4])
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        out = norm(x_tf)
    jacobian = tape.batch_jacobian(out, x_tf).numpy()
    np.testing.assert_allclose(np.linalg.slogdet(jacobian)[1], expected, rtol=1e-5)


def test_actnorm_initialises_once_and_inverts():
    rng = np.random.default_rng(1)
    norm = ActNorm(dtype="float64")
    norm(rng.standard_normal((100, 2)) * 3.0)
    log_scale = norm.log_scale.numpy().copy()
    other = rng.standard_normal((50, 2)) + 5.0
    y = norm(other)
    np.testing.assert_array_equal(norm.log_scale.numpy(), log_scale)  # not re-initialised
    assert abs(float(tf.reduce_mean(y))) > 0.5
    np.testing.assert_allclose(norm.inverse(y), other, atol=1e-12)


def test_actnorm_initialises_inside_tf_function():
    norm = ActNorm()
    x = tf.random.stateless_normal((64, 3), seed=(1, 2)) * 4.0 + 2.0
    y = tf.function(norm)(x)
    assert int(norm.initialized.numpy()) == 1
    np.testing.assert_allclose(tf.reduce_mean(y, 0), 0.0, atol=1e-5)


def _max_slope(activation, x: np.ndarray) -> float:
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = activation(t)
    return float(tf.reduce_max(tf.abs(tape.gradient(y, t))))


@pytest.mark.parametrize("beta_raw", [-3.0, 0.5, 2.0, 20.0])
def test_lipswish_is_one_lipschitz(beta_raw):
    act = LipSwish(initial_beta_raw=beta_raw, dtype="float64")
    beta = float(np.log1p(np.exp(beta_raw)))
    grid = np.linspace(-12.0, 12.0, 200_001) / beta  # resolves the slope peak at x ~ 2.4 / beta
    slope = _max_slope(act, grid)
    assert slope <= 1.0
    # sup |(x sigmoid(beta x))'| = 1.0998 for every beta, so the bound is nearly tight.
    assert slope > 0.999
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 10_000)) * 4.0 / beta
    assert np.all(np.abs(act(a).numpy() - act(b).numpy()) <= np.abs(a - b) + 1e-12)


def test_lipswish_formula_and_elu_bound():
    act = LipSwish(dtype="float64")
    x = np.linspace(-3, 3, 7)
    beta = np.log1p(np.exp(0.5))
    np.testing.assert_allclose(act(x), x / (1 + np.exp(-beta * x)) / 1.1, rtol=1e-12)
    elu = make_activation("elu", dtype="float64")
    assert _max_slope(elu, np.linspace(-10, 10, 10_001)) <= 1.0
    with pytest.raises(ValueError, match="activation"):
        make_activation("relu6")
