"""API keys (service/auth.py) in process, on the fake embedding family: which paths want a key,
the 401s, ADMIN_TOKEN beside the keys, the keys file read again when it changes, the constant-time
comparison, and that no key reaches the log. tests/test_api_keys_live.py does the same against a
real server process, with the OpenAI SDK and the generated client."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import auth
from service.app import create_app
from service.auth import KeyRing, parse_keys
from service.settings import Settings
from tests.service.fakes import write_version

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-fedcba9876543210"
ADMIN = "admin-token-xyz"
EMBED = {"model": "words", "input": "a b"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(store: Path, make_client: Callable[..., TestClient]) -> TestClient:
    write_version(store, "words", 1)
    return make_client(api_keys=f"{KEY_A}, {KEY_B}", admin_token=ADMIN)


def assert_401(response: Any, invalid: bool) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) == invalid
    body = response.json()
    assert body["code"] == "unauthorized" and body["detail"]
    assert body["error"] == {
        "message": body["detail"],
        "type": "authentication_error",
        "code": "unauthorized",
        "param": None,
    }


def test_without_keys_every_endpoint_is_open(client: TestClient) -> None:
    assert client.post("/v1/embeddings", json=EMBED).status_code == 200
    assert client.get("/v1/models").status_code == 200


def test_inference_and_model_endpoints_want_a_key(keyed: TestClient) -> None:
    for method, path, body in [
        ("POST", "/v1/embeddings", EMBED),
        ("POST", "/v1/qa", {"question": "q", "passages": ["p"]}),
        ("POST", "/v1/generate", {"condition": {"label": "x"}}),
        ("POST", "/v1/density/score", {"inputs": [[0.0]]}),
        ("POST", "/v1/density/sample", {"num_samples": 1}),
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/words", None),
    ]:
        assert_401(keyed.request(method, path, json=body), invalid=False)
        assert_401(keyed.request(method, path, json=body, headers=bearer("nope")), invalid=True)
        # Lower-case scheme (RFC 7235: case-insensitive), the key itself is exact.
        wrong_case = {"Authorization": f"bearer {KEY_A.upper()}"}
        assert_401(keyed.request(method, path, json=body, headers=wrong_case), invalid=True)
        basic = {"Authorization": f"Basic {KEY_A}"}
        assert_401(keyed.request(method, path, json=body, headers=basic), invalid=False)
    for key in (KEY_A, KEY_B, ADMIN):
        assert keyed.post("/v1/embeddings", json=EMBED, headers=bearer(key)).status_code == 200
        assert keyed.get("/v1/models", headers=bearer(key)).status_code == 200
    lower = {"Authorization": f"bearer {KEY_B}"}
    assert keyed.get("/v1/models/words", headers=lower).status_code == 200


def test_health_readiness_metrics_and_the_pages_stay_open(keyed: TestClient) -> None:
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/docs/assets/swagger-ui.css",
        "/playground",
        "/playground/static/playground.js",
    ):
        assert keyed.get(path).status_code == 200, path


def test_metrics_want_a_key_when_asked(store: Path, make_client: Callable[..., TestClient]) -> None:
    write_version(store, "words", 1)
    client = make_client(api_keys=KEY_A, metrics_require_key=True)
    assert_401(client.get("/metrics"), invalid=False)
    assert client.get("/metrics", headers=bearer(KEY_A)).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_closed_by_default_and_before_the_body_is_read(keyed: TestClient) -> None:
    # A path no route serves: 401 before 404, so that it tells nothing without a key.
    assert_401(keyed.get("/v2/anything"), invalid=False)
    assert keyed.get("/v2/anything", headers=bearer(KEY_A)).status_code == 404
    # Neither the body's JSON (422) nor its size (413) is looked at without a key.
    bad_json = keyed.post(
        "/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_401(bad_json, invalid=False)
    huge = keyed.post("/v1/embeddings", content=b"x" * (2 << 20))
    assert_401(huge, invalid=False)
    # The 401s are counted like every other answer.
    metrics = keyed.get("/metrics").text
    assert 'route="unmatched",status="401"' in metrics


def test_two_authorization_fields_are_refused_whichever_comes_first(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    """Authorization is one field (RFC 9110 11.6.2); with two, the first was the key: a proxy in
    front that reads the last (to log, rate-limit or bill a key) and the service acted for
    different keys. Refused whatever their order, as a Host field twice is, on the keyed
    endpoints and on the admin ones (with or without keys)."""
    write_version(store, "words", 1)
    for client in (
        make_client(api_keys=f"{KEY_A}, {KEY_B}", admin_token=ADMIN),
        make_client(admin_token=ADMIN),
    ):
        for first, second in ((KEY_A, KEY_B), (KEY_B, "nope"), ("nope", KEY_A), (ADMIN, ADMIN)):
            two = [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")]
            answers = [client.post("/v1/models/words/reload", headers=two)]
            if client.app.state.settings.api_keys is not None:  # type: ignore[attr-defined]
                answers.append(client.post("/v1/embeddings", json=EMBED, headers=two))
            for answer in answers:
                assert answer.status_code == 401, answer.text
                assert answer.json()["code"] == "unauthorized"
                assert "Authorization header field twice" in answer.json()["detail"]
                assert 'error="invalid_request"' in answer.headers["www-authenticate"]
        assert client.post("/v1/models/words/reload", headers=bearer(ADMIN)).status_code == 200


def test_a_websocket_without_a_key_is_closed(keyed: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed, keyed.websocket_connect("/v1/anything"):
        pass
    assert closed.value.code == 1008


def test_admin_endpoints_take_the_admin_token_not_a_key(keyed: TestClient) -> None:
    reload = "/v1/models/words/reload"
    assert_401(keyed.post(reload), invalid=False)
    forbidden = keyed.post(reload, headers=bearer(KEY_A))
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
    assert forbidden.json()["error"]["type"] == "permission_error"
    assert keyed.post(reload, headers=bearer(ADMIN)).status_code == 200


def test_admin_401_says_bearer_without_keys_too(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    write_version(store, "words", 1)
    client = make_client(admin_token=ADMIN)
    response = client.post("/v1/models/words/reload")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


def write_keys(path: Path, text: str) -> None:
    """Replace the file as a careful operator does: a new file renamed over the old one."""
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    os.replace(temporary, path)


def test_the_keys_file_is_read_again_when_it_changes(
    store: Path, tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    write_version(store, "words", 1)
    keys_file = tmp_path / "keys.txt"
    write_keys(keys_file, f"# clients of team A\n{KEY_A}\n\n")
    client = make_client(api_keys_file=keys_file)

    def status(key: str) -> int:
        return client.post("/v1/embeddings", json=EMBED, headers=bearer(key)).status_code

    assert (status(KEY_A), status(KEY_B)) == (200, 401)
    write_keys(keys_file, f"{KEY_A}\n{KEY_B}  # the new one\n")  # add the new key
    assert (status(KEY_A), status(KEY_B)) == (200, 200)
    write_keys(keys_file, f"{KEY_B}\n")  # the clients moved: remove the old one
    assert (status(KEY_A), status(KEY_B)) == (401, 200)
    # Written in place, to the same size, at once: still seen (a file changed in the last
    # SETTLE_S is read at every request).
    keys_file.write_text(f"{KEY_A}\n")
    assert (status(KEY_A), status(KEY_B)) == (200, 401)


def test_a_bad_or_missing_keys_file_keeps_the_keys(
    store: Path, tmp_path: Path, make_client: Callable[..., TestClient], caplog: Any
) -> None:
    write_version(store, "words", 1)
    keys_file = tmp_path / "keys.txt"
    write_keys(keys_file, f"{KEY_A}\n")
    client = make_client(api_keys_file=keys_file)

    def status(key: str) -> int:
        return client.post("/v1/embeddings", json=EMBED, headers=bearer(key)).status_code

    with caplog.at_level(logging.WARNING, logger="service.auth"):
        write_keys(keys_file, f"{KEY_B}\nnot a key, this line\n")
        assert (status(KEY_A), status(KEY_B)) == (200, 401)
        keys_file.unlink()
        assert (status(KEY_A), status(KEY_B)) == (200, 401)
    logged = caplog.text
    assert "line 2: not a bearer token" in logged
    assert "No such file" in logged
    assert KEY_A not in logged and KEY_B not in logged and "this line" not in logged
    # An empty file is no key at all: every request is refused, never every one let in.
    write_keys(keys_file, "# nobody for now\n")
    assert (status(KEY_A), status(KEY_B)) == (401, 401)


def test_a_bad_key_stops_the_start_without_showing_it(store: Path, tmp_path: Path) -> None:
    secret = "secret part"
    with pytest.raises(ValueError, match="API_KEYS: key 2 is not a bearer token") as raised:
        create_app(Settings(model_store=store, api_keys=f"{KEY_A},{secret}x,{KEY_B}"))
    assert "secret" not in str(raised.value)
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{KEY_A}\n# fine\nkey with {secret}\n")
    with pytest.raises(ValueError, match=r"keys\.txt line 3: not a bearer token") as raised:
        create_app(Settings(model_store=store, api_keys_file=keys_file))
    assert "secret" not in str(raised.value)
    with pytest.raises(FileNotFoundError):
        create_app(Settings(model_store=store, api_keys_file=tmp_path / "missing.txt"))


def test_empty_settings_mean_no_keys() -> None:
    settings = Settings(api_keys=" ", api_keys_file="")
    assert settings.api_keys is None and settings.api_keys_file is None
    assert KeyRing.from_settings(settings) is None


def test_parse_keys_skips_comments_and_blank_lines() -> None:
    text = "# header\n\n  abc  \nd.e_f~g+h/i==  # trailing comment\n   # indented comment\n"
    assert parse_keys(text, "test") == ["abc", "d.e_f~g+h/i=="]


def test_every_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: as many comparisons for the first key as for the last or none, each of
    two SHA-256 digests (equal lengths, whatever the keys' lengths)."""
    compared: list[tuple[int, int]] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    keys = ["k1", "a-much-longer-key-" * 4, "k3"]
    ring = KeyRing(keys)
    for presented, accepted in [("k1", True), ("k3", True), ("nope", False), ("k", False)]:
        compared.clear()
        assert ring.accepts(presented) is accepted
        assert compared == [(32, 32)] * len(keys)


