"""`force_answer` on POST /v1/qa, against a real server process: a reader that always says "no
answer" answers null unless the request says the passages hold an answer. Forced, it also
answers with `span_search` (whole spans scored, ranked with `length_penalty`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.live_server import live_server
from tests.models.test_qa_cache import tiny_model
from tests.tiny_store import QA_VOCAB_SIZE, SEP_ID, export_tiny_qa

MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 12, 6, 4
QUESTION = "张伟住在哪里？"
PASSAGES = ["张伟住在北京。", "李娜住在上海。"]


def export_silent_reader(root: Path, name: str) -> None:
    """The tiny random reader with [SEP]'s output bias so high that "no answer" always wins."""
    model = tiny_model(seed=7)
    bias = model.mlm_head.output_bias
    bias.assign(np.where(np.arange(QA_VOCAB_SIZE) == SEP_ID, 30.0, bias.numpy()))
    export_tiny_qa(root, name, MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER, model=model)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("store")
    export_silent_reader(store, "silent")
    with live_server(store, MAX_PASSAGES="3", MAX_BEAM_SIZE="4") as url:
        yield url


def _ask(url: str, **fields: object) -> httpx.Response:
    body = {"question": QUESTION, "passages": PASSAGES, **fields}
    return httpx.post(f"{url}/v1/qa", json=body, timeout=60)


def test_a_reader_sure_of_no_answer_answers_null_unless_forced(server: str) -> None:
    free = _ask(server)
    assert free.status_code == 200, free.text
    assert free.json()["answer"] is None and free.json()["passage_index"] is None
    assert _ask(server, force_answer=False).json() == free.json()

    forced = _ask(server, force_answer=True)
    assert forced.status_code == 200, forced.text
    body = forced.json()
    assert body["answer"] and body["passage_index"] in (0, 1)
    assert body["candidates"] and all(c["text"] for c in body["candidates"])


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_forced_extractive_answer_is_a_span_of_its_passage(server: str, beam_size: int) -> None:
    response = _ask(server, force_answer=True, extractive=True, beam_size=beam_size)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] and body["answer"] in PASSAGES[body["passage_index"]]


def test_force_answer_must_be_a_boolean(server: str) -> None:
    assert _ask(server, force_answer=[True]).status_code == 422


@pytest.mark.parametrize("length_penalty", [None, 0.0, 1.5])
def test_span_search_answers_a_span_of_its_passage(server: str, length_penalty) -> None:
    fields = {"extractive": True, "span_search": True, "beam_size": 3}
    if length_penalty is not None:
        fields["length_penalty"] = length_penalty
    response = _ask(server, force_answer=True, **fields)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] and body["answer"] in PASSAGES[body["passage_index"]]
    assert 1 <= len(body["candidates"]) <= 3
    assert all(c["text"] in PASSAGES[c["passage_index"]] for c in body["candidates"])
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"span_search": True}, "extractive"),
        ({"span_search": True, "extractive": True, "return_evidence": True}, "gives no evidence"),
        ({"length_penalty": 1.0, "extractive": True}, "span_search"),
        ({"length_penalty": 0.0, "extractive": True}, "span_search"),
    ],
)
def test_span_search_options_that_do_not_fit_are_400(server: str, fields, message) -> None:
    response = _ask(server, force_answer=True, **fields)
    assert response.status_code == 400, response.text
    assert message in response.text


@pytest.mark.parametrize("value", [-0.5, "1.5", 100.0])
def test_length_penalty_must_be_a_number_in_range(server: str, value) -> None:
    response = _ask(
        server, force_answer=True, extractive=True, span_search=True, length_penalty=value
    )
    assert response.status_code == 422, response.text
