"""The i-ResNet flow: fixed-point inversion, the change of variables, sampling, save and load."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.density.actnorm import ActNorm
from models.density.data import two_moons
from models.density.iresnet_flow import IResNetFlow, standard_normal_log_prob
from models.density.logdet import LogDetConfig
from models.density.residual_block import fixed_point_inverse


def _flow(dim: int, seed: int, dtype: str = "float64", **kwargs) -> IResNetFlow:
    keras.utils.set_random_seed(seed)
    options = {"num_blocks": 3, "hidden_units": (16, 16), "seed": seed, "dtype": dtype}
    options.update(kwargs)
    flow = IResNetFlow(**options)
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((256, dim)) * rng.uniform(0.5, 3.0, dim) + rng.normal(0, 2, dim)
    flow.initialize(tf.constant(data, dtype))
    flow.update_spectral_norms(200)  # Lip(g) <= c holds only once sigma has converged
    return flow


@pytest.mark.parametrize("dim", [4, 8])
def test_fixed_point_inverse_reconstructs_inputs(dim):
    flow = _flow(dim, seed=dim, actnorm_between_blocks=True)
    x = np.random.default_rng(0).standard_normal((32, dim)) * 2.0
    z = flow(tf.constant(x))
    result = flow.inverse(z, tolerance=1e-12, max_iterations=500)
    assert np.abs(result.x.numpy() - x).max() < 1e-9
    iterations = result.iterations.numpy()
    assert iterations.shape == (3,)
    assert np.all(iterations > 0) and np.all(iterations < 500)
    assert np.all(result.last_changes.numpy() <= 1e-12)


def test_fixed_point_inverse_in_float32_and_the_iteration_budget():
    flow = _flow(6, seed=1, dtype="float32")
    x = np.random.default_rng(1).standard_normal((64, 6)).astype(np.float32)
    z = flow(tf.constant(x))
    tight = flow.inverse(z, tolerance=1e-6, max_iterations=200)
    assert np.abs(tight.x.numpy() - x).max() < 1e-5
    loose = flow.inverse(z, tolerance=1e-2, max_iterations=200)
    assert np.all(tight.iterations.numpy() > loose.iterations.numpy())
    assert np.all(loose.iterations.numpy() > 0)
    # float64 input to a float32 model is cast, not rejected.
    np.testing.assert_allclose(
        flow.log_prob(tf.constant(x, tf.float64)), flow.log_prob(x), rtol=1e-6
    )
    capped = flow.inverse(z, tolerance=0.0, max_iterations=2)
    np.testing.assert_array_equal(capped.iterations.numpy(), [2, 2, 2])
    assert np.abs(capped.x.numpy() - x).max() > 1e-4


def test_fixed_point_inverse_of_a_contraction_and_in_tf_function():
    a = tf.constant([[0.0, 0.5], [-0.5, 0.0]], tf.float64)  # Lip 0.5: error halves each step

    def residual(t: tf.Tensor) -> tf.Tensor:
        return tf.tanh(tf.matmul(t, a))

    x = tf.constant(np.random.default_rng(2).standard_normal((8, 2)))
    y = x + residual(x)
    result = tf.function(lambda t: fixed_point_inverse(residual, t, 1e-12, 200))(y)
    np.testing.assert_allclose(result.x, x, atol=1e-11)
    assert 20 <= int(result.iterations) <= 60


def test_logdet_is_that_of_the_whole_flow_jacobian():
    flow = _flow(3, seed=3, actnorm_between_blocks=True)
    x = tf.constant(np.random.default_rng(3).standard_normal((5, 3)))
    z, logdet = flow.forward(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z_again = flow(x)
    jacobian = tape.batch_jacobian(z_again, x).numpy()
    np.testing.assert_allclose(z, z_again, atol=1e-12)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(jacobian)[1], atol=1e-10)
    np.testing.assert_allclose(
        flow.log_prob(x), standard_normal_log_prob(z).numpy() + logdet.numpy(), atol=1e-12
    )


def test_density_integrates_to_one_on_a_grid():
    keras.utils.set_random_seed(0)
    flow = IResNetFlow(
        num_blocks=3,
        hidden_units=(16,),
        lipschitz_coefficient=0.9,
        actnorm_between_blocks=True,
        seed=0,
        dtype="float64",
    )
    flow.initialize(tf.constant(two_moons(500, np.random.default_rng(0))))
    flow.update_spectral_norms(200)
    half_width, points = 8.0, 300
    axis = np.linspace(-half_width, half_width, points)
    cell = (axis[1] - axis[0]) ** 2
    grid = np.stack([g.ravel() for g in np.meshgrid(axis, axis)], axis=-1)
    z, logdet = flow.forward(tf.constant(grid), LogDetConfig(method="exact"))
    density = np.exp(standard_normal_log_prob(z).numpy() + logdet.numpy())
    assert density.sum() * cell == pytest.approx(1.0, abs=0.01)
    # The blocks do bend space: with only the ActNorms' log-det the mass is off by far more.
    actnorm_logdet = sum(
        float(tf.reduce_sum(step.log_scale)) for step in flow.steps if isinstance(step, ActNorm)
    )
    without_blocks = np.exp(standard_normal_log_prob(z).numpy() + actnorm_logdet)
    assert abs(without_blocks.sum() * cell - 1.0) > 0.05


def test_sample_inverts_base_draws():
    flow = _flow(4, seed=5)
    samples = flow.sample(16, generator=tf.random.Generator.from_seed(7), tolerance=1e-12)
    z = tf.random.Generator.from_seed(7).normal((16, 4), dtype=tf.float64)
    np.testing.assert_allclose(flow(samples.x), z, atol=1e-9)
    assert np.all(samples.iterations.numpy() > 0)


def test_training_calls_advance_power_iteration_and_inference_does_not():
    flow = _flow(3, seed=6, dtype="float32", power_iterations=1)
    x = tf.random.stateless_normal((8, 3), seed=(0, 1))
    layer = flow.blocks[0].dense_layers[0]
    layer.u.assign(tf.math.l2_normalize(tf.ones_like(layer.u)))  # away from the fixed point
    u0 = layer.u.numpy().copy()
    flow.forward(x, LogDetConfig(method="series", n_terms=3))
    flow(x)
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    flow.forward(x, LogDetConfig(method="roulette"), training=True)
    assert np.abs(layer.u.numpy() - u0).max() > 1e-3


def test_save_and_load_gives_the_same_density_and_inverse(tmp_path):
    flow = _flow(3, seed=8, actnorm_between_blocks=True, activation="elu")
    x = tf.constant(np.random.default_rng(8).standard_normal((6, 3)))
    path = tmp_path / "iresnet.keras"
    flow.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, IResNetFlow)
    assert loaded.get_config()["activation"] == "elu"
    # The ActNorm statistics and u, v are restored: no re-initialisation from this batch.
    np.testing.assert_allclose(loaded.log_prob(x), flow.log_prob(x), atol=1e-12)
    z = flow(x)
    np.testing.assert_allclose(loaded.inverse(z, 1e-12).x, flow.inverse(z, 1e-12).x, atol=1e-12)