def test_the_keys_file_is_checked_cheaply(tmp_path: Path) -> None:
    """One stat per request once the file has settled; it is read again only when it changes."""
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{KEY_A}\n")
    old = time.time() - 60
    os.utime(keys_file, (old, old))
    ring = KeyRing(keys_file=keys_file)
    reads = 0
    original = Path.read_text

    def counting(self: Path, *args: Any, **kwargs: Any) -> str:
        nonlocal reads
        reads += 1
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "read_text", counting)
        for _ in range(100):
            assert ring.accepts(KEY_A)
        assert reads == 0


def test_the_document_declares_the_bearer_scheme(keyed: TestClient) -> None:
    document = keyed.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["HTTPBearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in ("/healthz", "/readyz", "/metrics"):
                assert "security" not in operation, path
            else:
                assert operation["security"] == [{"HTTPBearer": []}], path
                assert "401" in operation["responses"], path


def test_no_key_is_logged(
    store: Path, make_client: Callable[..., TestClient], caplog: Any, tmp_path: Path
) -> None:
    write_version(store, "words", 1)
    keys_file = tmp_path / "keys.txt"
    write_keys(keys_file, f"{KEY_B}\n")
    with caplog.at_level(logging.DEBUG):
        client = make_client(api_keys=KEY_A, api_keys_file=keys_file, admin_token=ADMIN)
        client.post("/v1/embeddings", json=EMBED, headers=bearer(KEY_A))
        client.post("/v1/embeddings", json=EMBED, headers=bearer("wrong-key-123"))
        write_keys(keys_file, f"{KEY_B}\n{KEY_A}\n")
        client.post("/v1/embeddings", json=EMBED, headers=bearer(KEY_B))
        client.post("/v1/models/words/reload", headers=bearer(ADMIN))
    text = caplog.text
    for secret in (KEY_A, KEY_B, ADMIN, "wrong-key-123"):
        assert secret not in text
    shown = repr(Settings(api_keys=KEY_A, admin_token=ADMIN))
    assert KEY_A not in shown and ADMIN not in shown
