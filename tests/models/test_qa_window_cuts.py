"""Windows of a long passage do not vote on an answer's edges beyond their cuts
(`decode_batch(cuts=)`): a window that ends right after 北 cannot end 北京 at 北, one that starts
at 京 cannot start an answer there; nothing changes without cuts."""

from __future__ import annotations

import numpy as np
import pytest

from models.bert.tokenizer import BertTokenizer
from models.qa.decoding import RecomputeStepModel, answer_questions
from models.qa.readers import Passage, QAExample, window_passages
from tests.models.test_qa_decoding import (
    SEP,
    CachedFake,
    V,
    _decode,
    _full_from,
    _passage_of,
    _peaked,
    _prefix,
    _random_dist,
)
from training.qa_eval import evaluate_examples

BEI, JING = 9, 10  # 北, 京
# 北京 straddles the first window's cut: it ends at 北, the second one holds 北京 inside.
CUT_AFTER_BEI = [_prefix([5, 6, BEI]), _prefix([6, BEI, JING, 11])]
CUTS = [(False, True), (True, False)]


def _lean(token: int, p: float, sep: float) -> np.ndarray:
    """token with p, [SEP] with sep, the rest spread over the other tokens."""
    probs = np.full(V, (1.0 - p - sep) / (V - 2))
    probs[token], probs[SEP] = p, sep
    return probs


def _straddle_reader(prefix: list[int], answer: list[int]) -> np.ndarray:
    """Starts an answer at 北; after it, a window whose passage stops at 北 is sure the answer
    ends (it sees nothing after it), the window holding 北京 leans to 京, less surely."""
    passage = _passage_of(prefix)
    if not answer:
        return _peaked(BEI, 0.9) if BEI in passage else _peaked(SEP, 0.9)
    if answer == [BEI] and BEI in passage:
        after = passage.index(BEI) + 1
        return _peaked(SEP, 0.95) if after == len(passage) else _lean(passage[after], 0.6, 0.3)
    return _peaked(SEP, 0.9)


def _straddle_next_reader(prefix: list[int], fed: list[int]) -> np.ndarray:
    """`_straddle_reader` for a model whose answer slots read the passage's next token: fed the
    passage's end ([SEP]) after 北, it is sure the answer ends."""
    passage = _passage_of(prefix)
    if not fed:
        return _peaked(BEI, 0.9) if BEI in passage else _peaked(SEP, 0.9)
    if len(fed) == 1 and fed[0] == SEP:
        return _peaked(SEP, 0.95)
    return _lean(JING, 0.6, 0.3) if fed == [JING] else _peaked(SEP, 0.9)


def _models(dist):
    return [CachedFake(dist), RecomputeStepModel(_full_from(dist))]


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("force_answer", [False, True])
def test_a_window_cut_after_bei_does_not_end_beijing(beam_size, force_answer):
    options = dict(extractive=True, beam_size=beam_size, force_answer=force_answer)
    for model in _models(_straddle_reader):
        (voted,) = _decode(model, [CUT_AFTER_BEI], **options)
        assert voted.token_ids == [BEI]  # without cuts the cut window's [SEP] wins
        (result,) = _decode(model, [CUT_AFTER_BEI], cuts=[CUTS], **options)
        assert result.token_ids == [BEI, JING] and result.passage_index == 1
        assert result.candidates[0][0] == [BEI, JING]


def test_a_window_cut_after_bei_does_not_end_beijing_reading_next_tokens():
    options = dict(extractive=True, answer_input="next")
    for model in _models(_straddle_next_reader):
        (voted,) = _decode(model, [CUT_AFTER_BEI], **options)
        assert voted.token_ids == [BEI]
        (result,) = _decode(model, [CUT_AFTER_BEI], cuts=[CUTS], **options)
        assert result.token_ids == [BEI, JING] and result.passage_index == 1


def test_not_extractive_a_window_cut_after_bei_does_not_end_beijing():
    model = CachedFake(_straddle_reader)
    (voted,) = _decode(model, [CUT_AFTER_BEI])
    assert voted.token_ids == [BEI]
    (result,) = _decode(model, [CUT_AFTER_BEI], cuts=[CUTS])
    assert result.token_ids == [BEI, JING]


