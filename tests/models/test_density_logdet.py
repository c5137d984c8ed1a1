"""log det(I + J_g): the power series against slogdet and its truncation bound, and the
Hutchinson and Russian-roulette estimators against the exact value."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.density.logdet import (
    LogDetConfig,
    exact_logdet,
    hutchinson_logdet,
    power_series_logdet_from_jacobian,
    residual_logdet,
    roulette_survival,
    russian_roulette_logdet,
    sample_roulette_terms,
    truncation_error_bound,
)
from models.density.residual_block import InvertibleResidualBlock

LIP = 0.9


def _contractions(rng: np.random.Generator, count: int, dim: int, norm: float) -> np.ndarray:
    """Random non-symmetric [count, dim, dim] matrices with spectral norm exactly `norm`."""
    a = rng.standard_normal((count, dim, dim))
    return a * (norm / np.linalg.norm(a, ord=2, axis=(1, 2)))[:, None, None]


def _block(dim: int, hidden: tuple[int, ...], coeff: float, seed: int) -> InvertibleResidualBlock:
    keras.utils.set_random_seed(seed)
    block = InvertibleResidualBlock(hidden, lipschitz_coefficient=coeff, seed=seed, dtype="float64")
    block.build((None, dim))
    block.update_spectral_norms(300)
    return block


def _jacobian(block: InvertibleResidualBlock, x: np.ndarray) -> np.ndarray:
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        gx = block.residual(t)
    return tape.batch_jacobian(gx, t).numpy()


@pytest.mark.parametrize("dim", [2, 5, 10])
def test_power_series_with_exact_traces_matches_slogdet(dim):
    rng = np.random.default_rng(dim)
    jac = _contractions(rng, 8, dim, LIP)
    expected = np.linalg.slogdet(np.eye(dim) + jac)[1]
    series = power_series_logdet_from_jacobian(tf.constant(jac), n_terms=400).numpy()
    np.testing.assert_allclose(series, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_terms", [1, 2, 5, 10, 20])
def test_truncated_series_error_is_within_the_bound(n_terms):
    rng = np.random.default_rng(n_terms)
    dim = 4
    jac = _contractions(rng, 32, dim, LIP)
    expected = np.linalg.slogdet(np.eye(dim) + jac)[1]
    series = power_series_logdet_from_jacobian(tf.constant(jac), n_terms).numpy()
    bound = truncation_error_bound(LIP, dim, n_terms)
    assert np.all(np.abs(series - expected) <= bound)
    if n_terms <= 2:
        assert np.abs(series - expected).max() > 1e-3  # truncation does show at low order


@pytest.mark.parametrize(("dim", "n_terms"), [(1, 1), (3, 5), (8, 10), (8, 40)])
def test_worst_case_minus_c_identity_attains_the_bound(dim, n_terms):
    c = LIP
    exact = dim * math.log(1 - c)
    truncated = -dim * math.fsum(c**k / k for k in range(1, n_terms + 1))
    tail = dim * math.fsum(c**k / k for k in range(n_terms + 1, 3000))  # independent of the code
    jac = tf.constant(-c * np.eye(dim)[None])
    series = float(power_series_logdet_from_jacobian(jac, n_terms)[0])
    assert series == pytest.approx(truncated, abs=1e-12)
    assert exact - series == pytest.approx(-tail, abs=1e-12)  # the series overshoots upwards
    assert abs(exact - series) == pytest.approx(truncation_error_bound(c, dim, n_terms), abs=1e-12)
    assert abs(exact - series) <= dim * c ** (n_terms + 1) / ((n_terms + 1) * (1 - c))

    # Hutchinson with Rademacher probes is exact here: v^T (-cI)^k v = (-c)^k d.
    x = tf.constant(np.random.default_rng(0).standard_normal((5, dim)))
    _, estimate = hutchinson_logdet(
        lambda t: -c * t,
        x,
        n_terms,
        probe="rademacher",
        generator=tf.random.Generator.from_seed(1),
    )
    np.testing.assert_allclose(estimate, truncated, atol=1e-12)


def test_exact_logdet_matches_a_finite_difference_jacobian():
    block = _block(3, (8, 8), 0.9, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 3))
    gx, logdet = exact_logdet(block.residual, tf.constant(x))
    h = 1e-6
    columns = []
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        plus = block.residual(tf.constant(x + e)).numpy()
        minus = block.residual(tf.constant(x - e)).numpy()
        columns.append((plus - minus) / (2 * h))
    jac = np.stack(columns, axis=-1)
    np.testing.assert_allclose(gx, block.residual(tf.constant(x)), atol=1e-14)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(np.eye(3) + jac)[1], atol=1e-8)


@pytest.mark.parametrize("activation", ["lipswish", "elu"])
@pytest.mark.parametrize(("dim", "hidden"), [(1, (8,)), (2, (16, 16)), (2, ()), (5, (8, 8, 8))])
def test_closed_form_jacobian_and_logdet_match_autodiff(activation, dim, hidden):
    """The block's closed-form Jacobian (used by training with the exact log-det, by evaluation
    and by `score_exact`) equals autodiff's, and so do the log-det and its gradients."""
    keras.utils.set_random_seed(dim)
    block = InvertibleResidualBlock(
        hidden, activation=activation, lipschitz_coefficient=0.97, seed=dim, dtype="float64"
    )
    block.build((None, dim))
    for layer in block.dense_layers:  # weights past the bound, so every layer is rescaled
        layer.kernel.assign(layer.kernel * 4.0)
        layer.bias.assign(tf.random.normal(layer.bias.shape, dtype="float64"))
    block.update_spectral_norms(300)
    x = tf.constant(np.random.default_rng(dim).standard_normal((32, dim)) * 2.0)
    gx, jac = block.residual_and_jacobian(x)
    np.testing.assert_allclose(gx, block.residual(x), atol=1e-12)
    np.testing.assert_allclose(jac, _jacobian(block, x.numpy()), atol=1e-12)
    with tf.GradientTape(persistent=True) as tape:
        _, closed = block.exact_logdet(x)
        _, reference = exact_logdet(block.residual, x)
        closed_sum, reference_sum = tf.reduce_sum(closed), tf.reduce_sum(reference)
    np.testing.assert_allclose(closed, reference, atol=1e-12)
    assert float(tf.reduce_max(tf.abs(reference))) > 1e-3  # not a trivially flat block
    variables = block.trainable_variables
    for a, b in zip(
        tape.gradient(closed_sum, variables), tape.gradient(reference_sum, variables), strict=True
    ):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-10)


