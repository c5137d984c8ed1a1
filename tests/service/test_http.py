"""Every endpoint and every error status of the service core, over HTTP, with a fake model."""

from __future__ import annotations

import base64
import gc
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import GC_GEN0_THRESHOLD, GIL_SWITCH_INTERVAL_S
from service.errors import ECHOED_INPUT_CHARS, VALIDATION_ERRORS_IN_BODY
from service.schemas.common import MAX_REQUEST_FIELDS
from tests.service.conftest import queue_depth, wait_for, wait_ready
from tests.service.fakes import DIM, FakeEmbeddingRuntime, expected_vector, write_version


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_the_app_tunes_the_collector_and_the_gil_for_serving(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        gc.set_threshold(700, *threshold[1:])  # Python's defaults
        sys.setswitchinterval(0.005)
        make_client()
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


def test_readiness_is_503_until_models_are_warm(
    store: Path, make_client: Callable[..., TestClient], hold: Callable[..., Any]
) -> None:
    write_version(store, "slow", 1)
    loaded = hold(FakeEmbeddingRuntime.held_loads, "slow")
    client = make_client(ready=False)
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not_ready"
    loaded.set()
    wait_ready(client)


def test_embeddings_match_the_model(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"input": ["a b b", "c"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "words" and body["version"] == 1
    assert [d["index"] for d in body["data"]] == [0, 1]
    for d, text in zip(body["data"], ["a b b", "c"], strict=True):
        np.testing.assert_allclose(d["embedding"], expected_vector(text), atol=1e-6)
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert float(r.headers["X-Queue-Time-Ms"]) >= 0
    assert float(r.headers["X-Compute-Time-Ms"]) >= 0


def test_single_string_unnormalised_and_base64(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"input": "a a", "normalize": False})
    assert len(r.json()["data"]) == 1
    assert max(r.json()["data"][0]["embedding"]) == 2.0
    r = client.post("/v1/embeddings", json={"input": "a a", "encoding_format": "base64"})
    vec = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, expected_vector("a a"), atol=1e-6)


def test_validation_errors_are_422(client: TestClient) -> None:
    assert client.post("/v1/embeddings", json={"input": 3}).status_code == 422
    assert client.post("/v1/embeddings", json={"input": []}).status_code == 422
    assert client.post("/v1/embeddings", json={}).status_code == 422
    assert client.post("/v1/embeddings", json={"input": "a", "model": "../x"}).status_code == 422
    r = client.post(
        "/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


# `curl -d '{...}'` without `-H 'Content-Type: application/json'` sends a form: FastAPI leaves such
# a body unread (a form or text/plain body is what a browser may send cross-site unasked) and its
# 422 said "Input should be a valid dictionary" about a valid JSON object.
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain; charset=utf-8", "multipart/form-data", None],
)
def test_a_body_not_sent_as_json_is_415_saying_what_to_send(
    client: TestClient, content_type: str | None
) -> None:
    body = json.dumps({"input": "a a"}).encode()
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/v1/embeddings", content=body, headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["code"] == "unsupported_media_type"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "Content-Type: application/json" in r.json()["detail"]
    assert repr(content_type or "none") in r.json()["detail"]


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.api+json; x=1"])
def test_json_media_types_are_read_and_their_mistakes_stay_422(
    client: TestClient, content_type: str
) -> None:
    headers = {"content-type": content_type}
    body = json.dumps({"input": "a a"}).encode()
    assert client.post("/v1/embeddings", content=body, headers=headers).status_code == 200
    # JSON, but not an object: the client's JSON is wrong, not its media type.
    r = client.post("/v1/embeddings", content=b'["a a"]', headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


# JSON's own types only, as OpenAI's API and text-embeddings-inference take them: a number sent as
# text, a 1 for true or a "yes" is the client's mistake, which pydantic's lax mode would hide.
LOOSE_FIELDS = [
    ("/v1/embeddings", {"input": "a"}, "truncate", "yes"),
    ("/v1/embeddings", {"input": "a"}, "normalize", 1),
    ("/v1/embeddings", {"input": "a"}, "dimensions", "8"),
    ("/v1/qa", {"question": "q", "passages": ["p"]}, "beam_size", "2"),
    ("/v1/qa", {"question": "q", "passages": ["p"]}, "beam_size", 2.0),
    ("/v1/qa", {"question": "q", "passages": ["p"]}, "force_answer", "true"),
    ("/v1/generate", {"condition": {"label": "x"}}, "num_samples", "5"),
    ("/v1/generate", {"condition": {"label": "x"}}, "temperature", "0.5"),
    ("/v1/generate", {"condition": {"label": "x"}}, "seed", True),
    ("/v1/generate", {"condition": {"label": "x"}}, "stream", "false"),
    ("/v1/generate", {}, "condition", {"vector": ["1.5"]}),
    ("/v1/density/score", {}, "inputs", [["1.5", 2]]),
    ("/v1/density/sample", {}, "num_samples", "4"),
]


@pytest.mark.parametrize(("path", "body", "field", "value"), LOOSE_FIELDS)
def test_numbers_and_booleans_must_be_json_numbers_and_booleans(
    client: TestClient, path: str, body: dict[str, Any], field: str, value: Any
) -> None:
    r = client.post(path, json={**body, field: value})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] is not None and field in r.json()["error"]["param"]


def test_integers_are_taken_where_numbers_are_asked(client: TestClient) -> None:
    r = client.post("/v1/generate", json={"condition": {"vector": [1, 2]}, "temperature": 1})
    assert r.status_code != 422, r.text
    r = client.post("/v1/density/score", json={"inputs": [[1, 2]]})
    assert r.status_code != 422, r.text


def test_invalid_utf8_and_nested_json_are_4xx(client: TestClient) -> None:
    r = client.post(
        "/v1/embeddings",
        content=b'{"input": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (400, 422) and r.json()["detail"]
    nested = ("[" * 5000) + ("]" * 5000)
    r = client.post(
        "/v1/embeddings",
        content=f'{{"input": {nested}}}',
        headers={"content-type": "application/json"},
    )
    assert 400 <= r.status_code < 500
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert client.get("/healthz").status_code == 200


# FastAPI answers every body it cannot read as JSON with one 400, "There was an error parsing the
# body", and JSON syntax errors with a 422 whose OpenAI message read "14: JSON decode error": the
# sender could not tell what to fix.
UNREADABLE_BODIES = [
    (b'{"input": "caf\xe9"}', 400, "not valid UTF-8: byte 0xe9 at offset 14"),
    (b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nests too deeply"),
    (b'{"input": "a", "dimensions": ' + b"9" * 5000 + b"}", 400, "more than 4300 digits"),
    (b'{"input": ["a"', 422, "not valid JSON: Expecting ',' delimiter at character 14"),
    (b'{"input": "a",}', 422, "Expecting property name enclosed in double quotes at character"),
    (b"", 422, "Field required"),
    (b'{"input": "a", "input": "b"}', 400, "names the key 'input' twice in one object"),
    (b'{"input": "a", "x": [{"k": 1, "k": 1}]}', 400, "names the key 'k' twice"),
    (b'{"%s": 1, "%s": 1}' % (b"k" * 50_000, b"k" * 50_000), 400, "key '" + "k" * 80 + "...'"),
    # Python's JSON reader takes UTF-16 and UTF-32 bytes too (it guesses from the NUL bytes or a
    # BOM): such a body was embedded, although JSON between systems is UTF-8 (RFC 8259 8.1) and
    # a proxy reading it as UTF-8 sees something else.
    ('{"input": "a"}'.encode("utf-16"), 400, "not UTF-8: it reads as UTF-16"),
    ('{"input": "a"}'.encode("utf-16-le"), 400, "not UTF-8: it reads as UTF-16-LE"),
    ('{"input": "a"}'.encode("utf-32-be"), 400, "not UTF-8: it reads as UTF-32-BE"),
]


@pytest.mark.parametrize(
    ("body", "status", "said"),
    UNREADABLE_BODIES,
    ids=[
        "latin-1",
        "nested",
        "digits",
        "cut",
        "comma",
        "empty",
        "duplicate-key",
        "deep-duplicate",
        "long-duplicate",
        "utf-16",
        "utf-16-le",
        "utf-32-be",
    ],
)
def test_a_body_that_is_not_json_says_why(
    client: TestClient, body: bytes, status: int, said: str
) -> None:
    r = client.post("/v1/embeddings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert said in r.json()["error"]["message"], r.json()
    if status == 400:
        assert (
            r.json()["code"] == "bad_request" and r.json()["detail"] == r.json()["error"]["message"]
        )


def test_a_utf8_body_may_start_with_a_byte_order_mark(client: TestClient) -> None:
    """RFC 8259 8.1 lets a reader ignore a UTF-8 BOM; refusing UTF-16 must not refuse it."""
    body = b'\xef\xbb\xbf{"input": "a"}'
    r = client.post("/v1/embeddings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_every_route_with_a_body_refuses_duplicate_keys(client: TestClient) -> None:
    """`{"model": "a", "model": "b"}` was model b (Python's reader keeps the last key; a proxy in
    front may keep the first): every route of the API document that takes a JSON body refuses
    it, naming the key."""
    posts = [
        path
        for path, operations in client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        if "requestBody" in operations.get("post", {})
    ]
    assert len(posts) >= 5, posts
    for path in posts:
        r = client.post(
            re.sub(r"\{[^}]*\}", "1", path),
            content=b'{"model": "x", "model": "y"}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400 and "'model' twice" in r.json()["detail"], (path, r.text)


def test_a_422_lists_its_first_errors_and_cuts_long_echoes(client: TestClient) -> None:
    """A body with 60 unknown fields was answered with all 60 errors (100,000 wrong numbers:
    11 MB, after 2 s of the event loop encoding them); an error echoed its whole input (a list of
    100,000 numbers, twice over for a union's two arms)."""
    extra = {f"field{i}": i for i in range(60)}
    r = client.post("/v1/qa", json={"question": "q", "passages": ["p"], **extra})
    assert r.status_code == 422
    assert len(r.json()["detail"]) == VALIDATION_ERRORS_IN_BODY
    assert [e["loc"] for e in r.json()["detail"][:2]] == [["body", "field0"], ["body", "field1"]]
    assert r.json()["error"]["message"].endswith(f"and {60 - 5} more")
    r = client.post("/v1/embeddings", json={"input": list(range(100_000))})
    assert r.status_code == 422 and len(r.content) < 4 * ECHOED_INPUT_CHARS, len(r.content)
    echoed = r.json()["detail"][0]["input"]
    assert echoed.startswith("[0, 1, 2, ") and echoed.endswith(" characters)")
    # Short inputs are echoed as sent.
    r = client.post("/v1/embeddings", json={"input": [1, 2]})
    assert r.json()["detail"][0]["input"] == [1, 2]


# Lists of numbers or texts stop at their first wrong item: 100,000 wrong numbers made 100,000
# errors (0.2 s of the event loop before the 422 was even written; 0.4 s at MAX_BODY_BYTES).
WRONG_LISTS = [
    ("/v1/density/score", {"inputs": [["x"] * 1000] * 100}, ["body", "inputs", 0, 0]),
    ("/v1/density/score", {"inputs": [[1.0, 2.0], [1.0, "x", "y"]]}, ["body", "inputs", 1, 1]),
    (
        "/v1/embeddings",
        {"input": ["a", *range(100_000)]},
        ["body", "input", "list[constrained-str]", 1],
    ),
    ("/v1/qa", {"question": "q", "passages": ["p", *range(4000)]}, ["body", "passages", 1]),
    (
        "/v1/generate",
        {"condition": {"vector": [1.0, *["x"] * 60_000]}},
        ["body", "condition", "VectorCondition", "vector", 1],
    ),
]


@pytest.mark.parametrize(("path", "body", "loc"), WRONG_LISTS)
def test_a_list_is_reported_by_its_first_wrong_item(
    client: TestClient, path: str, body: dict[str, Any], loc: list[Any]
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 422
    locs = [error["loc"] for error in r.json()["detail"]]
    assert loc in locs and len(locs) <= 3, locs


def test_a_404_or_405_says_where_to_look(client: TestClient) -> None:
    """Both said only "Not Found" or "Method Not Allowed"."""
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (
        r.json()["detail"] == "Not Found: nothing at /v1/nothing-here; /docs lists the API's paths"
    )
    r = client.get("/v1/embeddings")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert r.json()["detail"] == "Method Not Allowed: /v1/embeddings takes POST, not GET"
    # A model the store does not hold is the registry's 404, as before.
    assert client.get("/v1/models/nope").json()["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/qa", {"question": "q", "passages": ["p"]}),
        ("/v1/density/sample", {"num_samples": 1}),
        ("/v1/generate", {"condition": {"label": "x"}}),
    ],
)
def test_a_body_of_many_unknown_fields_is_one_error(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    """Each unknown field was an error of its own: 66,000 of them in a 1 MB body made 66,000
    errors and held the event loop for 0.2 s (1.5 s before the 422 listed only its first)."""
    extra = {f"field{i}": i for i in range(MAX_REQUEST_FIELDS)}
    r = client.post(path, json={**body, **extra})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body"]
    assert f"{MAX_REQUEST_FIELDS} fields that are not this request's ('field0'" in error["msg"]
    assert "it takes model, version, " in error["msg"]
    # The same in a nested object: the condition.
    if path == "/v1/generate":
        r = client.post(path, json={"condition": {"vector": [1.0], **extra}})
        assert r.status_code == 422 and len(r.json()["detail"]) <= 3


def test_odd_json_is_a_clean_422_never_a_500(client: TestClient) -> None:
    bodies = [
        b'{"input": "\\ud800abc"}',  # a lone surrogate: valid JSON, not encodable as UTF-8
        b'{"input": ["ok", "\\udfff"]}',
        b'{"input": "x", "normalize": NaN}',  # Python's JSON reader takes NaN; JSON has none
        b'{"input": "x", "normalize": -Infinity}',
        b'{"input": [1e999]}',
        b"null",
        b'"x"',
    ]
    for body in bodies:
        r = client.post(
            "/v1/embeddings", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, (body, r.status_code)
        assert isinstance(r.json()["detail"], list)


def test_limits_answer_413(make_client: Callable[..., TestClient], store: Path) -> None:
    write_version(store, "words", 1)
    client = make_client(max_inputs=2, max_text_chars=10, max_body_bytes=2048)
    r = client.post("/v1/embeddings", json={"input": ["a", "b", "c"]})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert r.json()["error"]["param"] == "input"
    r = client.post("/v1/embeddings", json={"input": ["a", "x" * 11]})
    assert r.status_code == 413 and "MAX_TEXT_CHARS" in r.json()["detail"]
    assert "input 1" in r.json()["detail"] and r.json()["error"]["param"] == "input"
    r = client.post("/v1/embeddings", json={"input": "a " * 2000})
    assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["detail"]


def test_limits_come_before_the_model_lookup_and_a_422_lists_each_error_once(
    make_client: Callable[..., TestClient], store: Path
) -> None:
    write_version(store, "words", 1)
    client = make_client(max_inputs=2)
    r = client.post("/v1/embeddings", json={"input": ["a", "b", "c"], "model": "nope"})
    assert r.status_code == 413 and "MAX_INPUTS" in r.json()["detail"]
    r = client.post("/v1/embeddings", json={"input": "a", "normalize": "maybe", "model": "nope"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "normalize"]]


def test_an_embedding_model_gets_a_batcher_once_a_version_loads(client: TestClient) -> None:
    registry = client.app.state.registry  # type: ignore[attr-defined]
    assert registry.get("words").batcher is not None


def test_unknown_model_is_404_and_wrong_method_400(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"input": "a", "model": "nope"})
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"
    r = client.post("/v1/embeddings", json={"input": "a", "method": "fold_in"})
    assert r.status_code == 400 and r.json()["code"] == "bad_input"
    assert client.get("/v1/models/nope").status_code == 404


def test_ambiguous_model_needs_a_name(store: Path, make_client: Callable[..., TestClient]) -> None:
    write_version(store, "one", 1)
    write_version(store, "two", 1)
    client = make_client()
    r = client.post("/v1/embeddings", json={"input": "a"})  # ambiguous, not missing: 400
    assert r.status_code == 400 and r.json()["code"] == "bad_input"
    assert "one, two" in r.json()["detail"] and "DEFAULT_EMBEDDING_MODEL" in r.json()["detail"]
    r = client.post("/v1/qa", json={"question": "q", "passages": ["p"]})  # none of the task: 404
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"
    assert client.post("/v1/embeddings", json={"input": "a", "model": "two"}).status_code == 200
    client2 = make_client(default_embedding_model="one")
    assert client2.post("/v1/embeddings", json={"input": "a"}).json()["model"] == "one"


def test_models_list_and_get(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert [m["name"] for m in body["data"]] == ["words"]
    one = client.get("/v1/models/words").json()
    assert one["task"] == "embedding" and one["serving_version"] == 1
    assert one["versions"] == [{"version": 1, "state": "AVAILABLE", "error": None, "labels": []}]
    assert one["version_policy"] == "latest" and one["labels"] == {} and one["labels_error"] is None
    assert one["manifest"]["dim"] == DIM


def test_admin_reload_auth(store: Path, make_client: Callable[..., TestClient]) -> None:
    write_version(store, "words", 1)
    off = make_client()
    assert off.post("/v1/models/words/reload").status_code == 403
    empty = make_client(admin_token="")
    r = empty.post("/v1/models/words/reload", headers={"Authorization": "Bearer "})
    assert r.status_code in (401, 403)
    on = make_client(admin_token="s3cret")
    assert on.post("/v1/models/words/reload").status_code == 401
    bad = on.post("/v1/models/words/reload", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403 and bad.json()["code"] == "forbidden"
    ok = on.post("/v1/models/words/reload", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["serving_version"] == 1


def test_new_version_swaps_in_and_corrupt_one_leaves_old_serving(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    write_version(store, "words", 1)
    client = make_client(admin_token="t")
    auth = {"Authorization": "Bearer t"}
    write_version(store, "words", 2)
    assert client.post("/v1/models/words/reload", headers=auth).json()["serving_version"] == 2
    assert client.post("/v1/embeddings", json={"input": "a"}).json()["version"] == 2
    write_version(store, "words", 3, fail_load=True)
    status = client.post("/v1/models/words/reload", headers=auth).json()
    assert status["serving_version"] == 2
    states = {v["version"]: v["state"] for v in status["versions"]}
    assert states == {3: "FAILED", 2: "AVAILABLE", 1: "UNLOADED"}
    assert "corrupt" in status["versions"][0]["error"]
    assert client.post("/v1/embeddings", json={"input": "a"}).json()["version"] == 2


def test_deleted_serving_version_falls_back(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    import shutil

    write_version(store, "words", 1)
    v2 = write_version(store, "words", 2)
    client = make_client(admin_token="t")
    assert client.get("/v1/models/words").json()["serving_version"] == 2
    shutil.rmtree(v2)
    status = client.post("/v1/models/words/reload", headers={"Authorization": "Bearer t"}).json()
    assert status["serving_version"] == 1


def test_polling_notices_new_versions(store: Path) -> None:
    write_version(store, "words", 1)
    from service.app import create_app
    from service.settings import Settings
    from tests.service.fakes import fake_factory

    app = create_app(
        Settings(model_store=store, poll_interval_s=0.05), runtime_factory=fake_factory
    )
    with TestClient(app) as polling:
        wait_ready(polling)
        write_version(store, "words", 2)
        end = time.monotonic() + 5
        while polling.get("/v1/models/words").json()["serving_version"] != 2:
            assert time.monotonic() < end, "new version never noticed"
            time.sleep(0.02)


def test_failing_model_call_is_500_and_next_batch_runs(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    write_version(store, "bad", 1, fail_batch=True)
    write_version(store, "good", 1)
    client = make_client()
    r = client.post("/v1/embeddings", json={"input": "a", "model": "bad"})
    assert r.status_code == 500 and r.json()["code"] == "backend_error"
    assert client.post("/v1/embeddings", json={"input": "a", "model": "good"}).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_overload_is_429_and_deadline_504(
    store: Path, make_client: Callable[..., TestClient], hold: Callable[..., Any]
) -> None:
    import concurrent.futures

    write_version(store, "slow", 1)
    computed = hold(FakeEmbeddingRuntime.held_batches, "slow")
    client = make_client(max_queue=2, max_batch_size=1, request_timeout_s=0.2, max_batch_delay_ms=0)
    FakeEmbeddingRuntime.batches.clear()

    def settled() -> bool:
        """One request in the (held) model call, some queued, every other one refused."""
        depth = queue_depth(client, "slow")
        answered = sum(f.done() for f in futures)
        return bool(FakeEmbeddingRuntime.batches) and depth >= 1 and answered + depth + 1 == 8

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(client.post, "/v1/embeddings", json={"input": f"w{i}"}) for i in range(8)
        ]
        wait_for(settled, "the queue full and the rest refused")
        queued_by = time.monotonic()
        wait_for(lambda: time.monotonic() > queued_by + 0.2, "the queued requests' deadline")
        computed.set()
        codes = [f.result().status_code for f in futures]
    assert 429 in codes, codes
    assert 504 in codes, codes
    assert set(codes) <= {200, 429, 504}
    refused = next(f.result() for f in futures if f.result().status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_429_and_a_500_reach_an_allowed_origins_page(
    store: Path, make_client: Callable[..., TestClient], hold: Callable[..., Any]
) -> None:
    """With CORS_ALLOW_ORIGINS, the errors a route raises carry the allow header too (the
    middlewares' 401 and 413, and the rest: tests/test_cors_live.py), and `Retry-After` is
    readable by the page."""
    import concurrent.futures

    origin = {"Origin": "https://app.example.com"}
    write_version(store, "slow", 1)
    write_version(store, "bad", 1, fail_batch=True)
    computed = hold(FakeEmbeddingRuntime.held_batches, "slow")
    client = make_client(
        max_queue=1, max_batch_size=1, max_batch_delay_ms=0, cors_allow_origins=origin["Origin"]
    )
    FakeEmbeddingRuntime.batches.clear()
    slow = {"input": "w", "model": "slow"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # One at a time: two sent at once can both reach the queue of one before the batcher takes
        # the first, and the second is then refused instead of queued.
        futures = [pool.submit(client.post, "/v1/embeddings", json=slow)]
        wait_for(lambda: bool(FakeEmbeddingRuntime.batches), "one request in the model call")
        futures.append(pool.submit(client.post, "/v1/embeddings", json=slow))
        wait_for(lambda: queue_depth(client, "slow") >= 1, "one request queued behind it")
        refused = client.post("/v1/embeddings", json=slow, headers=origin)
        computed.set()
        assert [f.result().status_code for f in futures] == [200, 200]
    assert refused.status_code == 429, refused.text
    assert refused.headers["access-control-allow-origin"] == origin["Origin"]
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()
    failed = client.post("/v1/embeddings", json={"input": "a", "model": "bad"}, headers=origin)
    assert failed.status_code == 500 and failed.json()["code"] == "backend_error"
    assert failed.headers["access-control-allow-origin"] == origin["Origin"]


def test_batches_are_shared_across_requests(
    store: Path, make_client: Callable[..., TestClient], hold: Callable[..., Any]
) -> None:
    import concurrent.futures

    write_version(store, "batchy", 1)
    computed = hold(FakeEmbeddingRuntime.held_batches, "batchy")
    client = make_client(max_batch_size=16, max_batch_delay_ms=20)
    FakeEmbeddingRuntime.batches.clear()
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        done = pool.map(lambda i: client.post("/v1/embeddings", json={"input": f"w{i}"}), range(24))
        # Requests queue up behind the first (held) model call, then share the next one.
        wait_for(lambda: queue_depth(client, "batchy") >= 2, "requests queued behind a call")
        computed.set()
        list(done)
    sizes = [n for name, _, n in FakeEmbeddingRuntime.batches if name == "batchy"]
    assert sum(sizes) == 24 and max(sizes) > 1


def test_metrics_report_requests_queue_and_batches(client: TestClient) -> None:
    client.post("/v1/embeddings", json={"input": ["a", "b"]})
    client.post("/v1/embeddings", json={"input": "a", "model": "nope"})
    text = client.get("/metrics").text
    assert 'kexue_requests_total{model="words",route="/v1/embeddings",status="200"} 1.0' in text
    assert 'route="/v1/embeddings",status="404"' in text
    assert "kexue_batch_size_bucket" in text and "kexue_queue_time_seconds" in text
    assert 'kexue_queue_depth{model="words"}' in text
    assert 'kexue_model_version_state{model="words",state="AVAILABLE",version="1"} 1.0' in text


def test_metrics_count_a_head_request_under_its_route(client: TestClient) -> None:
    """HEAD is answered as GET (`HeadAsGet`), on a copy of the request's scope: the route the
    router set went into the copy, and every `curl -I` or uptime checker's HEAD /healthz was
    counted as route="unmatched", beside the unknown paths."""
    assert client.head("/healthz").status_code == 200
    assert client.head("/v1/models/words").status_code == 200
    text = client.get("/metrics").text
    assert 'kexue_requests_total{model="",route="/healthz",status="200"} 1.0' in text
    assert 'route="/v1/models/{name}",status="200"} 1.0' in text
    assert 'route="unmatched"' not in text


def test_openapi_declares_operation_ids_and_errors(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ops = {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}
    assert {
        "health",
        "ready",
        "metrics",
        "listModels",
        "getModel",
        "reloadModel",
        "createEmbeddings",
    } <= set(ops)
    for status in ("400", "404", "413", "422", "429", "503", "504"):
        assert status in ops["createEmbeddings"]["responses"], status
    assert {"401", "403"} <= set(ops["reloadModel"]["responses"])
    json.dumps(doc)


def test_metrics_count_requests_refused_before_the_router_under_their_route(
    client: TestClient,
) -> None:
    """A 415 (a form, a compressed body) and a 413 by Content-Length are answered before the
    router runs, and were counted as route="unmatched", beside the unknown paths."""
    form = client.post("/v1/embeddings", content=b"input=a")
    assert form.status_code == 415
    gzipped = client.post(
        "/v1/embeddings",
        content=b"x",
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert gzipped.status_code == 415
    assert client.post("/v1/qa", content=b"x" * (2 << 20)).status_code == 413
    assert client.post("/no/such/path", content=b"input=a").status_code in (404, 415)
    text = client.get("/metrics").text
    assert 'route="/v1/embeddings",status="415"} 2.0' in text
    assert 'route="/v1/qa",status="413"} 1.0' in text
    counted = [line for line in text.splitlines() if line.startswith("kexue_requests_total{")]
    assert [line for line in counted if 'route="unmatched"' in line] == [
        'kexue_requests_total{model="",route="unmatched",status="404"} 1.0'  # the unknown path
    ]


def test_a_default_model_that_is_not_there_is_named_in_the_404_and_the_log(
    store: Path, make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    # DEFAULT_EMBEDDING_MODEL with a typo, or naming a model of another task: every request that
    # named no model got "no model named 'wrods' in the store", about a name it never sent.
    write_version(store, "words", 1)
    with caplog.at_level(logging.WARNING, logger="service.registry"):
        client = make_client(default_embedding_model="wrods", default_density_model="words")
    r = client.post("/v1/embeddings", json={"input": "a"})
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"
    assert (
        "no model named 'wrods' in the store (DEFAULT_EMBEDDING_MODEL=wrods; the request "
        "names no model)" in r.json()["detail"]
    )
    r = client.post("/v1/density/score", json={"inputs": [[0.0]]})
    assert r.status_code == 404
    assert "'words' is an embedding model, not density (DEFAULT_DENSITY_MODEL=words" in r.text
    # A request that names a model is answered as before.
    assert client.post("/v1/embeddings", json={"input": "a", "model": "words"}).status_code == 200
    assert "DEFAULT_EMBEDDING_MODEL=wrods: the store" in caplog.text
    assert "holds no model of that name; every embedding request" in caplog.text
    assert "DEFAULT_DENSITY_MODEL=words: the store" in caplog.text
    assert "holds it, of task embedding; every density request" in caplog.text
