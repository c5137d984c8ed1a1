"""The service's QA runtime with placeholders for unknown words (`models.qa.placeholders`): a
version whose manifest says `placeholders` reads each unknown word of a request as one, the same in
the question, every passage and every window, and answers with the user's text; the same
SavedModel without the key reads `[UNK]` as before."""

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
WORDS = [*QA_WORDS, *placeholder_tokens(K)]
FIRST_PLACEHOLDER_ID = len(SPECIALS) + WORDS.index("[unused1]")
MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER = 12, 6, 4


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(with placeholders, the same SavedModel without): a tiny reader biased to write
    `[unused1]` where it may, else [SEP] (extractive: only where a passage holds it)."""
    model = tiny_model(seed=7)
    bias = model.mlm_head.output_bias.numpy()
    bias[SEP_ID], bias[FIRST_PLACEHOLDER_ID] = 15.0, 30.0
    model.mlm_head.output_bias.assign(bias)
    store = tmp_path_factory.mktemp("store")
    export_tiny_qa(
        store, "with", MAX_PASSAGE, MAX_QUESTION, MAX_ANSWER, model=model, words=WORDS,
        extra={"placeholders": {"count": K}, "decoding": {"extractive": True}},
    )  # fmt: skip
    without = store / "without" / "1"
    shutil.copytree(store / "with" / "1", without)  # one export, two manifests
    manifest = json.loads((without / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    del manifest["placeholders"]
    manifest["name"] = "without"
    (without / MANIFEST_FILENAME).write_text(json.dumps(manifest), encoding="utf-8")
    return store / "with" / "1", without


def test_an_unknown_value_is_answered_as_the_user_wrote_it(versions: tuple[Path, Path]) -> None:
    runtime = load_in_runtime(versions[0])
    assert isinstance(runtime, QARuntime)
    passages = ["李娜住在上海。", "张伟住在London。"]
    assert extractive_answer(runtime, "张伟住在哪里？", passages) == ("London", 1)
    # the question's unknown word comes first ([unused1]) and is the passages' one too
    assert extractive_answer(runtime, "Tom住在哪里？", ["李娜住在上海。", "Tom住在北京。"]) == (
        "Tom",
        1,
    )
    # a passage cut into windows: one mapping for all of them
    long = "上海上海上海上海上海上海张伟住在乌鲁木齐。"
    assert len(long) > MAX_PASSAGE
    assert extractive_answer(runtime, "张伟住在哪里？", [long]) == ("乌", 0)


def test_a_version_without_placeholders_reads_unk_as_before(versions: tuple[Path, Path]) -> None:
    runtime = load_in_runtime(versions[1])
    assert isinstance(runtime, QARuntime) and runtime.placeholders is None
    passages = ["李娜住在上海。", "张伟住在London。"]
    assert extractive_answer(runtime, "张伟住在哪里？", passages) == (None, None)
