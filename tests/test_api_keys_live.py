"""API keys against a real server process (API_KEYS_FILE, ADMIN_TOKEN), called the ways users
call it: the OpenAI SDK (`api_key`, its errors' text, `models.list()`, `dimensions`), the
generated client (`AuthenticatedClient`) and plain HTTP; keys rotated in the file while the
process keeps serving, with no request failing; and no key in the server's log."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx
import numpy as np
import openai
import pytest
from kexue_serve_client import AuthenticatedClient, Client
from kexue_serve_client.api.embeddings import create_embeddings
from kexue_serve_client.api.models import list_models, reload_model
from kexue_serve_client.models import EmbeddingRequest, EmbeddingResponse, ErrorBody, ModelList

from tests.live_server import live_server_process
from tests.tiny_store import TINY_MODELS, tiny_versions

KEY_OLD = "old-key-3f9a1c0e5b7d"
KEY_NEW = "new-key-8e2b4d6f0a1c"
ADMIN = "live-admin-token-77"
MODEL = TINY_MODELS["embedding"]
DIM = 16  # the tiny JoSE model's
TEXTS = ["酒店很好", "手机坏了"]


@dataclass
class Server:
    url: str
    keys_file: Path
    log_path: Path
    proc: Popen[bytes]


def write_keys(path: Path, *keys: str) -> None:
    """A new keys file renamed over the old one, as the docs tell operators to do."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text("# kexue-serve API keys, one a line\n" + "".join(f"{k}\n" for k in keys))
    os.replace(temporary, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("keys")
    store = tiny_versions(tmp_path_factory, ["embedding"], root / "store")
    keys_file = root / "keys.txt"
    write_keys(keys_file, KEY_OLD)
    log_path = root / "server.log"
    with live_server_process(
        store,
        log_path=log_path,
        API_KEYS_FILE=str(keys_file),
        ADMIN_TOKEN=ADMIN,
        LOG_LEVEL="debug",
    ) as (url, proc):
        yield Server(url, keys_file, log_path, proc)


def sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def embed(server: Server, key: str | None, **body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(
        f"{server.url}/v1/embeddings",
        json={"model": MODEL, "input": TEXTS, **body},
        headers=headers,
        timeout=60,
    )


def test_open_endpoints_need_no_key(server: Server) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"):
        assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200, path
    refused = embed(server, None)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["code"] == "unauthorized"


def test_the_openai_sdk_embeds_with_its_api_key(server: Server) -> None:
    with sdk(server, KEY_OLD) as client:
        # The SDK asks for base64 unless told otherwise, and decodes it.
        result = client.embeddings.create(model=MODEL, input=TEXTS)
        same = client.embeddings.create(model=MODEL, input=TEXTS, dimensions=DIM)
    vectors = np.array([d.embedding for d in result.data])
    direct = embed(server, KEY_OLD).json()
    np.testing.assert_allclose(vectors, [d["embedding"] for d in direct["data"]], atol=1e-6)
    assert vectors.shape == (2, DIM) and result.model == MODEL
    assert result.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
    np.testing.assert_allclose([d.embedding for d in same.data], vectors, atol=1e-6)


def test_the_openai_sdk_shows_the_services_error_text(server: Server) -> None:
    with sdk(server, "not-a-key") as client, pytest.raises(openai.AuthenticationError) as denied:
        client.embeddings.create(model=MODEL, input=TEXTS)
    assert str(denied.value) == "Error code: 401 - the API key is not valid"
    assert (denied.value.code, denied.value.type) == ("unauthorized", "authentication_error")

    with sdk(server, KEY_OLD) as client:
        with pytest.raises(openai.NotFoundError) as unknown:
            client.embeddings.create(model="no-such-model", input=TEXTS)
        assert str(unknown.value) == "Error code: 404 - no model named 'no-such-model' in the store"
        assert (unknown.value.code, unknown.value.param) == ("model_not_found", "model")

        with pytest.raises(openai.BadRequestError) as shorter:
            client.embeddings.create(model=MODEL, input=TEXTS, dimensions=8)
        assert f"makes vectors of {DIM} dimensions" in str(shorter.value)
        assert (shorter.value.code, shorter.value.param) == ("bad_input", "dimensions")

        with pytest.raises(openai.UnprocessableEntityError) as invalid:
            client.embeddings.create(model=MODEL, input=[])
        assert str(invalid.value) == (
            "Error code: 422 - input: Input should be a valid string; input: List should have "
            "at least 1 item after validation, not 0"
        )
        assert invalid.value.param == "input"


def test_the_openai_sdk_lists_model_ids(server: Server) -> None:
    with sdk(server, KEY_OLD) as client:
        models = list(client.models.list())
        one = client.models.retrieve(MODEL)
    assert [m.id for m in models] == [MODEL]
    assert models[0].object == "model" and models[0].owned_by == "kexue-serve"
    assert models[0].created > 1_600_000_000  # the tiny version's created_at, just now
    assert one.id == MODEL


def test_the_generated_client_sends_its_token(server: Server) -> None:
    body = EmbeddingRequest(input_=TEXTS, model=MODEL)
    with AuthenticatedClient(base_url=server.url, token=KEY_OLD, timeout=60) as keyed:
        result = create_embeddings.sync(client=keyed, body=body)
        assert isinstance(result, EmbeddingResponse) and len(result.data) == 2
        listed = list_models.sync(client=keyed)
        assert isinstance(listed, ModelList) and [m.id for m in listed.data] == [MODEL]
        # A key is no admin token.
        forbidden = reload_model.sync_detailed(name=MODEL, client=keyed)
        assert forbidden.status_code == 403
    with Client(base_url=server.url, timeout=60) as anonymous:
        refused = create_embeddings.sync_detailed(client=anonymous, body=body)
        assert refused.status_code == 401
        assert isinstance(refused.parsed, ErrorBody) and refused.parsed.code == "unauthorized"
        assert refused.parsed.error.type_ == "authentication_error"
    with AuthenticatedClient(base_url=server.url, token=ADMIN, timeout=60) as admin:
        assert reload_model.sync_detailed(name=MODEL, client=admin).status_code == 200


def test_a_refused_request_leaves_the_connection_usable(server: Server) -> None:
    """The 401 goes out before the body is read; the next request on the same connection is
    served (the unread body is not taken for the next request)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        body = {"model": MODEL, "input": ["字" * 100] * 8}
        for _ in range(3):
            assert client.post("/v1/embeddings", json=body).status_code == 401
            ok = client.post(
                "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {KEY_OLD}"}
            )
            assert ok.status_code == 200, ok.text


def test_keys_rotate_without_a_restart_and_without_a_failed_request(server: Server) -> None:
    pid = server.proc.pid
    assert (embed(server, KEY_OLD).status_code, embed(server, KEY_NEW).status_code) == (200, 401)

    write_keys(server.keys_file, KEY_OLD, KEY_NEW)  # 1. add the new key
    assert (embed(server, KEY_OLD).status_code, embed(server, KEY_NEW).status_code) == (200, 200)

    # 2. The clients move to the new key while the file is rewritten again and again (each time
    # with both keys): not one of their requests is refused.
    failures: list[int] = []
    done = threading.Event()

    def client_on(key: str) -> None:
        with sdk(server, key) as client:
            for _ in range(40):
                try:
                    client.embeddings.create(model=MODEL, input=TEXTS[:1])
                except openai.APIStatusError as exc:
                    failures.append(exc.status_code)

    callers = [threading.Thread(target=client_on, args=(k,)) for k in (KEY_OLD, KEY_NEW)]
    for caller in callers:
        caller.start()

    def rewrite() -> None:
        for i in range(50):
            write_keys(server.keys_file, *((KEY_OLD, KEY_NEW) if i % 2 else (KEY_NEW, KEY_OLD)))
            if done.wait(0.01):
                return

    writer = threading.Thread(target=rewrite)
    writer.start()
    for caller in callers:
        caller.join(timeout=120)
    done.set()
    writer.join(timeout=30)
    assert failures == []

    write_keys(server.keys_file, KEY_NEW)  # 3. remove the old key
    assert (embed(server, KEY_OLD).status_code, embed(server, KEY_NEW).status_code) == (401, 200)
    with sdk(server, KEY_NEW) as client:
        assert len(client.embeddings.create(model=MODEL, input=TEXTS).data) == 2
    assert server.proc.poll() is None and server.proc.pid == pid  # the same process throughout
    write_keys(server.keys_file, KEY_OLD)  # as the other tests expect it


def test_no_key_reaches_the_log(server: Server) -> None:
    """Last in the file: every key has been used by now (the log is at debug level)."""
    embed(server, "wrong-key-42")
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "API_KEYS_FILE" in log and "read again" in log  # the rotations were logged
    for secret in (KEY_OLD, KEY_NEW, ADMIN, "wrong-key-42"):
        assert secret not in log
