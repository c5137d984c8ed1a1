"""Passages longer than the reader's window, against a real server process: they are read whole,
as overlapping windows that vote like passages, never cut at the window and answered null."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.live_server import live_server
from tests.models.test_qa_cache import tiny_model
from tests.tiny_store import QA_WORDS, SEP_ID, SPECIALS, export_tiny_qa

MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 12, 6, 4
JING_ID = len(SPECIALS) + QA_WORDS.index("京")
QUESTION = "张伟住在哪里？"
# 京 only past the first 12 tokens of the long passage (19 characters, 19 tokens).
LONG = "上海上海上海上海上海上海张伟住在北京。"


def export_jing_reader(root: Path, name: str) -> None:
    """The tiny random reader biased to write 京 where it may, else [SEP]: extractive, a window
    holding 京 answers it and one without says "no answer"."""
    model = tiny_model(seed=7)
    bias = model.mlm_head.output_bias.numpy()
    bias[SEP_ID], bias[JING_ID] = 15.0, 30.0
    model.mlm_head.output_bias.assign(bias)
    export_tiny_qa(root, name, MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER, model=model)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("store")
    export_jing_reader(store, "jing")
    with live_server(store, MAX_PASSAGES="4") as url:
        yield url


def _ask(url: str, passages: list[str], **fields: object) -> httpx.Response:
    body = {"question": QUESTION, "passages": passages, "extractive": True, **fields}
    return httpx.post(f"{url}/v1/qa", json=body, timeout=60)


def test_an_answer_past_the_window_is_found_in_its_passage(server: str) -> None:
    assert len(LONG) > MAX_PASSAGE and "京" not in LONG[:MAX_PASSAGE]
    # The first window alone (what the service read before) holds no answer.
    head = _ask(server, ["李娜住在上海。", LONG[:MAX_PASSAGE]])
    assert head.status_code == 200 and head.json()["answer"] is None, head.text

    response = _ask(server, ["李娜住在上海。", LONG])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["answer"], body["passage_index"]) == ("京", 1), body
    assert all(c["passage_index"] in (0, 1) for c in body["candidates"])


def test_evidence_of_a_windowed_passage_points_into_that_passage(server: str) -> None:
    passages = [LONG, "李娜住在上海。"]
    body = _ask(server, passages, return_evidence=True, beam_size=2).json()
    assert (body["answer"], body["passage_index"]) == ("京", 0), body
    spans = [span for c in body["candidates"] for span in c["evidence"]]
    assert spans
    for span in spans:
        assert span["passage_index"] in (0, 1)
        assert passages[span["passage_index"]][span["start"] : span["end"]] == span["text"]
    # The two windows of the long passage overlap: a span they share is listed once.
    for candidate in body["candidates"]:
        keys = [(s["passage_index"], s["start"], s["end"]) for s in candidate["evidence"]]
        assert len(keys) == len(set(keys))


def test_windows_past_max_passages_are_413_naming_them(server: str) -> None:
    # 60 tokens: windows of 12 starting every 6 tokens, 9 of them, against MAX_PASSAGES 4.
    response = _ask(server, [LONG * 3 + "上"])
    assert response.status_code == 413, response.text
    error = response.json()
    assert "windows" in error["detail"] and "MAX_PASSAGES" in error["detail"], error
    assert error["code"] == "payload_too_large" and error["error"]["param"] == "passages"
    assert np.isfinite(_ask(server, [LONG]).json()["score"])  # the server still answers
