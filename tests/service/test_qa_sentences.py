"""Reading by sentence in the service (`read_by`): the runtime makes a row of each sentence and
names the request's passage in the answer; a version's manifest sets the default, a request may
differ; MAX_SENTENCES bounds the rows (413), against the runtime and a real server process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.errors import PayloadTooLarge
from service.runtimes.qa import QARuntime
from tests.live_server import live_server
from tests.models.test_qa_sentences import first_city_reader
from tests.service.test_qa_force_answer import export_silent_reader
from tests.tiny_store import export_tiny_qa, load_in_runtime

MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 16, 6, 4
QUESTION = "张伟住在哪里？"
# 李娜's city comes first in the passage that names 张伟
PASSAGES = ["李娜住在哪里？", "李娜住在上海。张伟住在北京。"]


def _runtime(store: Path, name: str, extra: dict | None = None) -> QARuntime:
    export_tiny_qa(store, name, MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER, extra=extra)
    loaded = load_in_runtime(store / name / "1")
    assert isinstance(loaded, QARuntime)
    loaded._model = first_city_reader(loaded.tokenizer)
    return loaded


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


def _answer(runtime: QARuntime, passages: list[str], **options: object):
    defaults: dict = dict(max_answer_tokens=None, beam_size=None, extractive=True)
    item = runtime.prepare(QUESTION, passages, **{**defaults, **options})
    (result,) = runtime.run_batch([item])
    return item, result


def test_a_version_reads_whole_passages_unless_asked_to_read_sentences(store: Path) -> None:
    runtime = _runtime(store, "whole")
    assert runtime.default_read_by == "passage"
    item, result = _answer(runtime, PASSAGES)
    assert len(item.passage_rows) == 2 and item.owners is None
    assert result.answer == "上海"
    item, result = _answer(runtime, PASSAGES, read_by="sentence")
    assert [row.text[row.offsets[0][0] : row.offsets[-1][1]] for row in item.passage_rows] == [
        "李娜住在哪里？",
        "李娜住在上海。",
        "张伟住在北京。",
    ]
    assert item.owners == (0, 1, 1)
    assert (result.answer, result.passage_index) == ("北京", 1), result
    assert all(index == 1 for _, _, index in result.candidates)


def test_a_version_trained_to_read_sentences_does_so_by_default(store: Path) -> None:
    runtime = _runtime(store, "sentences", extra={"decoding": {"read_by": "sentence"}})
    assert runtime.default_read_by == "sentence"
    _, result = _answer(runtime, PASSAGES)
    assert (result.answer, result.passage_index) == ("北京", 1)
    _, result = _answer(runtime, PASSAGES, read_by="passage")
    assert result.answer == "上海"


def test_a_long_sentence_is_read_as_windows_of_it(store: Path) -> None:
    runtime = _runtime(store, "long")
    long_sentence = "李娜住在上海张伟住在北京李娜住在上海。"  # 19 tokens: 2 windows of 16
    item, _ = _answer(runtime, ["张伟住在北京。" + long_sentence], read_by="sentence")
    assert len(item.passage_rows) == 1 + 2
    assert [tuple(row.cuts) for row in item.passage_rows] == [
        (False, False), (False, True), (True, False),
    ]  # fmt: skip


def test_max_sentences_bounds_the_rows_read_by_sentence(store: Path) -> None:
    runtime = _runtime(store, "bounded")
    runtime.settings = runtime.settings.model_copy(update={"max_sentences": 2})
    with pytest.raises(PayloadTooLarge, match="3 rows .*MAX_SENTENCES"):
        _answer(runtime, PASSAGES, read_by="sentence")
    _answer(runtime, PASSAGES)  # read whole: 2 rows, MAX_SENTENCES does not apply


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("live")
    export_silent_reader(store, "silent")
    with live_server(store, MAX_SENTENCES="2") as url:
        yield url


def _ask(url: str, **fields: object) -> httpx.Response:
    body = {"question": QUESTION, "passages": PASSAGES, **fields}
    return httpx.post(f"{url}/v1/qa", json=body, timeout=60)


def test_read_by_over_http(server: str) -> None:
    assert _ask(server, read_by="passage").status_code == 200
    assert _ask(server, read_by="sentence", passages=PASSAGES[1:]).status_code == 200
    too_many = _ask(server, read_by="sentence")
    assert too_many.status_code == 413
    error = too_many.json()["error"]
    assert error["param"] == "passages" and "MAX_SENTENCES" in error["message"]
    wrong = _ask(server, read_by="sentences")
    assert wrong.status_code == 422
    assert "read_by" in wrong.text


def test_a_request_over_both_limits_is_refused_before_its_rows_are_built(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of tiny sentences (`张。` over and over) cost tokenising, not a prefix each, and
    are refused for MAX_PASSAGES, the bound reading whole shares: advising read_by 'passage'
    would be false."""
    runtime = _runtime(store, "costly")
    built = []
    monkeypatch.setattr("service.runtimes.qa.join_prefix", lambda *args: built.append(args) or [0])
    passages = ["张。" * 2000] * runtime.settings.max_passages
    with pytest.raises(PayloadTooLarge, match="MAX_PASSAGES") as refused:
        _answer(runtime, passages, read_by="sentence")
    assert "read_by" not in str(refused.value)
    assert built == []
    runtime.settings = runtime.settings.model_copy(update={"max_sentences": 2})
    with pytest.raises(PayloadTooLarge, match="MAX_SENTENCES"):
        _answer(runtime, PASSAGES, read_by="sentence")
    assert built == []


@pytest.mark.parametrize("limit", ["max_sentences", "max_passages"])
def test_a_version_reading_by_sentence_warms_up_under_the_lowest_limits(
    store: Path, limit: str
) -> None:
    # MAX_SENTENCES=1 (or MAX_PASSAGES=1) is a valid setting: the warm-up must not be refused
    # 413, which would leave the version unloaded
    runtime = _runtime(store, f"warm-{limit}", extra={"decoding": {"read_by": "sentence"}})
    runtime.settings = runtime.settings.model_copy(update={limit: 1})
    runtime.warmup()
