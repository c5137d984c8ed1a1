"""POST /v1/generate through the real generation runtime on tiny exported models: the samples are
the offline decoder's for the same seed, requests share decode steps, the SSE stream is
well-formed and stops decoding when the client goes, and bad requests get the right status."""

from __future__ import annotations

import concurrent.futures
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from models.bert.lm_reader import SavedModelLMStepModel
from models.bert.tokenizer import BertTokenizer
from models.generation.decoding import generate, label_guidance, make_rows, row_text
from models.generation.sampling import MIN_TEMPERATURE, SamplingParams
from service.app import create_app
from service.settings import Settings
from tests.live_server import live_server
from tests.service.conftest import wait_ready
from tests.tiny_store import tiny_version

# Those of tests/tiny_store.py's generation, generation-vector and generation-long models.
MAX_LENGTH = 24
LONG_MAX_LENGTH = 200


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    tiny_version(tmp_path_factory, "generation", root, "writer")
    tiny_version(tmp_path_factory, "generation-vector", root, "vector-writer")
    tiny_version(tmp_path_factory, "generation-long", root, "long-writer")
    return root


@pytest.fixture(scope="module")
def live_url(store: Path) -> Iterator[str]:
    """A real server process over `store`, shared by the module's live tests: each reads only
    its own model's metrics (a server start costs a TensorFlow import)."""
    with live_server(store, MAX_NEW_TOKENS="190", MAX_NUM_SAMPLES="4") as url:
        yield url


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_store=store, poll_interval_s=0, max_num_samples=4, max_new_tokens=30,
        max_batch_size=8, max_text_chars=100,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        wait_ready(c, timeout_s=120)
        yield c


# The offline decoder of `writer`: its step model and tokenizer.
Writer = tuple[SavedModelLMStepModel, BertTokenizer]


@pytest.fixture(scope="module")
def writer(store: Path) -> Writer:
    """The offline decoder's model and tokenizer of `writer`, loaded once (the step model keeps
    no state between calls: the cache goes in and out of each)."""
    version = store / "writer" / "1"
    return SavedModelLMStepModel(version), BertTokenizer(version / "assets" / "vocab.txt")


def offline(writer: Writer, label: int, n: int, seed: int, max_new: int, prompt: str = "") -> list:
    model, tokenizer = writer
    condition = model.label_condition([label])[0]
    rows = make_rows(tokenizer, condition, n, max_new, SamplingParams(1.0, None, 0.95), seed,
                     prompt)  # fmt: skip
    generate(model, tokenizer, rows)
    return [(row_text(tokenizer, r), len(r.new_ids), r.finish_reason) for r in rows]


def post(client: TestClient, **body) -> httpx.Response:
    return client.post("/v1/generate", json={"model": "writer", **body})


