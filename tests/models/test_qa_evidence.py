"""Answers' evidence (`return_evidence`): decoding keeps the attention of the answer tokens over
the passages without changing answers or scores, and the spans it makes are valid characters of
their passages that point where the model looked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.bert.tokenizer import BertTokenizer
from models.qa.decoding import PASSAGE_OFFSET, answer_questions, decode_batch
from models.qa.evidence import EvidenceSpan, evidence_spans
from models.qa.kv_cache import KerasStepModel
from tests.models.test_qa_cache import SEP, random_prefixes, tiny_model

MAX_ANSWER = 6


@pytest.fixture(scope="module")
def step_model() -> KerasStepModel:
    return KerasStepModel(tiny_model(seed=7), MAX_ANSWER)


def _questions() -> list[list[list[int]]]:
    a, b, c = random_prefixes(0)
    d, e, f = random_prefixes(1)
    return [[a, b], [c], [d, e, f]]


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("extractive", [False, True])
def test_evidence_leaves_answers_and_scores_as_they_are(
    step_model: KerasStepModel, beam_size: int, extractive: bool
) -> None:
    options: dict[str, Any] = dict(
        sep_id=SEP, max_answer_tokens=MAX_ANSWER, beam_size=beam_size, extractive=extractive,
        banned_ids=(0, 2, 4),
    )  # fmt: skip
    plain = decode_batch(step_model, _questions(), **options)
    with_evidence = decode_batch(step_model, _questions(), evidence=True, **options)
    assert any(answer.token_ids for answer in plain)
    for answer, other, passages in zip(plain, with_evidence, _questions(), strict=True):
        assert answer.evidence is None
        assert other.token_ids == answer.token_ids
        assert other.passage_index == answer.passage_index
        assert other.candidates == answer.candidates
        assert other.score == answer.score
        assert other.evidence is not None and len(other.evidence) == len(other.candidates)
        for (tokens, _, _), weights in zip(other.candidates, other.evidence, strict=True):
            if not tokens:
                continue
            assert weights, "an answer attended to some passage"
            for index, w in weights.items():
                passage_length = passages[index].index(SEP) - PASSAGE_OFFSET
                assert w.shape == (passage_length,)
                assert np.all(w >= 0) and w.sum() <= 1 + 1e-6


def test_a_model_without_attention_cannot_give_evidence() -> None:
    class Plain:
        def prefill(self, token_ids: Any, lengths: Any) -> Any:
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="attention"):
        decode_batch(Plain(), [[[2, 5, SEP]]], sep_id=SEP, evidence=True)  # type: ignore[arg-type]


def test_spans_merge_neighbours_and_are_characters_of_their_passage() -> None:
    passages = ["张伟住在北京。", "ab cd"]
    offsets = [[(i, i + 1) for i in range(7)], [(0, 2), (3, 5)]]
    weights = {
        0: np.array([0.0, 0.02, 0.0, 0.0, 0.4, 0.3, 0.01]),
        1: np.array([0.2, 0.05]),
    }
    spans = evidence_spans(weights, offsets, passages)
    assert spans == [
        EvidenceSpan(0, 4, 6, "北京", pytest.approx(0.7)),  # type: ignore[arg-type]
        EvidenceSpan(1, 0, 2, "ab", 0.2),
    ]
    for span in spans:
        assert passages[span.passage_index][span.start : span.end] == span.text
    assert evidence_spans(weights, offsets, passages, max_spans=1) == spans[:1]
    assert evidence_spans({0: np.zeros(7)}, offsets, passages) == []
    assert evidence_spans({}, offsets, passages) == []


class CopyReader:
    """A fake reader that copies the passage's first "北京" token by token and whose last layer
    attends to the passage character it is about to write (the first layer looks at [CLS])."""

    has_attention = True

    def __init__(self, tokenizer: BertTokenizer) -> None:
        self.tokenizer = tokenizer
        self.answer = [tokenizer.token_to_id("北"), tokenizer.token_to_id("京")]

    def _row(self, prefix: list[int], written: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
        probs = np.full(self.tokenizer.vocab_size, 0.01)
        passage = prefix[1 : prefix.index(self.tokenizer.sep_id)]
        attention = np.zeros((2, slots))
        attention[0, 0] = 1.0
        if self.answer[0] in passage and written < len(self.answer):
            token = self.answer[written]
            probs[token] = 1.0
            where = passage.index(self.answer[0]) + written + PASSAGE_OFFSET
            attention[1, where] = 0.9
            attention[1, 0] = 0.1
        else:
            probs[self.tokenizer.sep_id] = 1.0
            attention[1, 0] = 1.0
        return np.log(probs / probs.sum()), attention

    def _rows(self, state: list[tuple[list[int], int]], slots: int) -> tuple[Any, Any]:
        rows = [self._row(prefix, written, slots) for prefix, written in state]
        log_probs = np.stack([r[0] for r in rows])
        attention = np.stack([r[1] for r in rows], axis=1)  # [layers, B, slots]
        return log_probs, attention

    def prefill_with_attention(self, token_ids: Any, lengths: Any) -> tuple[Any, Any, Any]:
        state = [([int(t) for t in row[:n]], 0) for row, n in zip(token_ids, lengths, strict=True)]
        log_probs, attention = self._rows(state, token_ids.shape[1])
        return log_probs, attention, state

    def step_with_attention(self, token_ids: Any, positions: Any, state: Any) -> tuple[Any, ...]:
        state = [(prefix, written + 1) for prefix, written in state]
        log_probs, attention = self._rows(state, int(max(positions)) + MAX_ANSWER)
        return log_probs, attention, state

    def prefill(self, token_ids: Any, lengths: Any) -> tuple[Any, Any]:
        log_probs, _, state = self.prefill_with_attention(token_ids, lengths)
        return log_probs, state

    def step(self, token_ids: Any, positions: Any, state: Any) -> tuple[Any, Any]:
        log_probs, _, state = self.step_with_attention(token_ids, positions, state)
        return log_probs, state

    def select_rows(self, state: Any, rows: Any) -> Any:
        return [state[int(i)] for i in rows]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BertTokenizer:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"北京上海张伟住在哪里？。", "ab"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return BertTokenizer(path)


def test_the_top_span_is_where_the_last_layer_looked_while_writing(
    tokenizer: BertTokenizer,
) -> None:
    passages = ["张伟住在上海。", "ab 张伟住在北京。"]
    [result] = answer_questions(
        CopyReader(tokenizer), tokenizer, [("张伟住在哪里？", passages)], evidence=True,
        evidence_layers=-1,
    )  # fmt: skip
    assert result.answer == "北京" and result.passage_index == 1
    assert result.evidence is not None
    [spans] = result.evidence
    top = spans[0]
    assert (top.passage_index, top.text) == (1, "北京")
    assert passages[1][top.start : top.end] == "北京" and top.start == 7
    assert top.weight == pytest.approx(0.9)
    # The default, the mean of the layers: the same span, half the weight.
    [mean] = answer_questions(
        CopyReader(tokenizer), tokenizer, [("张伟住在哪里？", passages)], evidence=True
    )
    assert mean.evidence is not None and mean.evidence[0][0].text == "北京"
    assert mean.evidence[0][0].weight == pytest.approx(0.45)
    # The first layer looked at [CLS] only, which is no passage character: no evidence.
    [first] = answer_questions(
        CopyReader(tokenizer), tokenizer, [("张伟住在哪里？", passages)], evidence=True,
        evidence_layers=0,
    )  # fmt: skip
    assert first.answer == "北京" and first.evidence == [[]]
    [plain] = answer_questions(CopyReader(tokenizer), tokenizer, [("张伟住在哪里？", passages)])
    assert plain.evidence is None and plain.candidates == result.candidates
