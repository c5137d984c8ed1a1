"""`return_evidence` on POST /v1/qa against a real server process: each candidate's evidence
spans are characters of its passages, answers are those without it, and a version exported
before the attention output answers as before but refuses evidence (400) until exported again
(`training.qa_reexport`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tensorflow as tf

from models.bert.kv_cache import prefill, step
from models.qa import signatures as names
from models.qa.export import QASeq2SeqModule
from models.qa.seq2seq import UniLMSeq2Seq
from tests.live_server import live_server
from tests.models.test_qa_cache import tiny_model
from tests.tiny_store import QA_VOCAB_SIZE, QA_WORDS, WORDPIECE, tiny_version, write_vocab
from training.common import export_version
from training.qa_reexport import reexport_qa

# Those of the suite's tiny reader (tests/tiny_store.py's "qa" kind, `export_tiny_qa`).
MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 12, 6, 4
QUESTION = "张伟住在哪里？"
PASSAGES = ["张伟住在北京。", "李娜住在上海。", "北京。"]


class LegacyQAModule(QASeq2SeqModule):
    """The QA SavedModel as exported before answers carried evidence: `prefill` and `step`
    return the log-probabilities and the cache only."""

    def _prefill(self, token_ids: Any, segment_ids: Any, lengths: Any) -> dict[str, Any]:
        cache_length = tf.shape(token_ids)[1] + self.max_answer_tokens
        log_probs, cache = prefill(
            self.model, token_ids, lengths, cache_length, segment_ids=segment_ids
        )
        return {names.LOG_PROBS_KEY: log_probs, names.CACHE_KEY: cache}

    def _step(self, token_ids: Any, cache: Any, positions: Any) -> dict[str, Any]:
        log_probs, cache = step(self.model, token_ids, positions, cache)
        return {names.LOG_PROBS_KEY: log_probs, names.CACHE_KEY: cache}


def export_legacy_qa_saved_model(path: Path, model: UniLMSeq2Seq, vocab: Path) -> list[str]:
    module = LegacyQAModule(model, vocab, MAX_ANSWER)
    signatures = {
        names.SIGNATURE_PREFILL: module.prefill.get_concrete_function(),
        names.SIGNATURE_STEP: module.step.get_concrete_function(),
        names.SIGNATURE_REORDER: module.reorder.get_concrete_function(),
        names.SIGNATURE_FULL_LOGITS: module.full_logits.get_concrete_function(),
        names.SIGNATURE_DEFAULT: module.full_logits.get_concrete_function(),
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
    return list(signatures)


def export_legacy_reader(root: Path, name: str, model: UniLMSeq2Seq) -> Path:
    with tempfile.TemporaryDirectory() as scratch:
        vocab = write_vocab(Path(scratch) / "vocab.txt", QA_WORDS, QA_VOCAB_SIZE)
        return export_version(
            root, name, task="qa", family="bert-unilm",
            write_model=lambda path: export_legacy_qa_saved_model(path, model, vocab),
            config={"bert": model.config.__dict__}, data={}, metrics={},
            extra={
                "max_passage_tokens": MAX_PASSAGE, "max_question_tokens": MAX_QUESTION,
                "max_answer_tokens": MAX_ANSWER, "tokenizer": WORDPIECE,
            },
        )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of three readers: "reader", the suite's tiny one (built once per run); "legacy",
    the same weights (`tiny_model(seed=7)`, as `export_tiny_qa` makes them) exported the old way;
    "reexported", that one exported again by `training.qa_reexport`."""
    store = tmp_path_factory.mktemp("store")
    tiny_version(tmp_path_factory, "qa", store, "reader")
    legacy = export_legacy_reader(store, "legacy", tiny_model(seed=7))
    again = reexport_qa(legacy, "reexported")
    assert again == store / "reexported" / "1"
    with live_server(store, MAX_PASSAGES="3", MAX_BEAM_SIZE="4") as url:
        yield url


def _ask(url: str, model: str, **fields: object) -> httpx.Response:
    body = {"model": model, "question": QUESTION, "passages": PASSAGES, **fields}
    return httpx.post(f"{url}/v1/qa", json=body, timeout=60)


def _without_evidence(body: dict[str, Any]) -> dict[str, Any]:
    return {
        **body,
        "candidates": [{**c, "evidence": None} for c in body["candidates"]],
    }


@pytest.mark.parametrize("options", [{}, {"beam_size": 3}, {"extractive": True, "beam_size": 2}])
def test_evidence_spans_are_characters_of_their_passages(
    server: str, options: dict[str, object]
) -> None:
    plain = _ask(server, "reader", force_answer=True, **options)
    assert plain.status_code == 200, plain.text
    assert all(c["evidence"] is None for c in plain.json()["candidates"])
    assert _ask(server, "reader", force_answer=True, return_evidence=False, **options).json() == (
        plain.json()
    )
    response = _ask(server, "reader", force_answer=True, return_evidence=True, **options)
    assert response.status_code == 200, response.text
    body = response.json()
    # The same answers, scores and passages as without evidence.
    assert _without_evidence(body) == plain.json()
    assert body["candidates"]
    for candidate in body["candidates"]:
        spans = candidate["evidence"]
        assert isinstance(spans, list) and 1 <= len(spans) <= 3
        assert [s["weight"] for s in spans] == sorted((s["weight"] for s in spans), reverse=True)
        for span in spans:
            assert set(span) == {"passage_index", "start", "end", "text", "weight"}
            passage = PASSAGES[span["passage_index"]]
            assert 0 <= span["start"] < span["end"] <= len(passage)
            assert span["text"] == passage[span["start"] : span["end"]]
            assert 0 < span["weight"] <= 1


def test_a_version_exported_before_evidence_answers_as_before_and_refuses_it(server: str) -> None:
    for options in ({}, {"beam_size": 3, "force_answer": True}):
        old = _ask(server, "legacy", **options)
        assert old.status_code == 200, old.text
        new = _ask(server, "reader", **options).json()
        assert {**old.json(), "model": "reader"} == new
    refused = _ask(server, "legacy", return_evidence=True)
    assert refused.status_code == 400
    assert refused.json()["code"] == "evidence_unsupported"
    assert "training.qa_reexport" in refused.json()["detail"]


def test_the_version_exported_again_gives_the_same_evidence(server: str) -> None:
    options = {"force_answer": True, "return_evidence": True, "beam_size": 2}
    again = _ask(server, "reexported", **options)
    assert again.status_code == 200, again.text
    assert {**again.json(), "model": "reader"} == _ask(server, "reader", **options).json()


def test_return_evidence_must_be_a_boolean(server: str) -> None:
    assert _ask(server, "reader", return_evidence=[True]).status_code == 422