def test_samples_are_the_offline_decoders_for_the_seed(client: TestClient, writer: Writer) -> None:
    r = post(client, condition={"label": "pos"}, num_samples=3, max_new_tokens=12, seed=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "writer" and body["version"] == 1
    got = [(s["text"], s["tokens"], s["finish_reason"]) for s in body["samples"]]
    assert got == offline(writer, 1, 3, 5, 12)
    assert sum(s["tokens"] for s in body["samples"]) > 3
    again = post(client, condition={"label": "pos"}, num_samples=3, max_new_tokens=12, seed=5)
    assert again.json()["samples"] == body["samples"]
    other = post(client, condition={"label": "pos"}, num_samples=3, max_new_tokens=12, seed=6)
    assert other.json()["samples"] != body["samples"]
    prompted = post(client, condition={"label": "neg"}, prompt="酒店", max_new_tokens=5, seed=1)
    assert [s["text"] for s in prompted.json()["samples"]] == [
        offline(writer, 0, 1, 1, 5, "酒店")[0][0]
    ]


def test_guided_samples_are_the_offline_guided_decoders(client: TestClient, writer: Writer) -> None:
    body = {"condition": {"label": "pos"}, "num_samples": 2, "max_new_tokens": 12, "seed": 5}
    guided = post(client, **body, guidance_scale=2.0)
    assert guided.status_code == 200, guided.text
    model, tokenizer = writer
    conditions = model.label_condition([0, 1])
    rows = make_rows(tokenizer, conditions[1], 2, 12, SamplingParams(1.0, None, 0.95), 5,
                     guidance=label_guidance(conditions, 1, 2.0))  # fmt: skip
    generate(model, tokenizer, rows)
    assert [s["text"] for s in guided.json()["samples"]] == [row_text(tokenizer, r) for r in rows]
    assert guided.json()["samples"] != post(client, **body).json()["samples"]
    assert post(client, **body, guidance_scale=0).json() == post(client, **body).json()
    vector = client.post("/v1/generate", json={
        "model": "vector-writer", "condition": {"vector": [0.1] * 4}, "guidance_scale": 1.0,
    })  # fmt: skip
    assert vector.status_code == 400 and "label" in vector.json()["detail"]
    assert post(client, **body, guidance_scale=-1).status_code == 422


def test_greedy_and_length_limits(client: TestClient) -> None:
    r = post(client, condition={"label": "neg"}, num_samples=2, max_new_tokens=30,
             temperature=0, seed=1)  # fmt: skip
    samples = r.json()["samples"]
    assert samples[0] == samples[1]  # greedy: the seed does not matter
    for s in samples:
        assert s["tokens"] <= MAX_LENGTH - 1
        assert s["finish_reason"] in ("stop", "length")
    short = post(client, condition={"label": "neg"}, max_new_tokens=1, top_k=3, seed=2)
    assert short.json()["samples"][0]["tokens"] <= 1


def test_temperatures_under_the_minimum_are_greedy(client: TestClient) -> None:
    def texts(**body) -> list[str]:
        r = post(client, condition={"label": "pos"}, num_samples=2, max_new_tokens=12, **body)
        assert r.status_code == 200, r.text
        return [s["text"] for s in r.json()["samples"]]

    for seed in (1, 2):
        greedy = texts(temperature=0, seed=seed)
        assert greedy[0] == greedy[1]
        # 1e-320 is a float64 subnormal: log p / T overflows; unchecked, the text was garbage.
        for temperature in (1e-320, 1e-300, MIN_TEMPERATURE / 2):
            assert texts(temperature=temperature, seed=seed) == greedy, temperature
        # The other tiny numbers a request carries: a nucleus of 1e-320 keeps the top token.
        assert texts(top_p=1e-320, seed=seed) == greedy
        sampled = texts(temperature=1.0, top_p=1.0, seed=seed)
        assert sampled != greedy and sampled[0] != sampled[1]
    guided = texts(temperature=0, guidance_scale=1e-320, seed=1)
    assert guided == texts(temperature=0, seed=1)


def test_concurrent_requests_share_decode_steps(client: TestClient, writer: Writer) -> None:
    runtime = client.app.state.registry.get("writer").runtime  # type: ignore[attr-defined]
    before = runtime.scheduler.steps
    seeds = list(range(10, 18))

    def one(seed: int) -> list:
        r = post(client, condition={"label": "pos"}, max_new_tokens=10, top_k=0, top_p=1.0,
                 seed=seed, temperature=1.0)  # fmt: skip
        return [(s["text"], s["tokens"]) for s in r.json()["samples"]]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, seeds))
    tokens = sum(t for result in results for _, t in result)
    steps = runtime.scheduler.steps - before
    # One at a time would take about `tokens` steps; together they share them.
    assert steps < tokens, (steps, tokens)
    model, tokenizer = writer
    for seed, result in zip(seeds, results, strict=True):
        rows = make_rows(tokenizer, model.label_condition([1])[0], 1, 10, SamplingParams(1.0),
                         seed)  # fmt: skip
        generate(model, tokenizer, rows)
        assert result == [(row_text(tokenizer, rows[0]), len(rows[0].new_ids))]


