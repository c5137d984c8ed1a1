"""POST /v1/qa through the real QA runtime on a tiny exported model, and its errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.bert.lm_reader import SavedModelLMStepModel as SavedModelStepModel
from models.bert.tokenizer import BertTokenizer
from models.qa.decoding import answer_questions
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import wait_ready
from tests.service.fakes import write_version
from tests.tiny_store import tiny_version

# Those of tests/tiny_store.py's qa model.
MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 12, 6, 4


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    tiny_version(tmp_path_factory, "qa", root, "reader")
    return root


@pytest.fixture
def client(store: Path) -> Iterator[TestClient]:
    settings = Settings(model_store=store, poll_interval_s=0, max_passages=3, max_beam_size=4)
    with TestClient(create_app(settings)) as c:
        wait_ready(c, timeout_s=60)
        yield c


def test_answer_is_what_the_decoder_gives(client: TestClient, store: Path) -> None:
    question, passages = "张伟住在哪里？", ["张伟住在北京。", "李娜住在上海。"]
    r = client.post("/v1/qa", json={"question": question, "passages": passages, "beam_size": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "reader" and body["version"] == 1
    version = store / "reader" / "1"
    tokenizer = BertTokenizer(version / "assets" / "vocab.txt")
    [expected] = answer_questions(
        SavedModelStepModel(version), tokenizer, [(question, passages)],
        max_passage_tokens=MAX_PASSAGE, max_question_tokens=MAX_QUESTION,
        max_answer_tokens=MAX_ANSWER, beam_size=2,
    )  # fmt: skip
    assert body["answer"] == expected.answer
    assert body["passage_index"] == expected.passage_index
    assert body["score"] == pytest.approx(expected.score, rel=1e-5)
    assert [c["text"] for c in body["candidates"]] == [c[0] for c in expected.candidates]
    assert body["finish_reason"] == expected.finish_reason
    # one token: an answer stops at the limit and says so
    r = client.post("/v1/qa", json={"question": question, "passages": passages,
                                    "max_answer_tokens": 1, "force_answer": True})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["answer"] and r.json()["finish_reason"] == "length"


def test_concurrent_questions_share_batches_and_match_alone(client: TestClient) -> None:
    import concurrent.futures

    questions = [
        ("张伟住在哪里？", ["张伟住在北京。", "李娜住在上海。"]),
        ("李娜住在哪里？", ["李娜住在上海。"]),
    ]
    alone = [
        client.post("/v1/qa", json={"question": q, "passages": p}).json() for q, p in questions
    ]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(
            pool.map(
                lambda i: client.post(
                    "/v1/qa",
                    json={"question": questions[i % 2][0], "passages": questions[i % 2][1]},
                ).json(),
                range(8),
            )
        )
    for i, r in enumerate(together):
        assert (r["answer"], r["passage_index"]) == (
            alone[i % 2]["answer"],
            alone[i % 2]["passage_index"],
        )


def test_qa_errors(client: TestClient) -> None:
    ok = {"question": "哪里？", "passages": ["北京。"]}
    assert client.post("/v1/qa", json={**ok, "passages": []}).status_code == 422
    assert client.post("/v1/qa", json={**ok, "question": ""}).status_code == 422
    # A question with nothing to read was answered from the passages alone, with a score.
    for blank in (" \t\n", "\u200b\ufeff", " \u0301"):
        r = client.post("/v1/qa", json={**ok, "question": blank})
        assert r.status_code == 422, (blank, r.json())
        assert r.json()["error"]["param"] == "question" and "nothing to answer" in r.text
    # A passage of only spaces is still read (it holds no answer), and a real question passes.
    r = client.post("/v1/qa", json={**ok, "passages": ["北京。", "   "]})
    assert r.status_code == 200
    # Alone it answers null, forced too: the tiny reader, not extractive, wrote an answer from the
    # question alone.
    for blank in (["   "], ["\u200b", "  "]):
        for force in (False, True):
            r = client.post("/v1/qa", json={**ok, "passages": blank, "force_answer": force})
            assert r.status_code == 200 and r.json()["answer"] is None, (blank, force, r.json())
            assert r.json()["candidates"] == [] and r.json()["finish_reason"] is None
    r = client.post("/v1/qa", json={**ok, "passages": ["a"] * 4})
    assert r.status_code == 413 and "MAX_PASSAGES" in r.json()["detail"]
    assert r.json()["error"]["param"] == "passages"
    r = client.post("/v1/qa", json={**ok, "beam_size": 5})
    assert r.status_code == 413 and "MAX_BEAM_SIZE" in r.json()["detail"]
    assert r.json()["error"]["param"] == "beam_size"
    r = client.post("/v1/qa", json={**ok, "max_answer_tokens": MAX_ANSWER + 1})
    assert r.status_code == 400 and r.json()["code"] == "bad_input"
    assert client.post("/v1/qa", json={**ok, "model": "nope"}).status_code == 404
    assert client.post("/v1/qa", json={**ok, "beam_size": 0}).status_code == 422


def test_embedding_model_is_not_a_qa_model(store: Path, tmp_path: Path) -> None:
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(store, mixed)
    write_version(mixed, "words", 1)  # an embedding model (fake family: never loads here)
    with TestClient(create_app(Settings(model_store=mixed, poll_interval_s=0))) as c:
        end = time.monotonic() + 60
        failed = lambda: {  # noqa: E731
            u["model"] for u in c.get("/readyz").json()["unavailable"] if "failed" in u["reason"]
        }
        while "words" not in failed():  # scanned; cannot load
            assert time.monotonic() < end
            time.sleep(0.05)
        assert c.get("/v1/models/words").json()["versions"][0]["state"] == "FAILED"
        r = c.post("/v1/qa", json={"question": "q", "passages": ["p"], "model": "words"})
        assert r.status_code == 404 and "not qa" in r.json()["detail"]
