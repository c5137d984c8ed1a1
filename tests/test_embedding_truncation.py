"""`truncate` of /v1/embeddings against a real `python -m service` process, for both embedding
families: an over-long text is 413 unless the request asks to cut it, and then it embeds as the
text cut by hand, with `usage` counting what was embedded; MAX_TEXT_CHARS still holds."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.live_server import live_server
from tests.models.test_bert_checkpoint import google_weights, to_hf, write_hf_folder
from tests.tiny_store import export_tiny_jose
from training.bert import main as export_encoder

pytestmark = pytest.mark.slow

# The longest text either model takes: JoSE, the largest bucket in known words; the BERT encoder,
# the same in WordPieces with [CLS] and [SEP] (its position table, 16, is longer).
LARGEST_BUCKET = 8
MAX_TEXT_CHARS = 300
SETTINGS = {
    "LENGTH_BUCKETS": f"4,{LARGEST_BUCKET}",
    "MAX_BATCH_SIZE": "4",
    "MAX_TEXT_CHARS": str(MAX_TEXT_CHARS),
}
WORDS = [f"w{i}" for i in range(15)]  # in both vocabularies (the tiny BERT's has w0 ... w18)
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("truncation")
    store = root / "store"
    export_tiny_jose(store, "jose", WORDS, {"kind": "basic", "lowercase": True})
    checkpoint = write_hf_folder(root / "hf", to_hf(google_weights(), prefix=""))
    export_encoder(["--checkpoint", str(checkpoint), "--out", str(store), "--name", "bert"])
    with live_server(store, **SETTINGS) as url:
        yield url


def embed(url: str, **body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json=body, timeout=60)


def vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array([d["embedding"] for d in response.json()["data"]], np.float32)


# model -> (tokens a text may have besides its words, method)
FAMILIES = {"jose": (0, "average"), "bert": (2, "mean")}


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_an_over_long_text_is_413_without_truncate_and_cut_to_fit_with_it(
    server: str, model: str
) -> None:
    specials, method = FAMILIES[model]
    fits = LARGEST_BUCKET - specials  # words a text may have
    long_text = " ".join(WORDS[: fits + 5])
    r = embed(server, model=model, input=long_text, method=method)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert "truncate" in r.json()["detail"]
    r = embed(server, model=model, input=long_text, method=method, truncate=False)
    assert r.status_code == 413
    # Which text of a batch is too long, for a caller embedding a corpus in batches.
    r = embed(server, model=model, input=["a", long_text], method=method)
    assert r.status_code == 413 and r.json()["detail"].startswith("input 1: ")
    assert r.json()["error"]["param"] == "input"

    first = " ".join(WORDS[:fits])
    last = " ".join(WORDS[5 : fits + 5])
    r = embed(server, model=model, input=[long_text, first], method=method, truncate=True)
    cut, by_hand = vectors(r)
    np.testing.assert_allclose(cut, by_hand, atol=TOLERANCE)
    assert r.json()["usage"] == {"prompt_tokens": 2 * LARGEST_BUCKET, "total_tokens": 16}
    for direction in ("left", "Left"):  # text-embeddings-inference's clients send "Left"
        body = {"truncate": True, "truncation_direction": direction}
        cut, by_hand = vectors(embed(server, model=model, input=[long_text, last], **body))
        np.testing.assert_allclose(cut, by_hand, atol=TOLERANCE)
    r = embed(server, model=model, input=long_text, truncate=True, truncation_direction="middle")
    assert r.status_code == 422

    # A text that fits is embedded whole, and counted so, with truncate or without.
    short = " ".join(WORDS[:3])
    plain = embed(server, model=model, input=short)
    cut = embed(server, model=model, input=short, truncate=True, truncation_direction="left")
    np.testing.assert_allclose(vectors(cut), vectors(plain), atol=TOLERANCE)
    assert cut.json()["usage"]["prompt_tokens"] == 3 + specials


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_truncate_leaves_the_request_limits_in_force(server: str, model: str) -> None:
    too_many_chars = " ".join(WORDS * 20)[: MAX_TEXT_CHARS + 1]
    r = embed(server, model=model, input=too_many_chars, truncate=True)
    assert r.status_code == 413 and "MAX_TEXT_CHARS" in r.json()["detail"]
    assert r.json()["error"]["param"] == "input"