def test_span_search_leaves_a_span_ending_at_a_cut_to_the_window_that_holds_it():
    options = dict(extractive=True, span_search=True, beam_size=3)
    for model in _models(_straddle_reader):
        (spans,) = _decode(model, [CUT_AFTER_BEI], **options)
        assert (spans.token_ids, spans.passage_index) == ([BEI], 0)
        (result,) = _decode(model, [CUT_AFTER_BEI], cuts=[CUTS], **options)
        assert (result.token_ids, result.passage_index) == ([BEI, JING], 1)
        # the second window's own 北 is still a candidate; the cut window's is not
        assert ([BEI], 1) in [(c[0], c[2]) for c in result.candidates]
        assert all(c[2] == 1 for c in result.candidates)


# 北京 whole in the first window; the second starts at 京 (its window's cut).
CUT_BEFORE_JING = [_prefix([5, BEI, JING, 6]), _prefix([JING, 6, 11])]


def _tail_reader(prefix: list[int], answer: list[int]) -> np.ndarray:
    """The window that starts at 京 is sure the answer starts there (it cannot see 北 before
    it); the one that holds 北京 leans to 北 less surely, then follows its passage."""
    passage = _passage_of(prefix)
    if not answer:
        return _lean(passage[0], 0.9, 0.0) if passage[0] == JING else _lean(BEI, 0.5, 0.1)
    for at in range(len(passage) - len(answer) + 1):
        if passage[at : at + len(answer)] == answer:
            after = at + len(answer)
            return _peaked(passage[after], 0.9) if answer == [BEI] else _peaked(SEP, 0.9)
    return _peaked(SEP, 0.3)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_window_cut_before_jing_does_not_start_an_answer_at_it(beam_size):
    options = dict(extractive=True, beam_size=beam_size)
    for model in _models(_tail_reader):
        (voted,) = _decode(model, [CUT_BEFORE_JING], **options)
        assert voted.token_ids[:1] == [JING]
        (result,) = _decode(model, [CUT_BEFORE_JING], cuts=[CUTS], **options)
        assert result.token_ids == [BEI, JING] and result.passage_index == 0


def test_span_search_leaves_a_span_starting_at_a_cut_to_the_window_that_holds_it():
    options = dict(extractive=True, span_search=True, length_penalty=0.0)
    (spans,) = _decode(CachedFake(_tail_reader), [CUT_BEFORE_JING], **options)
    assert (spans.token_ids, spans.passage_index) == ([JING], 1)
    (result,) = _decode(CachedFake(_tail_reader), [CUT_BEFORE_JING], cuts=[CUTS], **options)
    assert result.passage_index == 0 and result.token_ids[:1] == [BEI]


@pytest.mark.parametrize("span_search", [False, True])
def test_an_answer_only_the_cut_window_holds_is_still_answered(span_search):
    # The first window ends at 北 and no other row holds it: with no one to defer to, it votes.
    # The second row does not hold the answer but still votes (it leans to 北 at first).
    def dist(prefix, answer):
        passage = _passage_of(prefix)
        if BEI in passage:
            return _straddle_reader(prefix, answer)
        return _lean(BEI, 0.5, 0.4) if not answer else _peaked(SEP, 0.6)

    options = dict(extractive=True, span_search=span_search)
    alone = [_prefix([5, 6, BEI])]
    with_another = [*alone, _prefix([12, 13, 14])]
    for model in _models(dist):
        (result,) = _decode(model, [alone], cuts=[[(False, True)]], **options)
        assert (result.token_ids, result.passage_index) == ([BEI], 0)
        (result,) = _decode(
            model, [with_another], cuts=[[(False, True), (False, False)]], **options
        )
        assert (result.token_ids, result.passage_index) == ([BEI], 0)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(extractive=True, beam_size=3),
        dict(extractive=True, span_search=True, beam_size=2),
        dict(extractive=True, answer_input="next", beam_size=2),
        dict(force_answer=True, beam_size=3),
    ],
)
def test_without_cuts_nothing_changes(options):
    rng = np.random.default_rng(3)
    batch = [
        [_prefix(list(rng.integers(5, V, size=rng.integers(3, 9)))) for _ in range(n)]
        for n in (1, 2, 3)
    ]
    whole = [[(False, False)] * len(passages) for passages in batch]
    before = _decode(CachedFake(_random_dist), batch, **options)
    after = _decode(CachedFake(_random_dist), batch, cuts=whole, **options)
    assert [(a.token_ids, a.score, a.passage_index, a.candidates) for a in after] == [
        (a.token_ids, a.score, a.passage_index, a.candidates) for a in before
    ]


def test_cuts_must_name_every_passage():
    with pytest.raises(ValueError, match="cuts"):
        _decode(CachedFake(_straddle_reader), [CUT_AFTER_BEI], cuts=[[(False, True)]])


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> BertTokenizer:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"北京上海张伟李娜住在哪里？。"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return BertTokenizer(path)