def test_stream_is_well_formed_and_adds_up_to_the_samples(client: TestClient) -> None:
    body = {"condition": {"label": "pos"}, "num_samples": 2, "max_new_tokens": 12, "seed": 9}
    plain = post(client, **body).json()["samples"]
    with client.stream(
        "POST", "/v1/generate", json={"model": "writer", **body, "stream": True}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(re.fullmatch(r"data: \{.*\}", e) for e in events[:-1])
    texts, finals = ["", ""], [None, None]
    for chunk in chunks:
        assert chunk["model"] == "writer" and chunk["version"] == 1
        assert finals[chunk["index"]] is None, "no chunk after a sample's last one"
        texts[chunk["index"]] += chunk["text"]
        if chunk["finish_reason"] is not None:
            finals[chunk["index"]] = (chunk["tokens"], chunk["finish_reason"])
    assert texts == [s["text"] for s in plain]
    assert finals == [(s["tokens"], s["finish_reason"]) for s in plain]


def test_vector_condition(client: TestClient) -> None:
    body = {"model": "vector-writer", "condition": {"vector": [0.5, -1, 2, 0]}, "seed": 3,
            "max_new_tokens": 8}  # fmt: skip
    a = client.post("/v1/generate", json=body)
    assert a.status_code == 200, a.text
    b = client.post("/v1/generate", json={**body, "condition": {"vector": [0.5, -1, 2, 0]}})
    assert a.json() == b.json()


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"condition": {"label": "meh"}}, 400, "unknown label"),
        ({"condition": {"vector": [1.0, 2.0]}}, 400, "labels"),
        ({"model": "vector-writer", "condition": {"vector": [1.0]}}, 400, "takes 4"),
        ({"model": "vector-writer", "condition": {"label": "pos"}}, 400, "vector"),
        # Finite doubles, but inf in float32, the model's dtype.
        (
            {"model": "vector-writer", "condition": {"vector": [0, -1e308, 0, 0]}},
            400,
            "condition.vector[1]",
        ),
        # Finite in float32, but the model's LayerNorms overflow: NaN log-probabilities.
        ({"model": "vector-writer", "condition": {"vector": [1e20, 0, 0, 0]}}, 400, "not finite"),
        (
            {"model": "vector-writer", "condition": {"vector": [1e20, 0, 0, 0]}, "stream": True},
            400,
            "not finite",
        ),
        ({"condition": {"label": "pos"}, "num_samples": 5}, 413, "MAX_NUM_SAMPLES"),
        ({"condition": {"label": "pos"}, "max_new_tokens": 31}, 413, "MAX_NEW_TOKENS"),
        ({"condition": {"label": "pos"}, "prompt": "好" * 101}, 413, "MAX_TEXT_CHARS"),
        ({"condition": {"label": "pos"}, "prompt": "好" * 40}, 413, "prompt"),
        ({"condition": {"label": "pos"}, "num_samples": 5000}, 422, None),
        ({"condition": {"label": "pos"}, "top_p": 0}, 422, None),
        ({"condition": {"label": "pos"}, "temperature": -1}, 422, None),
        ({"condition": {"label": "pos", "vector": [1.0]}}, 422, None),
        ({"condition": {"label": "pos"}, "frequency_penalty": 1}, 422, None),
        ({"model": "nobody", "condition": {"label": "pos"}}, 404, None),
        ({"model": "../etc", "condition": {"label": "pos"}}, 422, None),
    ],
)
def test_bad_requests(client: TestClient, body: dict, status: int, words: str | None) -> None:
    r = client.post("/v1/generate", json={"model": "writer", **body})
    assert r.status_code == status, r.text
    if words is not None:
        assert words in r.json()["detail"]
    if status == 413:  # the field at fault, as OpenAI's `error.param`
        assert r.json()["error"]["param"] in body


def test_the_longest_prompt_leaves_room_for_cls_and_one_new_token(client: TestClient) -> None:
    # MAX_LENGTH positions hold [CLS], the prompt (one token a character here) and what is
    # written (the last token written is never fed back, so the longest prompt still gets 2);
    # the 413 says how long a prompt may be, not only how long the model is.
    longest = {"condition": {"label": "pos"}, "prompt": "好" * (MAX_LENGTH - 2)}
    r = client.post("/v1/generate", json={"model": "writer", **longest})
    assert r.status_code == 200, r.text
    assert r.json()["samples"][0]["tokens"] <= 2, r.text
    r = client.post(
        "/v1/generate", json={"model": "writer", **longest, "prompt": "好" * (MAX_LENGTH - 1)}
    )
    assert r.status_code == 413
    assert (
        f"the prompt is {MAX_LENGTH - 1} tokens; the most is {MAX_LENGTH - 2}"
        in (r.json()["detail"])
    )


