"""Every endpoint called through the client generated from openapi.json (clients/python), against
a real server process on tiny models: typed results, and typed errors with their status codes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from http import HTTPStatus

import numpy as np
import pytest
from kexue_serve_client import AuthenticatedClient, Client
from kexue_serve_client.api.density import sample_density, score_density
from kexue_serve_client.api.embeddings import create_embeddings
from kexue_serve_client.api.generation import generate_text
from kexue_serve_client.api.health import health, metrics, ready
from kexue_serve_client.api.models import get_model, list_models, reload_model
from kexue_serve_client.api.qa import answer_question
from kexue_serve_client.models import (
    DensitySampleRequest,
    DensitySampleResponse,
    DensityScoreRequest,
    DensityScoreRequestLogdet,
    DensityScoreResponse,
    DensityScoreResponseLogdet,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorBody,
    GenerateRequest,
    GenerateResponse,
    Health,
    HTTPValidationError,
    LabelCondition,
    ModelList,
    ModelStatus,
    QARequest,
    QAResponse,
    Readiness,
    ReadinessStatus,
    VectorCondition,
)

from tests.conftest import ADMIN_TOKEN, TINY_SERVER_SETTINGS
from tests.tiny_store import TINY_MODELS

MAX_INPUTS = int(TINY_SERVER_SETTINGS["MAX_INPUTS"])
MAX_PASSAGES = int(TINY_SERVER_SETTINGS["MAX_PASSAGES"])


@pytest.fixture(scope="module")
def client(tiny_server: str) -> Iterator[Client]:
    with Client(base_url=tiny_server, timeout=60) as c:
        yield c


def error(response: object, status: int, code: str) -> ErrorBody:
    """The typed error body of a `sync_detailed` response with this status and code."""
    assert response.status_code == status, response.content  # type: ignore[attr-defined]
    body = response.parsed  # type: ignore[attr-defined]
    assert isinstance(body, ErrorBody) and body.code == code, body
    return body


def test_health_readiness_and_metrics(client: Client) -> None:
    assert isinstance(health.sync(client=client), Health)
    readiness = ready.sync(client=client)
    assert isinstance(readiness, Readiness) and readiness.status == ReadinessStatus.READY
    scraped = metrics.sync_detailed(client=client)
    assert scraped.status_code == HTTPStatus.OK
    assert b"# TYPE" in scraped.content and b"kexue_requests_total" in scraped.content


def test_models_are_listed_and_reloaded_by_the_admin(client: Client, tiny_server: str) -> None:
    listed = list_models.sync(client=client)
    assert isinstance(listed, ModelList)
    names = {m.name: m.task for m in listed.data}
    assert names == {
        TINY_MODELS["embedding"]: "embedding",
        TINY_MODELS["qa"]: "qa",
        TINY_MODELS["generation"]: "generation",
        TINY_MODELS["generation-vector"]: "generation",
        TINY_MODELS["density"]: "density",
    }
    one = get_model.sync(name=TINY_MODELS["density"], client=client)
    assert isinstance(one, ModelStatus) and one.serving_version == 1 and one.family == "iresnet"
    assert one.version_policy == "latest" and one.labels.to_dict() == {}  # type: ignore[union-attr]
    assert [(v.version, v.state, v.labels) for v in one.versions] == [(1, "AVAILABLE", [])]
    error(get_model.sync_detailed(name="no-such-model", client=client), 404, "model_not_found")

    error(reload_model.sync_detailed(name=TINY_MODELS["qa"], client=client), 401, "unauthorized")
    with AuthenticatedClient(base_url=tiny_server, token="wrong", timeout=60) as wrong:
        error(reload_model.sync_detailed(name=TINY_MODELS["qa"], client=wrong), 403, "forbidden")
    with AuthenticatedClient(base_url=tiny_server, token=ADMIN_TOKEN, timeout=60) as admin:
        reloaded = reload_model.sync(name=TINY_MODELS["qa"], client=admin)
        assert isinstance(reloaded, ModelStatus) and reloaded.serving_version == 1


def test_embeddings(client: Client) -> None:
    body = EmbeddingRequest(input_=["酒店很好", "手机坏了"], model=TINY_MODELS["embedding"])
    result = create_embeddings.sync(client=client, body=body)
    assert isinstance(result, EmbeddingResponse) and result.version == 1
    vectors = np.array([d.embedding for d in result.data])
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    # A version by number, and a label the model does not have (it has no labels.json).
    body.version = 1
    assert create_embeddings.sync(client=client, body=body).version == 1  # type: ignore[union-attr]
    body.version = "canary"
    missing = error(
        create_embeddings.sync_detailed(client=client, body=body), 404, "version_not_found"
    )
    assert "no label 'canary'" in missing.detail

    too_many = EmbeddingRequest(input_=["好"] * (MAX_INPUTS + 1))
    error(create_embeddings.sync_detailed(client=client, body=too_many), 413, "payload_too_large")
    invalid = create_embeddings.sync_detailed(client=client, body=EmbeddingRequest(input_=[]))
    assert invalid.status_code == 422 and isinstance(invalid.parsed, HTTPValidationError)


def test_question_answering(client: Client) -> None:
    body = QARequest(question="张伟住在哪里？", passages=["张伟住在北京。", "李娜住在上海。"])
    result = answer_question.sync(client=client, body=body)
    assert isinstance(result, QAResponse) and result.model == TINY_MODELS["qa"]
    assert result.answer is None or isinstance(result.answer, str)

    too_many = QARequest(question="哪里？", passages=["北京。"] * (MAX_PASSAGES + 1))
    error(answer_question.sync_detailed(client=client, body=too_many), 413, "payload_too_large")


def test_generation_with_a_label_and_with_a_vector(client: Client) -> None:
    def generate(**fields: object) -> GenerateResponse:
        result = generate_text.sync(client=client, body=GenerateRequest(**fields))  # type: ignore[arg-type]
        assert isinstance(result, GenerateResponse), result
        return result

    labelled = {"model": TINY_MODELS["generation"], "condition": LabelCondition(label="pos")}
    first = generate(**labelled, num_samples=2, max_new_tokens=6, seed=11)
    again = generate(**labelled, num_samples=2, max_new_tokens=6, seed=11)
    assert [s.text for s in first.samples] == [s.text for s in again.samples]
    assert len(first.samples) == 2 and all(s.tokens <= 6 for s in first.samples)

    vector = {"model": TINY_MODELS["generation-vector"], "condition": VectorCondition([0.1] * 4)}
    assert len(generate(**vector, max_new_tokens=4, seed=1).samples) == 1

    unknown = GenerateRequest(model=TINY_MODELS["generation"], condition=LabelCondition("meh"))
    error(generate_text.sync_detailed(client=client, body=unknown), 400, "bad_input")
    too_long = GenerateRequest(
        model=TINY_MODELS["generation"], condition=LabelCondition("pos"), max_new_tokens=17
    )
    error(generate_text.sync_detailed(client=client, body=too_long), 413, "payload_too_large")


def test_density_scores_and_samples(client: Client) -> None:
    rows = [[0.5, -0.2], [1.0, 0.3]]
    scored = score_density.sync(client=client, body=DensityScoreRequest(inputs=rows))
    assert isinstance(scored, DensityScoreResponse) and len(scored.log_prob) == 2
    exact = score_density.sync(
        client=client,
        body=DensityScoreRequest(inputs=rows, logdet=DensityScoreRequestLogdet.EXACT),
    )
    assert isinstance(exact, DensityScoreResponse)
    # The default ("auto") scores a 2-D model exactly, and says so.
    assert scored.logdet == DensityScoreResponseLogdet.EXACT and scored.log_prob == exact.log_prob
    series = score_density.sync(
        client=client,
        body=DensityScoreRequest(inputs=rows, logdet=DensityScoreRequestLogdet.SERIES),
    )
    assert isinstance(series, DensityScoreResponse)
    assert series.logdet == DensityScoreResponseLogdet.SERIES
    # The tiny model's series has 4 terms and 1 probe: near the exact value, not equal to it.
    for series_value, exact_value in zip(series.log_prob, exact.log_prob, strict=True):
        assert isinstance(series_value, float) and isinstance(exact_value, float)
        assert math.isclose(series_value, exact_value, abs_tol=0.5)
        assert series_value != exact_value

    sampled = sample_density.sync(client=client, body=DensitySampleRequest(num_samples=3, seed=5))
    assert isinstance(sampled, DensitySampleResponse) and sampled.seed == 5
    assert np.array(sampled.samples).shape == (3, 2)

    wrong_dim = DensityScoreRequest(inputs=[[0.5, -0.2, 1.0]])
    error(score_density.sync_detailed(client=client, body=wrong_dim), 400, "bad_input")
    too_many = DensitySampleRequest(num_samples=17)
    error(sample_density.sync_detailed(client=client, body=too_many), 413, "payload_too_large")
