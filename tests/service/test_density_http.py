"""POST /v1/density/score and /v1/density/sample through the real density runtime on a tiny
i-ResNet trained for one epoch on two moons, and their errors."""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.density.reader import SavedModelDensity
from service.app import create_app
from service.routes.density import finite_or_none
from service.settings import Settings
from tests.service.conftest import wait_ready
from tests.tiny_store import tiny_version
from training.density import train_density

NAME = "moons"
ROWS = [[0.5, -0.2], [1.0, 0.3], [-0.8, 0.6], [0.0, 0.0]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("density") / "store"
    tiny_version(tmp_path_factory, "density", root, NAME)
    return root


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[TestClient]:
    settings = Settings(model_store=store, poll_interval_s=0, max_inputs=8, max_density_samples=16)
    with TestClient(create_app(settings)) as c:
        wait_ready(c, timeout_s=60)
        yield c


def _score(client: TestClient, rows: list[list[float]], **extra: object) -> dict:
    r = client.post("/v1/density/score", json={"inputs": rows, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_score_is_the_saved_models(client: TestClient, store: Path) -> None:
    model = SavedModelDensity(store / NAME / "1")
    rows = np.array(ROWS, np.float32)
    for logdet, exact in (("series", False), ("exact", True)):
        body = _score(client, ROWS, logdet=logdet)
        assert body["model"] == NAME and body["version"] == 1 and body["logdet"] == logdet
        expected = model.score(rows, exact=exact)
        np.testing.assert_allclose(body["log_prob"], expected["log_prob"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            body["bits_per_dim"], expected["bits_per_dim"], rtol=1e-5, atol=1e-5
        )
    # Lip(g) <= 0.9 and 4 terms of the series: close to the exact log-det, not equal.
    series = model.score(rows)["log_prob"]
    assert np.abs(series - model.score(rows, exact=True)["log_prob"]).max() > 1e-4
    np.testing.assert_allclose(series, model.score(rows, exact=True)["log_prob"], atol=0.5)


def test_the_default_scores_exactly_up_to_max_exact_logdet_dim(
    client: TestClient, store: Path
) -> None:
    model = SavedModelDensity(store / NAME / "1")
    rows = np.array(ROWS, np.float32)
    body = _score(client, ROWS)  # "auto", a 2-D model
    assert body["logdet"] == "exact"
    assert body["log_prob"] == _score(client, ROWS, logdet="exact")["log_prob"]
    np.testing.assert_allclose(
        body["log_prob"], model.score(rows, exact=True)["log_prob"], rtol=1e-5, atol=1e-5
    )
    # over the setting, "auto" is the series (and "exact" is refused)
    settings = Settings(model_store=store, poll_interval_s=0, max_exact_logdet_dim=1)
    with TestClient(create_app(settings)) as small:
        wait_ready(small, timeout_s=60)
        auto = _score(small, ROWS, logdet="auto")
        assert auto["logdet"] == "series"
        np.testing.assert_allclose(
            auto["log_prob"], model.score(rows)["log_prob"], rtol=1e-5, atol=1e-5
        )
        r = small.post("/v1/density/score", json={"inputs": ROWS, "logdet": "exact"})
        assert r.status_code == 400 and "MAX_EXACT_LOGDET_DIM" in r.json()["detail"]


def test_a_row_scores_the_same_alone_and_batched(client: TestClient) -> None:
    alone = [_score(client, [row])["log_prob"][0] for row in ROWS]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda i: _score(client, [ROWS[i % 4]]), range(16)))
    for i, body in enumerate(together):
        assert body["log_prob"][0] == pytest.approx(alone[i % 4], rel=1e-5, abs=1e-5)


def test_sample_is_reproducible(client: TestClient) -> None:
    r = client.post("/v1/density/sample", json={"num_samples": 5, "seed": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    samples = np.array(body["samples"])
    assert samples.shape == (5, 2) and np.isfinite(samples).all()
    assert body["seed"] == 3 and len(body["iterations"]) == 2
    again = client.post("/v1/density/sample", json={"num_samples": 5, "seed": 3}).json()
    assert again["samples"] == body["samples"]
    other = client.post("/v1/density/sample", json={"num_samples": 5, "seed": 4}).json()
    assert other["samples"] != body["samples"]
    unseeded = client.post("/v1/density/sample", json={"num_samples": 1}).json()
    assert isinstance(unseeded["seed"], int) and len(unseeded["samples"]) == 1


def test_density_errors(client: TestClient) -> None:
    def score(**body: object) -> int:
        return client.post("/v1/density/score", json={"inputs": ROWS[:1], **body}).status_code

    def sample(**body: object) -> int:
        return client.post("/v1/density/sample", json={"num_samples": 1, **body}).status_code

    r = client.post("/v1/density/score", json={"inputs": [[1.0, 2.0, 3.0]]})
    assert r.status_code == 400 and r.json()["code"] == "bad_input"
    assert score(inputs=[[1.0, 2.0], [1.0]]) == 400
    r = client.post("/v1/density/score", json={"inputs": [[0.0, 0.0]] * 9})
    assert r.status_code == 413 and "MAX_INPUTS" in r.json()["detail"]
    r = client.post("/v1/density/sample", json={"num_samples": 17})
    assert r.status_code == 413 and "MAX_DENSITY_SAMPLES" in r.json()["detail"]
    assert score(inputs=[]) == 422
    assert score(inputs=[[]]) == 422
    assert score(logdet="roulette") == 422
    assert score(extra=1) == 422
    bad = b'{"inputs": [[NaN, 1.0]]}'
    headers = {"content-type": "application/json"}
    assert client.post("/v1/density/score", content=bad, headers=headers).status_code == 422
    bad = b'{"inputs": [[Infinity, 1.0]]}'
    assert client.post("/v1/density/score", content=bad, headers=headers).status_code == 422
    assert score(inputs=[[1e300, 1.0]]) == 400  # finite, but not as float32
    r = client.post("/v1/density/score", json={"inputs": [[0.5, 1.0], [0.0, -4e38]]})
    assert r.status_code == 400 and "inputs[1][1]" in r.json()["detail"]
    # 1e-320 (a float64 subnormal) is 0 in float32: rounded, not refused.
    assert score(inputs=[[1e-320, 0.0]]) == 200
    assert sample(num_samples=0) == 422
    assert sample(num_samples=10**6) == 422
    assert sample(seed=-1) == 422
    assert score(model="nope") == 404
    assert sample(model="nope") == 404


def test_exact_is_refused_over_max_exact_logdet_dim(store: Path) -> None:
    settings = Settings(model_store=store, poll_interval_s=0, max_exact_logdet_dim=1)
    with TestClient(create_app(settings)) as c:
        wait_ready(c, timeout_s=60)
        r = c.post("/v1/density/score", json={"inputs": ROWS, "logdet": "exact"})
        assert r.status_code == 400 and "MAX_EXACT_LOGDET_DIM" in r.json()["detail"]
        assert c.post("/v1/density/score", json={"inputs": ROWS}).status_code == 200


def test_non_finite_scores_become_null() -> None:
    assert finite_or_none(np.array([-math.inf, 1.5, math.nan], np.float32)) == [None, 1.5, None]


@pytest.fixture(scope="module")
def discrete_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model of 3-dimensional integer data in 0..4 (five levels, found in the file)."""
    root = tmp_path_factory.mktemp("discrete")
    rows = np.random.default_rng(0).integers(0, 5, (256, 3))
    np.save(root / "counts.npy", rows)
    train_density(
        [
            "--data", str(root / "counts.npy"), "--out", str(root / "store"), "--name", "counts",
            "--epochs", "1", "--batch-size", "64", "--blocks", "1", "--hidden", "8",
            "--checkpoint-dir", str(root / "ckpt"), "--log-dir", "", "--no-progress",
            "--warmup-steps", "2", "--score-terms", "4", "--score-probes", "1",
            "--export-power-iterations", "20", "--inverse-max-iterations", "30",
        ]
    )  # fmt: skip
    return root / "store"


def test_a_discrete_model_answers_null_outside_its_levels(discrete_store: Path) -> None:
    settings = Settings(model_store=discrete_store, poll_interval_s=0)
    with TestClient(create_app(settings)) as c:
        wait_ready(c, timeout_s=60)
        inside, outside = [0, 2, 4], [0, 2, 5]
        r = c.post("/v1/density/score", json={"inputs": [inside, outside, [-1, 0, 0]]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert math.isfinite(body["log_prob"][0]) and body["bits_per_dim"][0] > 0
        # -inf (a value the model gives no mass) is not JSON: it comes back as null.
        assert body["log_prob"][1:] == [None, None] and body["bits_per_dim"][1:] == [None, None]
        r = c.post("/v1/density/sample", json={"num_samples": 8, "seed": 3})
        assert r.status_code == 200, r.text
        samples = np.array(r.json()["samples"])
        assert samples.shape == (8, 3)
        assert np.all(samples == np.round(samples)) and samples.min() >= 0 and samples.max() <= 4
