"""The service's QA answers are the passages' own characters (`models.qa.decoding.span_text`):
an answer that is a span of its passage comes back as the user wrote it, whatever the
vocabulary did to it (lower-cased, `[UNK]`, a word past the placeholders), in a passage read whole
or cut into windows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.qa.placeholders import placeholder_tokens
from models.store import MANIFEST_FILENAME
from service.runtimes.qa import QARuntime
from tests.models.test_qa_cache import tiny_model
from tests.tiny_store import (
    QA_WORDS,
    SEP_ID,
    SPECIALS,
    export_tiny_qa,
    extractive_answer,
    load_in_runtime,
)

K = 4
WORDS = [*QA_WORDS, *placeholder_tokens(K), "tokyo"]
UNK_ID = SPECIALS.index("[UNK]")
TOKYO_ID = len(SPECIALS) + WORDS.index("tokyo")
MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 12, 6, 4


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(without placeholders, the same SavedModel with K of them): a tiny extractive reader that
    starts an answer at `[UNK]` where a passage has one, goes on to `tokyo` after it, and
    otherwise ends ([SEP])."""
    model = tiny_model(seed=7)
    bias = model.mlm_head.output_bias.numpy()
    bias[SEP_ID], bias[TOKYO_ID], bias[UNK_ID] = 15.0, 30.0, 45.0
    model.mlm_head.output_bias.assign(bias)
    store = tmp_path_factory.mktemp("store")
    export_tiny_qa(
        store, "plain", MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER, model=model, words=WORDS,
        extra={"decoding": {"extractive": True}},
    )  # fmt: skip
    placeheld = store / "placeheld" / "1"
    shutil.copytree(store / "plain" / "1", placeheld)  # one export, two manifests
    manifest = json.loads((placeheld / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    manifest.update(name="placeheld", placeholders={"count": K})
    (placeheld / MANIFEST_FILENAME).write_text(json.dumps(manifest), encoding="utf-8")
    return store / "plain" / "1", placeheld


def test_an_answer_keeps_the_case_and_the_words_the_vocabulary_lacks(
    versions: tuple[Path, Path],
) -> None:
    runtime = load_in_runtime(versions[0])
    assert isinstance(runtime, QARuntime)
    # tokens [UNK] tokyo: written back from the tokens they were "tokyo" (lower-cased, the
    # [UNK] dropped)
    passages = ["李娜住在上海。", "张伟住在Σ  TOKYO。"]
    assert extractive_answer(runtime, "张伟住在哪里？", passages) == ("Σ  TOKYO", 1)
    # a passage cut into windows: the window's offsets count in the whole passage
    long = "上海上海上海上海上海上海张伟住在Σ TOKYO。"
    assert len(runtime.tokenizer.piece_ids(long)) > MAX_PASSAGE
    assert extractive_answer(runtime, "张伟住在哪里？", ["李娜住在上海。", long]) == ("Σ TOKYO", 1)


def test_a_word_past_the_placeholders_is_answered_as_written(
    versions: tuple[Path, Path],
) -> None:
    runtime = load_in_runtime(versions[1])
    assert isinstance(runtime, QARuntime) and runtime.placeholders is not None
    # K unknown characters take the K placeholders; the next unknown word is [UNK]
    passages = ["甲乙丙丁住在Ωmega  Tokyo。"]
    assert extractive_answer(runtime, "甲乙丙丁住在哪里？", passages) == ("Ωmega  Tokyo", 0)