def straddle_reader_of(tokenizer: BertTokenizer, unsure_whole: bool = False):
    """`_straddle_reader` over a real vocabulary's 北 and 京 (a `StepModel` that follows its
    passage, `CachedFake`): the window ending at 北 is sure the answer ends there. `unsure_whole`:
    as `_unsure_whole_reader`, a window that holds 北 inside says "no answer" at first."""
    bei, jing, sep = (tokenizer.token_to_id(t) for t in ("北", "京", "[SEP]"))
    size = tokenizer.vocab_size

    def peaked(token: int, p: float, sep_p: float = 0.0) -> np.ndarray:
        probs = np.full(size, (1.0 - p - sep_p) / (size - 2))
        probs[token] = p
        probs[sep] += sep_p
        return probs

    def dist(prefix: list[int], answer: list[int]) -> np.ndarray:
        passage = prefix[1 : prefix.index(sep)]
        if not answer:
            if unsure_whole and bei in passage and passage[-1] != bei:
                return peaked(bei, 0.3, 0.6)
            return peaked(bei, 0.9) if bei in passage else peaked(sep, 0.9)
        if answer == [bei] and bei in passage:
            after = passage.index(bei) + 1
            return peaked(sep, 0.95) if after == len(passage) else peaked(jing, 0.6, 0.3)
        return peaked(sep, 0.9)

    return CachedFake(dist)


# 14 characters: windows of 12, 6 apart, start at 0 and 2; the first ends at 北.
LONG = "李娜住在上海。张伟住在北京。"


def test_qa_eval_windows_by_characters_and_answers_across_the_cut(tokenizer):
    assert LONG[11:13] == "北京"
    example = window_passages(QAExample("张伟住在哪里？", [Passage(LONG, "北京")]), 12, 6)
    assert [(p.text, p.starts_cut, p.ends_cut) for p in example.passages] == [
        (LONG[:12], False, True),
        (LONG[2:], True, False),
    ]
    model = straddle_reader_of(tokenizer)
    options = dict(max_passage_tokens=12, extractive=True)
    scores, predictions = evaluate_examples(model, tokenizer, [example], **options)
    assert predictions == ["北京"] and scores["accuracy"] == 1.0
    # the same windows read as whole passages: the first one's [SEP] ends the answer at 北
    (alone,) = answer_questions(
        model, tokenizer, [("张伟住在哪里？", [p.text for p in example.passages])], **options
    )
    assert alone.answer == "北"


def test_a_passage_read_up_to_the_limit_ends_at_a_cut(tokenizer):
    # read up to 12 tokens the passage ends at 北: the reader cannot see 京, and with another
    # window holding 北京 the answer is 北京; alone it is 北
    model = straddle_reader_of(tokenizer)
    question = "张伟住在哪里？"
    (alone,) = answer_questions(model, tokenizer, [(question, [LONG])], max_passage_tokens=12,
                                extractive=True)  # fmt: skip
    assert alone.answer == "北"
    (both,) = answer_questions(model, tokenizer, [(question, [LONG, LONG[2:]])],
                               max_passage_tokens=12, extractive=True)  # fmt: skip
    assert (both.answer, both.passage_index) == ("北京", 1)


def _unsure_whole_reader(prefix: list[int], answer: list[int]) -> np.ndarray:
    """`_straddle_reader`, but the window holding 北京 whole says "no answer" at first (a reader
    weak on long windows): only the window cut after 北 starts an answer."""
    passage = _passage_of(prefix)
    if not answer and passage[-1] != BEI:
        return _lean(BEI, 0.3, 0.6)
    return _straddle_reader(prefix, answer)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_window_that_said_no_answer_goes_on_from_a_cut_it_sees_past(beam_size):
    options = dict(extractive=True, beam_size=beam_size)
    for model in _models(_unsure_whole_reader):
        (voted,) = _decode(model, [CUT_AFTER_BEI], **options)
        assert voted.token_ids == [BEI] and voted.passage_index == 0
        (result,) = _decode(model, [CUT_AFTER_BEI], cuts=[CUTS], **options)
        assert result.token_ids == [BEI, JING] and result.passage_index == 1


def test_windows_that_said_no_answer_do_not_make_one():
    # every window says "no answer": null, as without cuts; a silent window does not vote on the
    # first token either
    def dist(prefix, answer):
        return _lean(BEI, 0.3, 0.6) if not answer else _straddle_reader(prefix, answer)

    (result,) = _decode(CachedFake(dist), [CUT_AFTER_BEI], extractive=True, cuts=[CUTS])
    assert result.token_ids is None
