"""A long passage whose answer straddles a window's cut, read by the QA runtime as the service
reads it (`prepare` cuts the windows, `run_batch` decodes them): the window that ends at 北
cannot end 北京 there, and the answer is whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.runtimes.qa import QARuntime
from tests.models.test_qa_window_cuts import LONG, straddle_reader_of
from tests.tiny_store import export_tiny_qa, load_in_runtime

MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 12, 6, 4
QUESTION = "张伟住在哪里？"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> QARuntime:
    """The tiny reader's runtime with a step model that follows its passage
    (`straddle_reader_of`): a window whose passage stops at 北 is sure the answer ends there."""
    store = tmp_path_factory.mktemp("store")
    export_tiny_qa(store, "reader", MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER)
    loaded = load_in_runtime(Path(store) / "reader" / "1")
    assert isinstance(loaded, QARuntime)
    loaded._model = straddle_reader_of(loaded.tokenizer)
    return loaded


def _answer(runtime: QARuntime, passages: list[str], **options: object):
    defaults: dict = dict(max_answer_tokens=None, beam_size=None, extractive=True)
    item = runtime.prepare(QUESTION, passages, **{**defaults, **options})
    (result,) = runtime.run_batch([item])
    return item, result


@pytest.mark.parametrize(
    "options",
    [dict(), dict(beam_size=3), dict(force_answer=True), dict(span_search=True)],
)
def test_an_answer_across_a_windows_cut_is_answered_whole(runtime: QARuntime, options) -> None:
    # 14 tokens: windows of 12, 6 apart, start at 0 and 2; the first one ends at 北
    item, result = _answer(runtime, ["李娜住在上海。", LONG], **options)
    assert [row.text[row.offsets[-1][0] :] for row in item.passage_rows[1:]] == ["北京。", "。"]
    assert [tuple(row.cuts) for row in item.passage_rows] == [
        (False, False),
        (False, True),
        (True, False),
    ]
    assert (result.answer, result.passage_index) == ("北京", 1), result
    assert all(index == 1 for _, _, index in result.candidates)


def test_a_window_that_said_no_answer_finishes_an_answer_cut_at_a_window(
    runtime: QARuntime,
) -> None:
    # the window holding 北京 whole says "no answer" at first; the one cut after 北 starts it
    whole_reader = runtime._model
    runtime._model = straddle_reader_of(runtime.tokenizer, unsure_whole=True)
    try:
        _, result = _answer(runtime, ["李娜住在上海。", LONG])
    finally:
        runtime._model = whole_reader
    assert (result.answer, result.passage_index) == ("北京", 1), result


def test_a_passage_in_one_window_is_read_as_before(runtime: QARuntime) -> None:
    # the window that ends at 北 as a whole passage: 北 is all it holds
    item, result = _answer(runtime, [LONG[:12]])
    assert [tuple(row.cuts) for row in item.passage_rows] == [(False, False)]
    assert (result.answer, result.passage_index) == ("北", 0)