def test_non_finite_vector_is_422(client: TestClient) -> None:
    r = client.post(
        "/v1/generate",
        content=b'{"model": "vector-writer", "condition": {"vector": [NaN, 1, 2, 3]}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422


def _metric(text: str, name: str, model: str) -> float:
    match = re.search(rf'^{name}\{{model="{model}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_stream_whose_client_goes_stops_decoding(live_url: str) -> None:
    body = {"model": "long-writer", "condition": {"label": "pos"}, "num_samples": 4,
            "max_new_tokens": 190, "seed": 1, "stream": True, "top_k": 0, "top_p": 1.0,
            "temperature": 1.0}  # fmt: skip
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", f"{live_url}/v1/generate", json=body) as r:
            assert r.status_code == 200
            first = next(r.iter_lines())
            assert first.startswith("data: ")
        # The connection is closed: the rows leave the batch within a step or two.
        deadline = time.monotonic() + 20
        while True:
            metrics = http.get(f"{live_url}/metrics").text
            if _metric(metrics, "kexue_generation_active_rows", "long-writer") == 0:
                break
            assert time.monotonic() < deadline, "rows still decoding after the client left"
            time.sleep(0.1)
        written = _metric(metrics, "kexue_generated_tokens_total", "long-writer")
        time.sleep(0.5)
        metrics = http.get(f"{live_url}/metrics").text
        assert _metric(metrics, "kexue_generated_tokens_total", "long-writer") == written
        # The samples never end by themselves: uncancelled they would write 4 x 190 tokens.
        assert 0 < written < 4 * 190 / 2


def test_a_live_server_refuses_numbers_the_model_cannot_take(live_url: str) -> None:
    """A real server process: vector numbers beyond float32, or that overflow the model, are 400
    (streamed too) and leave the next requests unharmed; temperatures under MIN_TEMPERATURE are
    greedy."""
    with httpx.Client(base_url=live_url, timeout=60) as http:
        vector = {"model": "vector-writer", "max_new_tokens": 8, "seed": 1}

        def texts(body: dict) -> list[str]:
            r = http.post("/v1/generate", json=body)
            assert r.status_code == 200, r.text
            return [s["text"] for s in r.json()["samples"]]

        good = {**vector, "condition": {"vector": [1.0, 0, 0, 0]}, "num_samples": 2}
        before = texts(good)
        for numbers, words in (([1e308, 0, 0, 0], "condition.vector[0]"),
                               ([1e20, 0, 0, 0], "not finite")):  # fmt: skip
            for stream in (False, True):
                body = {**vector, "condition": {"vector": numbers}, "stream": stream,
                        "num_samples": 3, "temperature": 1.0}  # fmt: skip
                r = http.post("/v1/generate", json=body)
                assert r.status_code == 400, (numbers, stream, r.text)
                assert words in r.json()["detail"] and r.json()["code"] == "bad_input"
        assert texts(good) == before

        label = {"model": "writer", "condition": {"label": "pos"}, "num_samples": 2,
                 "max_new_tokens": 12, "seed": 4}  # fmt: skip
        greedy = texts({**label, "temperature": 0})
        for temperature in (1e-320, 1e-300, MIN_TEMPERATURE / 2):
            assert texts({**label, "temperature": temperature}) == greedy, temperature
        sampled = texts({**label, "temperature": 1.0, "top_p": 1.0})
        assert sampled != greedy and sampled[0] != sampled[1]


def test_more_samples_than_the_queue_ever_holds_is_413_not_429(store: Path) -> None:
    settings = Settings(model_store=store, poll_interval_s=0, max_num_samples=4, max_queue=2,
                        max_batch_size=8, warmup=False)  # fmt: skip
    with TestClient(create_app(settings)) as c:
        wait_ready(c, timeout_s=120)
        body = {"condition": {"label": "pos"}, "max_new_tokens": 2, "seed": 0}
        r = post(c, num_samples=3, **body)
        assert r.status_code == 413, r.text
        assert "MAX_QUEUE=2" in r.json()["detail"] and "retry-after" not in r.headers
        assert post(c, num_samples=2, **body).status_code == 200


def test_a_generation_model_decodes_in_its_own_loop_and_has_no_batcher(
    client: TestClient,
) -> None:
    assert post(client, condition={"label": "pos"}, max_new_tokens=2, seed=0).status_code == 200
    registry = client.app.state.registry  # type: ignore[attr-defined]
    for name in ("writer", "vector-writer"):
        model = registry.get(name)
        assert model.batcher is None, name
        assert not hasattr(model.runtime, "run_batch"), name
