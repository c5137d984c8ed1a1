"""The OpenAI API's conventions the service keeps, in process on the fake embedding family: every
error body carries OpenAI's `error` object beside `detail` and `code`, /v1/models entries are
OpenAI model objects too, and `dimensions` is refused unless it is the model's own length.
tests/test_api_keys_live.py calls a real server with the OpenAI SDK itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.errors import error_body, openai_error_type
from service.schemas.models import created_seconds
from tests.service.fakes import DIM, write_version


def assert_error(response: Any, status: int, code: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["error"] == {
        "message": body["detail"],
        "type": openai_error_type(status),
        "code": code,
        "param": param,
    }


def test_service_errors_carry_the_openai_error_object(client: TestClient) -> None:
    assert_error(
        client.post("/v1/embeddings", json={"model": "nope", "input": "a"}),
        404,
        "model_not_found",
        param="model",
    )
    assert_error(client.get("/v1/models/nope"), 404, "model_not_found", param="model")
    assert_error(client.post("/v1/qa", json={"question": "q", "passages": ["p"]}), 404,
                 "model_not_found", param="model")  # fmt: skip
    assert_error(
        client.post("/v1/embeddings", json={"input": "a", "method": "fold_in"}), 400, "bad_input"
    )
    assert_error(client.get("/no/such/path"), 404, "not_found")
    assert_error(client.delete("/v1/embeddings"), 405, "method_not_allowed")
    assert_error(client.post("/v1/models/words/reload"), 403, "forbidden")
    huge = client.post("/v1/embeddings", content=b"x" * (2 << 20))
    assert_error(huge, 413, "payload_too_large")


def test_validation_errors_keep_fastapis_body_and_add_the_error_object(
    client: TestClient,
) -> None:
    response = client.post("/v1/embeddings", json={"normalize": "maybe"})
    assert response.status_code == 422
    body = response.json()
    assert isinstance(body["detail"], list) and len(body["detail"]) == 2
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "validation_error"
    assert error["param"] == "input"
    assert error["message"] == "input: Field required; normalize: Input should be a valid boolean"
    # A body that is not JSON names no field (pydantic's location is a character offset).
    broken = client.post(
        "/v1/embeddings", content=b'{"input": [', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["error"]["param"] is None
    # (A list stops at its first wrong item: the errors here are of seven fields.)
    wrong = {"normalize": 1, "truncate": 1, "dimensions": "1", "method": 1, "encoding_format": 1}
    many = client.post("/v1/embeddings", json={"input": [1, 2], **wrong}).json()
    assert len(many["detail"]) > 5
    assert many["error"]["message"].endswith(f"; and {len(many['detail']) - 5} more")


def test_the_openai_types_by_status() -> None:
    assert [openai_error_type(s) for s in (400, 401, 403, 404, 413, 429, 500, 503, 504)] == [
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "invalid_request_error",
        "invalid_request_error",
        "rate_limit_error",
        "server_error",
        "server_error",
        "server_error",
    ]
    assert error_body("overloaded", "full", 429)["error"]["type"] == "rate_limit_error"


def test_models_are_openai_model_objects(client: TestClient) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    (entry,) = listed["data"]
    created = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())  # fakes' created_at
    assert {k: entry[k] for k in ("id", "object", "created", "owned_by")} == {
        "id": "words",
        "object": "model",
        "created": created,
        "owned_by": "kexue-serve",
    }
    # The service's own fields stay.
    assert entry["name"] == "words" and entry["serving_version"] == 1 and entry["manifest"]
    assert client.get("/v1/models/words").json()["id"] == "words"


def test_created_without_a_manifest_is_zero() -> None:
    assert created_seconds(None) == 0
    assert created_seconds({"created_at": "not a time"}) == 0
    assert created_seconds({"created_at": "1970-01-01T00:01:00+00:00"}) == 60


def test_dimensions_only_the_models_own(client: TestClient) -> None:
    plain = client.post("/v1/embeddings", json={"input": "a b c"}).json()
    same = client.post("/v1/embeddings", json={"input": "a b c", "dimensions": DIM})
    assert same.status_code == 200
    assert same.json()["data"] == plain["data"]
    shorter = client.post("/v1/embeddings", json={"input": "a b c", "dimensions": DIM // 2})
    assert_error(shorter, 400, "bad_input", param="dimensions")
    assert f"vectors of {DIM} dimensions" in shorter.json()["detail"]
    assert f"send dimensions {DIM}" in shorter.json()["detail"]
    longer = client.post("/v1/embeddings", json={"input": "a b c", "dimensions": DIM + 1})
    assert longer.status_code == 400
    for nonsense in (0, -1, 10**9):
        response = client.post("/v1/embeddings", json={"input": "a", "dimensions": nonsense})
        assert response.status_code == 422, nonsense


@pytest.mark.parametrize("dimensions", [DIM // 2, DIM])
def test_dimensions_is_checked_before_any_model_call(
    store: Path, make_client: Callable[..., TestClient], dimensions: int
) -> None:
    from tests.service.fakes import FakeEmbeddingRuntime

    write_version(store, "words", 1)
    client = make_client()
    before = len(FakeEmbeddingRuntime.batches)
    response = client.post("/v1/embeddings", json={"input": "a", "dimensions": dimensions})
    ran = len(FakeEmbeddingRuntime.batches) - before
    assert (response.status_code, ran) == ((200, 1) if dimensions == DIM else (400, 0))


@pytest.mark.parametrize("ids", [[1, 2, 3], [[1, 2], [3]]])
def test_token_ids_as_input_are_refused_saying_so(client: TestClient, ids: list[Any]) -> None:
    # OpenAI's embeddings API takes token ids too; they were answered "input: Input should be a
    # valid string; input.0: Input should be a valid string".
    response = client.post("/v1/embeddings", json={"input": ids})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == "input"
    assert error["message"].startswith("input: Value error, token ids are not taken: send text")
    assert len(response.json()["detail"]) == 1
    # Texts, and lists mixing texts and numbers, are read as before.
    assert client.post("/v1/embeddings", json={"input": ["a", "b"]}).status_code == 200
    assert "token ids" not in client.post("/v1/embeddings", json={"input": ["a", 1]}).text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": ""}, "the text is empty"),
        ({"input": " \t\n\u3000"}, "the text is only whitespace"),
        ({"input": ["a", ""]}, "text 1 is empty"),
        ({"input": ["a", "b", "  "]}, "text 2 is only whitespace"),
        # Invisible characters a BERT tokenizer drops (format and control characters: a BOM
        # left by a file, a zero-width space, NUL): [CLS] [SEP] alone too, or JoSE's zeros.
        ({"input": "\ufeff"}, "the text holds only invisible characters"),
        ({"input": ["a", "\u200b\u0000 \u200d"]}, "text 1 holds only invisible characters"),
        # Combining marks with no letter to sit on (an accent, an emoji's variation selector
        # left alone): an uncased BERT strips them (MiniLM reads "\u0301" as no token at all).
        ({"input": "\u0301"}, "the text holds only invisible characters"),
        ({"input": ["a", " \ufe0f\u200d"]}, "text 1 holds only invisible characters"),
    ],
)
def test_an_empty_or_blank_text_is_422_not_a_zero_vector(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    # "" was answered 200 with a vector of zeros (JoSE) or of [CLS] [SEP] alone (BERT); OpenAI's
    # API and text-embeddings-inference refuse an empty input.
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("validation_error", "input")
    assert message in error["message"] and "nothing to embed" in error["message"]
    assert len(response.json()["detail"]) == 1
    # A text with a word in it is embedded as before, however much whitespace is around it.
    assert client.post("/v1/embeddings", json={"input": "  a  "}).status_code == 200
    # And so is one whose accents sit on a letter.
    assert client.post("/v1/embeddings", json={"input": "e\u0301"}).status_code == 200
