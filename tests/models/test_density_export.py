"""The density SavedModel: `score` against the in-memory model, `score_exact` against the series,
row-independence of the fixed probes, deterministic sampling, and discrete-data preprocessing."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.density.data import bits_per_dim, two_moons
from models.density.export import export_density_saved_model
from models.density.iresnet_flow import IResNetFlow
from models.density.logdet import LogDetConfig
from models.density.preprocessing import Preprocessing
from models.density.reader import SavedModelDensity
from models.density.scoring import data_log_prob, score_data

SERIES = LogDetConfig(method="series", n_terms=20, n_probes=8, probe="rademacher")
SEED = 77


def _flow(y: np.ndarray, seed: int = 0) -> IResNetFlow:
    keras.utils.set_random_seed(seed)
    flow = IResNetFlow(num_blocks=2, hidden_units=(16,), seed=seed)
    flow.initialize(tf.constant(y, tf.float32))
    return flow


@pytest.fixture(scope="module")
def continuous(tmp_path_factory: pytest.TempPathFactory) -> tuple[IResNetFlow, Preprocessing, Path]:
    data = two_moons(400, np.random.default_rng(0)) * np.array([3.0, 0.5]) + np.array([5.0, -1.0])
    pre = Preprocessing.standardizing(data)
    flow = _flow(pre.forward(tf.constant(data, tf.float32))[0].numpy())
    path = tmp_path_factory.mktemp("density") / "sm"
    names = export_density_saved_model(
        path, flow, pre, score_logdet=SERIES, score_seed=SEED, power_iterations=200
    )
    assert names == ["score", "score_exact", "sample", "serving_default"]
    return flow, pre, path


def test_score_matches_the_in_memory_model(continuous) -> None:
    flow, pre, path = continuous
    model = SavedModelDensity(path)
    assert model.input_dim == 2 and model.levels is None
    x = (two_moons(16, np.random.default_rng(1)) * [3.0, 0.5] + [5.0, -1.0]).astype(np.float32)

    exact = model.score(x, exact=True)
    # Independently: flow density of the standardised x, minus log of the scales.
    y = (x - np.array(pre.mean)) / np.array(pre.std)
    expected = flow.log_prob(tf.constant(y, tf.float32)).numpy() - np.log(pre.std).sum()
    np.testing.assert_allclose(exact["log_prob"], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(exact["bits_per_dim"], -expected / (2 * math.log(2)), atol=1e-4)

    series = model.score(x)
    in_memory = score_data(flow, pre, tf.constant(x), SERIES, SEED)["log_prob"].numpy()
    np.testing.assert_allclose(series["log_prob"], in_memory, rtol=1e-5, atol=1e-5)
    # The series is an estimate of the same log-determinant: close, but not equal.
    np.testing.assert_allclose(series["log_prob"], exact["log_prob"], atol=0.15)
    assert not np.array_equal(series["log_prob"], exact["log_prob"])


def test_score_is_deterministic_and_row_independent(continuous) -> None:
    _, _, path = continuous
    model = SavedModelDensity(path)
    x = np.random.default_rng(2).normal([5.0, -1.0], [3.0, 0.5], (6, 2)).astype(np.float32)
    first = model.score(x)["log_prob"]
    np.testing.assert_array_equal(model.score(x)["log_prob"], first)
    # A row scores the same alone, in another batch, or at another position.
    np.testing.assert_allclose(model.score(x[3:4])["log_prob"], first[3:4], rtol=1e-6)
    np.testing.assert_allclose(model.score(x[::-1])["log_prob"], first[::-1], rtol=1e-6)


def test_sample_is_finite_seeded_and_inverts_the_flow(continuous) -> None:
    flow, pre, path = continuous
    model = SavedModelDensity(path)
    out = model.sample(33, seed=5)
    samples = out["samples"]
    assert samples.shape == (33, 2) and np.isfinite(samples).all()
    assert out["iterations"].shape == (2,) and (out["iterations"] <= 100).all()
    assert (out["last_change"] <= 1e-6).all()  # converged within the budget
    np.testing.assert_array_equal(model.sample(33, seed=5)["samples"], samples)
    assert not np.allclose(model.sample(33, seed=6)["samples"], samples)
    assert model.sample(0, seed=5)["samples"].shape == (0, 2)
    # Pushing the samples forward gives back z ~ N(0, I) of that seed.
    z = flow(pre.forward(tf.constant(samples))[0]).numpy()
    seed = tf.constant([5, 0], tf.int64)
    np.testing.assert_allclose(z, tf.random.stateless_normal((33, 2), seed).numpy(), atol=1e-3)


def test_discrete_data_are_scored_at_bin_centres(tmp_path: Path) -> None:
    levels, dim = 5, 3
    rng = np.random.default_rng(3)
    x = rng.integers(0, levels, (300, dim)).astype(np.float64)
    pre = Preprocessing(dim, levels=levels, logit_alpha=0.05)
    v = x + rng.uniform(size=x.shape)
    flow = _flow(pre.forward(tf.constant(v, tf.float32))[0].numpy(), seed=1)
    export_density_saved_model(tmp_path, flow, pre, score_logdet=SERIES, power_iterations=100)
    model = SavedModelDensity(tmp_path)
    assert model.levels == levels

    rows = np.array([[0, 1, 4], [2, 2, 2], [5, 0, 0], [-1, 0, 0]], np.float32)
    out = model.score(rows, exact=True)
    centre = data_log_prob(flow, pre, tf.constant(rows[:2] + 0.5)).numpy()
    np.testing.assert_allclose(out["log_prob"][:2], centre, rtol=1e-5, atol=1e-5)
    assert np.isneginf(out["log_prob"][2:]).all()  # values outside [0, K-1]
    # Same convention as bits_per_dim on the scaled data: -log p(v / K) / (D ln 2) + log2 K.
    y, logit_logdet = pre.forward(tf.constant(rows[:2] + 0.5))
    scaled = flow.log_prob(y).numpy() + logit_logdet.numpy() + dim * math.log(levels)
    np.testing.assert_allclose(
        out["bits_per_dim"][:2], bits_per_dim(scaled, dim, levels), rtol=1e-4
    )

    samples = model.sample(50, seed=1)["samples"]
    assert samples.shape == (50, dim)
    assert np.array_equal(samples, np.round(samples))
    assert samples.min() >= 0 and samples.max() <= levels - 1
    assert np.isfinite(model.score(samples)["log_prob"]).all()


def test_preprocessing_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="discrete"):
        Preprocessing(2, logit_alpha=0.05)
    with pytest.raises(ValueError, match="both"):
        Preprocessing(2, mean=(0.0, 0.0))
    with pytest.raises(ValueError, match="positive"):
        Preprocessing(2, mean=(0.0, 0.0), std=(1.0, 0.0))
    with pytest.raises(ValueError, match="series"):
        score_data(
            IResNetFlow(num_blocks=1, hidden_units=(4,)),
            Preprocessing(2),
            tf.zeros((1, 2)),
            LogDetConfig(method="roulette"),
            0,
        )
