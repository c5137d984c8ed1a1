"""CORS (CORS_ALLOW_ORIGINS) against a real `python -m service` process with API keys: a page of
an allowed origin has its preflight answered without a key and can read every answer, errors
included; any other origin gets no `Access-Control-Allow-Origin`, so its browser blocks it.
(With the setting unset there are no CORS headers at all: tests/test_http_edge.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import live_server
from tests.tiny_store import TINY_MODELS, tiny_versions

pytestmark = pytest.mark.slow

MODEL = TINY_MODELS["embedding"]
KEY = "cors-test-key"
ALLOWED = "https://app.example.com"
ALSO_ALLOWED = "http://localhost:5173"
OTHER = "https://evil.example.net"
MAX_BODY_BYTES = 4096


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tiny_versions(tmp_path_factory, ["embedding"], tmp_path_factory.mktemp("cors") / "s")
    settings = {
        # As an operator may write it: spaces, a capital letter.
        "CORS_ALLOW_ORIGINS": f"https://App.example.com, {ALSO_ALLOWED}",
        "API_KEYS": KEY,
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    with live_server(store, **settings) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def preflight(
    client: httpx.Client, origin: str, method: str = "POST", **extra: str
) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type",
        **extra,
    }
    return client.options("/v1/embeddings", headers=headers)


def listed(response: httpx.Response, header: str) -> set[str]:
    return {part.strip().lower() for part in response.headers.get(header, "").split(",")}


@pytest.mark.parametrize("origin", [ALLOWED, ALSO_ALLOWED])
def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key(
    client: httpx.Client, origin: str
) -> None:
    response = preflight(client, origin)
    assert response.status_code == 200, response.text  # not the API keys' 401
    assert response.headers["access-control-allow-origin"] == origin
    assert {"get", "head", "post"} <= listed(response, "access-control-allow-methods")
    assert {"authorization", "content-type"} <= listed(response, "access-control-allow-headers")
    assert "origin" in listed(response, "vary")
    assert int(response.headers["access-control-max-age"]) > 0


def test_a_preflight_from_another_origin_gets_the_json_400_and_no_allow_header(
    client: httpx.Client,
) -> None:
    response = preflight(client, OTHER)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    body = response.json()
    assert body["code"] == "bad_request" and body["error"]["type"] == "invalid_request_error"
    assert OTHER in body["detail"] and "CORS_ALLOW_ORIGINS" in body["detail"], body["detail"]
    # A suffix or a scheme of an allowed origin is another origin.
    for near in ("https://app.example.com.evil.example", "http://app.example.com"):
        assert "access-control-allow-origin" not in preflight(client, near).headers, near


@pytest.mark.parametrize(
    ("method", "extra", "said"),
    [
        ("DELETE", {}, "'DELETE' is not one of GET, HEAD, POST"),
        ("POST", {"Access-Control-Request-Headers": "x-custom"}, "'x-custom' are not all"),
    ],
    ids=["method", "header"],
)
def test_a_preflight_for_a_method_or_header_the_api_does_not_take_is_refused(
    client: httpx.Client, method: str, extra: dict[str, str], said: str
) -> None:
    response = preflight(client, ALLOWED, method, **extra)
    assert response.status_code == 400
    assert said in response.json()["detail"], response.json()["detail"]


def test_a_post_from_an_allowed_origin_can_read_the_answer_and_its_headers(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/v1/embeddings",
        json={"model": MODEL, "input": ["a text"]},
        headers={"Origin": ALLOWED, "Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "origin" in listed(response, "vary")
    exposed = listed(response, "access-control-expose-headers")
    assert {"x-model-version", "x-queue-time-ms", "x-compute-time-ms"} <= exposed
    assert {"retry-after", "www-authenticate"} <= exposed
    assert "x-model-version" in response.headers
    # The same request from another origin is served (the browser is the one that blocks), but
    # nothing allows that page to read it; a client that sends no Origin sees no CORS header.
    for origin in (OTHER, None):
        headers = {"Authorization": f"Bearer {KEY}", **({"Origin": origin} if origin else {})}
        other = client.post(
            "/v1/embeddings", json={"model": MODEL, "input": ["a text"]}, headers=headers
        )
        assert other.status_code == 200, other.text
        assert "access-control-allow-origin" not in other.headers, origin


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"model": MODEL, "input": ["a"]}, 401),  # the API keys' middleware
        ({"Authorization": "Bearer wrong"}, {"model": MODEL, "input": ["a"]}, 401),
        ({"Authorization": f"Bearer {KEY}"}, {"model": MODEL, "input": ["a" * 5000]}, 413),
        (
            {"Authorization": f"Bearer {KEY}", "Content-Encoding": "gzip"},
            {"model": MODEL, "input": ["a"]},
            415,
        ),
        ({"Authorization": f"Bearer {KEY}"}, {"model": "no-such-model", "input": ["a"]}, 404),
        ({"Authorization": f"Bearer {KEY}"}, {"model": MODEL}, 422),
    ],
    ids=["no-key", "wrong-key", "body-too-large", "compressed", "route-error", "validation"],
)
def test_errors_carry_the_allow_header_so_the_page_can_read_them(
    client: httpx.Client, headers: dict[str, str], body: dict, status: int
) -> None:
    """A 401, 413 or 415 from a middleware, as an error a route raises (a 404; the 429 of a full
    queue: tests/service/test_http.py), reaches an allowed page with its JSON body readable."""
    response = client.post("/v1/embeddings", json=body, headers={"Origin": ALLOWED, **headers})
    assert response.status_code == status, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.json()["error"]["message"]


def test_open_endpoints_and_head_carry_it_too(client: httpx.Client) -> None:
    for method in ("GET", "HEAD"):
        response = client.request(method, "/healthz", headers={"Origin": ALSO_ALLOWED})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALSO_ALLOWED