def test_power_series_of_a_block_jacobian_matches_exact_logdet():
    block = _block(4, (16,), 0.95, seed=2)
    x = np.random.default_rng(3).standard_normal((16, 4)) * 2.0
    jac = _jacobian(block, x)
    assert np.linalg.norm(jac, ord=2, axis=(1, 2)).max() <= 0.95**2 + 1e-6
    _, exact = exact_logdet(block.residual, tf.constant(x))
    series = power_series_logdet_from_jacobian(tf.constant(jac), n_terms=300)
    np.testing.assert_allclose(series, exact, atol=1e-10)


def _map_and_points(kind: str):
    """A residual map g, three points, the exact log det(I + J_g) there, and draws per point.

    "linear": g(x) = A x, A non-symmetric with spectral norm 0.6 and eigenvalues near -0.4, so
    the log-determinant (about -1.6) is large against the Hutchinson noise and every series term
    has the same sign: a wrong weight or sign shows. "block": a spectrally normalised MLP.
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 3))
    if kind == "linear":
        a = -0.7 * np.eye(3) + 0.3 * _contractions(rng, 1, 3, 1.0)[0]
        a *= 0.6 / np.linalg.norm(a, ord=2)

        def residual(t: tf.Tensor) -> tf.Tensor:
            return tf.matmul(t, tf.constant(a.T))

        return residual, x, np.full(3, np.linalg.slogdet(np.eye(3) + a)[1]), 20_000
    block = _block(3, (8,), 0.8, seed=4)
    return block.residual, x, exact_logdet(block.residual, tf.constant(x))[1].numpy(), 4000


def _assert_unbiased(estimates: np.ndarray, exact: np.ndarray, draws: int) -> None:
    per_point = estimates.reshape(len(exact), draws)
    mean = per_point.mean(axis=1)
    standard_error = per_point.std(axis=1, ddof=1) / math.sqrt(draws)
    assert np.all(standard_error > 0)
    # Informative, not just wide: the 3-SE band is a few percent of the value or 0.01 nats.
    assert np.all(3 * standard_error < 0.05 * np.abs(exact) + 0.01)
    assert np.all(np.abs(mean - exact) < 3 * standard_error), (mean, exact, standard_error)


@pytest.mark.parametrize("kind", ["linear", "block"])
@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_hutchinson_series_mean_matches_the_exact_logdet(probe, kind):
    residual, x, exact, draws = _map_and_points(kind)
    # 40 terms at Lip(g) <= 0.64: truncation below 3 * 0.64^41 / (41 * 0.36) = 2e-9.
    assert truncation_error_bound(0.64, 3, 40) < 1e-8
    _, estimates = hutchinson_logdet(
        residual,
        tf.constant(np.repeat(x, draws, axis=0)),  # point-major: row i * draws + r
        n_terms=40,
        probe=probe,
        generator=tf.random.Generator.from_seed(6),
    )
    _assert_unbiased(estimates.numpy(), exact, draws)


ROULETTES = [
    LogDetConfig(method="roulette"),
    LogDetConfig(method="roulette", n_exact_terms=0, geometric_p=0.3, probe="rademacher"),
    LogDetConfig(method="roulette", distribution="poisson", poisson_rate=2.0),
]
ROULETTE_IDS = ["geometric", "geometric-no-exact", "poisson"]


@pytest.mark.parametrize("kind", ["linear", "block"])
@pytest.mark.parametrize("config", ROULETTES, ids=ROULETTE_IDS)
def test_russian_roulette_mean_matches_the_exact_logdet(config, kind):
    residual, x, exact, draws = _map_and_points(kind)
    _, estimates = russian_roulette_logdet(
        residual,
        tf.constant(np.repeat(x, draws, axis=0)),
        config,
        generator=tf.random.Generator.from_seed(9),
    )
    _assert_unbiased(estimates.numpy(), exact, draws)


@pytest.mark.parametrize("config", ROULETTES, ids=ROULETTE_IDS)
def test_russian_roulette_term_weights_alone_are_unbiased(config):
    """A diagonal J with Rademacher probes has exact traces (v^T J^k v = tr J^k since v_i^2 = 1),
    so only the random term count varies: this isolates the 1 / P(N >= k) weights."""
    diagonal = np.array([-0.7, -0.5, 0.3])
    exact = np.log1p(diagonal).sum()
    draws = 20_000
    _, estimates = russian_roulette_logdet(
        lambda t: t * tf.constant(diagonal),
        tf.zeros((draws, 3), tf.float64),
        LogDetConfig(
            method="roulette",
            n_exact_terms=config.n_exact_terms,
            distribution=config.distribution,
            geometric_p=config.geometric_p,
            poisson_rate=config.poisson_rate,
            probe="rademacher",
        ),
        generator=tf.random.Generator.from_seed(10),
    )
    _assert_unbiased(estimates.numpy(), np.array([exact]), draws)
    # Without the reweighting the mean would sit at the expected truncated sum, far off.
    assert np.std(estimates.numpy()) > 0


@pytest.mark.parametrize(
    "config",
    [
        LogDetConfig(method="roulette", n_exact_terms=2, geometric_p=0.4),
        LogDetConfig(method="roulette", n_exact_terms=1, distribution="poisson", poisson_rate=1.5),
    ],
    ids=["geometric", "poisson"],
)
def test_roulette_survival_is_the_law_of_the_sampled_term_counts(config):
    counts = sample_roulette_terms(200_000, config, tf.random.Generator.from_seed(0)).numpy()
    assert counts.min() >= 1
    k = np.arange(1, 9)
    survival = roulette_survival(tf.constant(k), config).numpy()
    np.testing.assert_array_equal(survival[: config.n_exact_terms], 1.0)
    j = k - config.n_exact_terms
    empirical = np.array([(counts >= jj).mean() if jj > 0 else 1.0 for jj in j])
    np.testing.assert_allclose(survival, empirical, atol=4e-3)


def test_estimators_trace_in_tf_function_like_eager():
    block = _block(3, (8,), 0.8, seed=10)
    x = tf.constant(np.random.default_rng(11).standard_normal((5, 3)))
    for config in (LogDetConfig(method="series", n_terms=6), LogDetConfig(method="roulette")):
        eager = residual_logdet(block.residual, x, config, tf.random.Generator.from_seed(3))[1]
        generator = tf.random.Generator.from_seed(3)
        graph_fn = tf.function(
            lambda t, config=config, generator=generator: residual_logdet(
                block.residual, t, config, generator
            )[1]
        )
        np.testing.assert_allclose(graph_fn(x), eager, atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "series", "roulette"])
def test_logdet_is_differentiable_in_the_weights(method):
    block = _block(3, (8,), 0.9, seed=12)
    x = tf.constant(np.random.default_rng(13).standard_normal((4, 3)))
    config = LogDetConfig(method=method)
    with tf.GradientTape() as tape:
        _, logdet = residual_logdet(block.residual, x, config, tf.random.Generator.from_seed(0))
        total = tf.reduce_sum(logdet)
    variables = block.trainable_variables
    grads = dict(zip((v.path for v in variables), tape.gradient(total, variables), strict=True))
    # J_g does not depend on the output layer's bias; everything else must get a gradient.
    output_bias = block.dense_layers[-1].bias.path
    assert grads.pop(output_bias) is None
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads.values())
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads.values())


def test_logdet_config_rejects_bad_settings():
    with pytest.raises(ValueError):
        LogDetConfig(method="lanczos")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LogDetConfig(geometric_p=1.0)
    with pytest.raises(ValueError):
        LogDetConfig(n_terms=0)
    with pytest.raises(ValueError):
        truncation_error_bound(1.0, 2, 3)


NEUMANN_CONFIGS = [
    LogDetConfig(method="series", n_terms=6, n_probes=3, neumann_gradient=True),
    LogDetConfig(method="roulette", n_probes=3, neumann_gradient=True),
]


@pytest.mark.parametrize("config", NEUMANN_CONFIGS, ids=["series", "roulette"])
def test_neumann_gradient_keeps_the_estimators_value(config):
    block = _block(3, (8,), 0.9, seed=20)
    x = tf.constant(np.random.default_rng(21).standard_normal((5, 3)))
    plain = LogDetConfig(**{**config.__dict__, "neumann_gradient": False})
    expected = residual_logdet(block.residual, x, plain, tf.random.Generator.from_seed(4))
    got = residual_logdet(block.residual, x, config, tf.random.Generator.from_seed(4))
    np.testing.assert_allclose(got[0], expected[0], atol=1e-12)  # g(x)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-10)  # the estimate


def _flat(grads, tensors) -> np.ndarray:
    """Gradients as one vector, zeros where a tensor got none."""
    return np.concatenate(
        [
            np.zeros(t.shape).ravel() if g is None else np.ravel(g)
            for g, t in zip(grads, tensors, strict=True)
        ]
    )


def _gradients(block, x, config, seed):
    """d sum(log det) / d (x, weights) by `config` (exact when None), as one flat vector."""
    variables = block.trainable_variables
    with tf.GradientTape() as tape:
        tape.watch(x)
        if config is None:
            _, logdet = exact_logdet(block.residual, x)
        else:
            _, logdet = residual_logdet(
                block.residual, x, config, tf.random.Generator.from_seed(seed)
            )
        total = tf.reduce_sum(logdet)
    return _flat(tape.gradient(total, [x, *variables]), [x, *variables])


@pytest.mark.parametrize("method", ["series", "roulette"])
def test_neumann_gradient_is_the_exact_gradient_in_expectation(method):
    """Averaged over many probes, (3) is the gradient of the exact log-det in x and the weights."""
    block = _block(3, (8,), 0.9, seed=22)
    x = tf.constant(np.random.default_rng(23).standard_normal((2, 3)))
    exact = _gradients(block, x, None, 0)
    # 30 terms leave a truncation error far below the probe noise of 4,000 Rademacher probes.
    config = LogDetConfig(
        method=method, n_terms=30, n_probes=4000, probe="rademacher", neumann_gradient=True
    )
    neumann = _gradients(block, x, config, seed=5)
    relative = np.linalg.norm(neumann - exact) / np.linalg.norm(exact)
    assert relative < 0.05, relative
    # One probe is a noisy, not a wrong, gradient: far from exact, but pointing its way.
    single = _gradients(block, x, LogDetConfig(**{**config.__dict__, "n_probes": 1}), seed=6)
    assert np.linalg.norm(single - exact) / np.linalg.norm(exact) > relative


def test_neumann_gradient_traces_in_tf_function():
    block = _block(3, (8,), 0.9, seed=24)
    x = tf.constant(np.random.default_rng(25).standard_normal((4, 3)))
    config = NEUMANN_CONFIGS[1]
    eager = _gradients(block, x, config, seed=7)

    generator = tf.random.Generator.from_seed(7)

    @tf.function
    def graph_gradients(t):
        variables = block.trainable_variables
        with tf.GradientTape() as tape:
            tape.watch(t)
            total = tf.reduce_sum(residual_logdet(block.residual, t, config, generator)[1])
        return tape.gradient(total, [t, *variables])

    graph = _flat(graph_gradients(x), [x, *block.trainable_variables])
    np.testing.assert_allclose(graph, eager, atol=1e-10)
