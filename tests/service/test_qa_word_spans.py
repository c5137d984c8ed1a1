"""The served answer is whole words: the QA runtime's windows are cut between tokens, and a
window that ends 1 ##9 ##8 | ##9 must not end the year there (`decode_batch(continues_word=)`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.runtimes.qa import QARuntime
from tests.models.test_qa_decoding import CachedFake
from tests.tiny_store import QA_WORDS, export_tiny_qa, load_in_runtime

PASSAGE = "李娜住上海。张伟生1989年。"  # 15 tokens: windows of 12, [0:12] ends at ##8, [3:15]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> QARuntime:
    store = tmp_path_factory.mktemp("store")
    export_tiny_qa(
        store, "reader", 12, 6, 6, words=[*QA_WORDS, "生", "年", "1", "##9", "##8", ".", "75"]
    )
    loaded = load_in_runtime(Path(store) / "reader" / "1")
    assert isinstance(loaded, QARuntime)
    tokenizer = loaded.tokenizer
    year = tokenizer.piece_ids("1989")

    def peaked(token: int, p: float) -> np.ndarray:
        probs = np.full(tokenizer.vocab_size, (1.0 - p) / (tokenizer.vocab_size - 1))
        probs[token] = p
        return probs

    def sure_of_198(prefix: list[int], answer: list[int]) -> np.ndarray:
        # writes 1 ##9 ##8, then likes [SEP] better than the last ##9
        if len(answer) < 3:
            return peaked(year[len(answer)], 0.9)
        probs = peaked(tokenizer.sep_id, 0.6)
        probs[year[3]] = 0.3
        return probs / probs.sum()

    loaded._model = CachedFake(sure_of_198)  # the runtime's windows, a scripted reader
    return loaded


@pytest.mark.parametrize("options", [{}, {"beam_size": 3}, {"span_search": True}])
def test_the_served_year_is_whole_across_a_windows_cut(runtime: QARuntime, options) -> None:
    defaults: dict = dict(max_answer_tokens=None, beam_size=None, extractive=True)
    item = runtime.prepare("张伟哪年生？", [PASSAGE], **{**defaults, **options})
    tokenizer = runtime.tokenizer
    first = [tokenizer.id_to_token(i) for i in item.passage_rows[0].ids]
    assert first[-3:] == ["1", "##9", "##8"]  # the first window is cut inside the year
    assert [tuple(r.cuts) for r in item.passage_rows] == [(False, True), (True, False)]
    (result,) = runtime.run_batch([item])
    assert result.answer == "1989"


def test_an_answer_stopped_by_the_limit_says_so(runtime: QARuntime) -> None:
    # 1989 is four pieces: three are not enough, and the answer says it was cut
    defaults: dict = dict(beam_size=None, extractive=True)
    short = runtime.prepare("张伟哪年生？", [PASSAGE], max_answer_tokens=3, **defaults)
    whole = runtime.prepare("张伟哪年生？", [PASSAGE], max_answer_tokens=None, **defaults)
    (cut,) = runtime.run_batch([short])
    (ended,) = runtime.run_batch([whole])
    assert (cut.answer, cut.finish_reason) == ("198", "length")
    assert (ended.answer, ended.finish_reason) == ("1989", "stop")


def test_the_served_decimal_number_is_whole(runtime: QARuntime) -> None:
    tokenizer = runtime.tokenizer
    one = tokenizer.token_to_id("1")

    def sure_of_one(prefix: list[int], answer: list[int]) -> np.ndarray:
        probs = np.full(tokenizer.vocab_size, 0.01)
        probs[tokenizer.sep_id if answer else one] = 1.0  # writes 1, then ends
        return probs / probs.sum()

    reader = runtime._model
    runtime._model = CachedFake(sure_of_one)
    results = []
    try:
        # one window; a first window that ends 在 1 . (the number goes on past its cut); three
        for passage in [
            "张伟住1.75。",
            "李娜住上海。张伟住在1.75。",
            "李娜住上海。张伟住在1.75。李娜住上海。",
        ]:
            item = runtime.prepare(
                "张伟住在哪里？", [passage], max_answer_tokens=None, beam_size=None, extractive=True
            )
            results.extend(runtime.run_batch([item]))
    finally:
        runtime._model = reader
    assert [(r.answer, r.finish_reason) for r in results] == [("1.75", "stop")] * 3
