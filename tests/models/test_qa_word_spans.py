"""Extractive answers of whole words: no span starts at a "##" piece or ends before one
(`decode_batch(continues_word=)`), in token-by-token decoding, beams and the span search."""

from __future__ import annotations

import numpy as np
import pytest

from models.bert.tokenizer import BertTokenizer
from models.qa.decoding import (
    PassageRow,
    RecomputeStepModel,
    WindowCuts,
    _Beam,
    _best_passage,
    _Question,
    answer_questions,
    decode_batch,
    span_text,
)

from .test_qa_decoding import (
    CLS,
    MASK,
    PAD,
    SEP,
    CachedFake,
    V,
    _full_from,
    _passage_of,
    _peaked,
    _prefix,
    _random_dist,
    _span_log_prob,
)

# 1 ##9 ##8 ##9 as the fake vocabulary has them: 5 begins a word, 17 and 18 continue one.
ONE, NINE, EIGHT = 5, 17, 18
CONTINUES = np.zeros(V, bool)
CONTINUES[[NINE, EIGHT]] = True
YEAR = [ONE, NINE, EIGHT, NINE]


def _decode(model, prefixes, **options):
    return decode_batch(
        model, prefixes, sep_id=SEP, banned_ids=(PAD, CLS, MASK), mask_id=MASK, **options
    )


def _sure_of_198(prefix: list[int], answer: list[int]) -> np.ndarray:
    """A reader that writes 1 ##9 ##8 and then likes [SEP] (0.6) better than the last ##9."""
    if len(answer) < 3:
        return _peaked(YEAR[len(answer)], 0.9)
    probs = _peaked(SEP, 0.6)
    probs[NINE] = 0.3
    return probs / probs.sum()


@pytest.mark.parametrize("beam_size", [1, 3])
def test_an_answer_ends_where_its_word_does(beam_size):
    model = CachedFake(_sure_of_198)
    prefixes = [[_prefix([8, *YEAR, 12])]]
    (cut,) = _decode(model, prefixes, extractive=True, beam_size=beam_size)
    (whole,) = _decode(
        model, prefixes, extractive=True, beam_size=beam_size, continues_word=CONTINUES
    )
    assert cut.token_ids == [ONE, NINE, EIGHT]
    assert whole.token_ids == YEAR
    # generated answers are not spans: the rule is the extractive constraint's
    (free,) = _decode(model, prefixes, continues_word=CONTINUES)
    assert free.token_ids == [ONE, NINE, EIGHT]


def test_an_answer_may_end_where_some_passage_ends_its_word():
    model = CachedFake(_sure_of_198)
    # 1 ##9 ##8 ends a word in the second passage (a passage's end ends a word too)
    for second in ([ONE, NINE, EIGHT, 12], [9, ONE, NINE, EIGHT]):
        (result,) = _decode(
            model,
            [[_prefix([8, *YEAR, 12]), _prefix(second)]],
            extractive=True,
            continues_word=CONTINUES,
        )
        assert result.token_ids == [ONE, NINE, EIGHT]


def test_an_answer_starts_at_a_words_start():
    def dist(prefix, answer):
        if not answer:  # likes ##8 best as a first token, then 1
            probs = np.full(V, 0.01)
            probs[[EIGHT, ONE]] = 0.5, 0.3
            return probs / probs.sum()
        return _peaked(YEAR[len(answer)] if len(answer) < 4 else SEP, 0.9)

    model = CachedFake(dist)
    prefixes = [[_prefix([8, *YEAR, 12])]]
    (free,) = _decode(model, prefixes, extractive=True)
    (whole,) = _decode(model, prefixes, extractive=True, continues_word=CONTINUES)
    assert free.token_ids is not None and free.token_ids[0] == EIGHT
    assert whole.token_ids == YEAR


def _whole_words(passage: list[int], continues: np.ndarray, s: int, e: int) -> bool:
    return not continues[passage[s]] and (e == len(passage) or not continues[passage[e]])


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_span_search_is_exact_over_every_span_of_whole_words(length_penalty):
    rng = np.random.default_rng(3)
    for trial in range(6):
        continues = np.zeros(V, bool)
        continues[rng.choice(np.arange(5, V), size=5, replace=False)] = True
        passages = [list(rng.integers(5, V, size=rng.integers(3, 9))) for _ in range(2)]
        # the passages the first step keeps (with force_answer, at least the least sure)
        first = [_random_dist(_prefix(p), []) for p in passages]
        alive = [
            p for p, probs in zip(passages, first, strict=True) if np.argmax(probs) != SEP
        ] or [passages[int(np.argmin([probs[SEP] for probs in first]))]]
        spans = [
            (_span_log_prob(_random_dist, _prefix(p), p[s:e]) / (e - s + 1) ** length_penalty,
             p[s:e])
            for p in alive
            for s in range(len(p))
            for e in range(s + 1, min(len(p), s + 4) + 1)
            if _whole_words(p, continues, s, e)
        ]  # fmt: skip
        options = dict(
            extractive=True, span_search=True, force_answer=True, span_starts=100,
            max_answer_tokens=4, length_penalty=length_penalty, continues_word=continues,
        )  # fmt: skip
        (found,) = _decode(CachedFake(_random_dist), [[_prefix(p) for p in passages]], **options)
        assert spans, trial  # (a forced answer with no whole word: the test below)
        best = max(spans, key=lambda span: span[0])
        assert found.token_ids == best[1], trial
        assert found.token_ids is not None
        for tokens, _, passage_index in found.candidates:
            p = passages[passage_index]
            assert any(
                p[s : s + len(tokens)] == tokens and _whole_words(p, continues, s, s + len(tokens))
                for s in range(len(p))
            )


@pytest.mark.parametrize("span_search", [False, True])
def test_cached_decoding_and_recomputing_agree_with_whole_words(span_search):
    rng = np.random.default_rng(5)
    continues = np.zeros(V, bool)
    continues[[6, 9, 13, 17]] = True
    questions = [
        [_prefix(list(rng.integers(5, V, size=rng.integers(4, 9)))) for _ in range(n)]
        for n in (1, 2, 3, 2)
    ]
    options = dict(
        extractive=True, beam_size=3, span_search=span_search, force_answer=True,
        continues_word=continues,
    )  # fmt: skip
    cached = _decode(CachedFake(_random_dist), questions, **options)
    recomputed = _decode(RecomputeStepModel(_full_from(_random_dist)), questions, **options)
    for a, b, prefixes in zip(cached, recomputed, questions, strict=True):
        assert a.token_ids == b.token_ids and a.score == pytest.approx(b.score)
        if a.token_ids is not None:  # and the answer is whole words of its passage
            p = _passage_of(prefixes[a.passage_index])
            n = len(a.token_ids)
            assert any(
                p[s : s + n] == a.token_ids and _whole_words(p, continues, s, s + n)
                for s in range(len(p))
            )


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_windows_cut_inside_a_word_does_not_end_the_answer(beam_size):
    # service windows are cut between tokens: window A ends 1 ##9 ##8 | and the next window,
    # overlapping it, holds 1 ##9 ##8 ##9 whole
    window_a, window_b = [7, 8, ONE, NINE, EIGHT], [8, *YEAR, 12]
    prefixes = [[_prefix(window_a), _prefix(window_b)]]
    options = dict(extractive=True, beam_size=beam_size, continues_word=CONTINUES)
    (result,) = _decode(CachedFake(_sure_of_198), prefixes, cuts=[[(False, True), (True, False)]],
                        **options)  # fmt: skip
    assert result.token_ids == YEAR
    # a passage that ends after ##8 ends the word there (no cut)
    (ended,) = _decode(CachedFake(_sure_of_198), prefixes, **options)
    assert ended.token_ids == [ONE, NINE, EIGHT]
    # and a lone window cut there has nothing that reads on: its span may end at the cut
    (alone,) = _decode(
        CachedFake(_sure_of_198), [[_prefix(window_a)]], cuts=[[(False, True)]], **options
    )
    assert alone.token_ids == [ONE, NINE, EIGHT]


def test_a_revived_window_does_not_end_the_answer_at_the_other_windows_cut():
    # window B says "no answer" at the first step (silent) and is revived when the answer
    # reaches A's cut end
    window_a, window_b = [7, 8, ONE, NINE, EIGHT], [8, *YEAR, 12]

    def dist(prefix, answer):
        if not answer and _passage_of(prefix) == window_b:
            return _peaked(SEP, 0.9)
        return _sure_of_198(prefix, answer)

    (result,) = _decode(
        CachedFake(dist),
        [[_prefix(window_a), _prefix(window_b)]],
        extractive=True,
        continues_word=CONTINUES,
        cuts=[[(False, True), (True, False)]],
    )
    assert result.token_ids == YEAR


@pytest.mark.parametrize("span_search", [False, True])
def test_a_forced_answer_over_pieces_that_start_no_word(span_search):
    # a window of ## pieces only (cut out of a long number): no span is of whole words, and a
    # forced answer is still an answer
    (result,) = _decode(
        CachedFake(_random_dist),
        [[_prefix([NINE, EIGHT, NINE])]],
        extractive=True,
        force_answer=True,
        span_search=span_search,
        continues_word=CONTINUES,
        cuts=[[(True, True)]],
    )
    assert result.token_ids


def test_the_answer_text_is_cut_from_a_whole_word(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "washington", "##ian", "is", "the",
              "capital", ".", "food"]  # fmt: skip
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(tmp_path / "vocab.txt")  # uncased
    passage = "WASHINGTONIAN food. Washington is the capital."
    ids, offsets = tokenizer.piece_ids_with_offsets(passage)
    row = PassageRow(ids, offsets, passage)
    washington = [tokenizer.token_to_id("washington")]
    assert span_text(washington, row) == "WASHINGTON"  # the first place its tokens occur
    assert span_text(washington, row, tokenizer.continues_word) == "Washington"
    # a span that occurs only inside a word is still the passage's text
    row = PassageRow(ids[:4], offsets[:4], passage)
    assert span_text(washington, row, tokenizer.continues_word) == "WASHINGTON"


def test_the_tokenizer_says_which_pieces_continue_a_word(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "1", "##9", "##8", "年", "##", "#"]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(tmp_path / "vocab.txt")
    ids = tokenizer.piece_ids("1989年")
    assert [tokenizer.id_to_token(i) for i in ids] == ["1", "##9", "##8", "##9", "年"]
    assert tokenizer.continues_word[ids].tolist() == [False, True, True, True, False]
    assert not tokenizer.continues_word[tokenizer.token_to_id("##")]  # "##" is a word
    assert tokenizer.continues_word.shape == (tokenizer.vocab_size,)
    # a repeated line keeps its last id (Google's load_vocab): ids run past vocab_size
    (tmp_path / "vocab.txt").write_text("\n".join([*tokens, "1", "##7"]) + "\n", encoding="utf-8")
    repeated = BertTokenizer(tmp_path / "vocab.txt")
    ids = repeated.piece_ids("1987")
    assert max(ids) >= repeated.vocab_size
    assert repeated.continues_word[ids].tolist() == [False, True, True, True]


def _sure_of_the_first(tokenizer: BertTokenizer, pieces: list[int], k: int):
    """A reader (`RecomputeStepModel`'s function) that writes the first `k` of `pieces` and then
    likes [SEP] (0.6) better than the next piece (0.3)."""

    def full(token_ids, padding, segment_ids):
        out = np.full((*token_ids.shape, tokenizer.vocab_size), np.log(1e-3))
        for b in range(len(token_ids)):
            n, m = int(padding[b].sum()), int(((segment_ids[b] == 0) & (padding[b] == 1)).sum())
            if n - m < k:
                out[b, n - 1, pieces[n - m]] = 0.0
            else:
                out[b, n - 1, tokenizer.sep_id], out[b, n - 1, pieces[k]] = np.log(0.6), np.log(0.3)
        return out

    return full


def test_a_served_answer_is_the_whole_number(tmp_path):
    tokens = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *"张伟出生于年哪？。",
        "1",
        "##9",
        "##8",
    ]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(tmp_path / "vocab.txt")
    year = tokenizer.piece_ids("1989")

    # writes 1 ##9 ##8, then likes [SEP] better than the last ##9
    model = RecomputeStepModel(_sure_of_the_first(tokenizer, year, 3), pad_id=tokenizer.pad_id)
    (result,) = answer_questions(
        model, tokenizer, [("张伟哪年出生？", ["张伟出生于1989年。"])], extractive=True
    )
    assert result.answer == "1989"


def test_an_answer_stopped_by_max_answer_tokens_ends_a_word_if_it_can():
    def dist(prefix, answer):
        if not answer:
            return _peaked(ONE, 0.9)
        probs = np.full(V, 0.01)
        probs[[NINE, 13]] = 0.6, 0.3  # likes ##9 (of 1 ##9 ##8) better than the word 13
        return probs / probs.sum()

    prefixes = [[_prefix([ONE, NINE, EIGHT, 12, ONE, 13])]]
    options = dict(extractive=True, max_answer_tokens=2, continues_word=CONTINUES)
    (result,) = _decode(CachedFake(dist), prefixes, **options)
    assert result.token_ids == [ONE, 13]
    # with room for the whole word, the reader's choice stands
    (longer,) = _decode(CachedFake(dist), prefixes, **{**options, "max_answer_tokens": 3})
    assert longer.token_ids is not None and longer.token_ids[:2] == [ONE, NINE]
    # and where no token ends a word, the answer is cut at the limit as before
    (cut,) = _decode(CachedFake(_sure_of_198), [[_prefix([8, *YEAR, 12])]], **options)
    assert cut.token_ids == [ONE, NINE]


def test_the_answers_passage_holds_it_as_whole_words():
    def dist(prefix, answer):
        sure = 0.95 if _passage_of(prefix)[0] == 8 else 0.7  # surer over the first passage
        return _peaked([ONE, NINE, SEP][min(len(answer), 2)], sure)

    # the first holds 1 ##9 only inside 1 ##9 ##8, the second as a word
    prefixes = [[_prefix([8, ONE, NINE, EIGHT]), _prefix([12, ONE, NINE, 12])]]
    (result,) = _decode(CachedFake(dist), prefixes, extractive=True, continues_word=CONTINUES)
    assert result.token_ids == [ONE, NINE] and result.passage_index == 1
    (plain,) = _decode(CachedFake(dist), prefixes, extractive=True)
    assert plain.token_ids == [ONE, NINE] and plain.passage_index == 0


def _number_vocab(tmp_path) -> BertTokenizer:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"张伟身高米是多少？。a",
              "1", "5", "75", "989", "##9", ".", ","]  # fmt: skip
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return BertTokenizer(tmp_path / "vocab.txt")


def test_a_numbers_separators_join_its_digits(tmp_path):
    tokenizer = _number_vocab(tmp_path)

    def joins(text: str) -> list[bool]:
        ids, offsets = tokenizer.piece_ids_with_offsets(text)
        return PassageRow(ids, offsets, text).word_joins(tokenizer.continues_word).tolist()

    assert joins("1.75") == [False, True, True]
    assert joins("1,989") == [False, True, True]
    assert joins("1.5.75") == [False, True, True, True, True]  # a version
    assert joins("19.") == [False, True, False]  # a sentence's full stop after 1 ##9
    assert joins("a.5") == [False, False, False] and joins(".5") == [False, False]
    assert joins("1, 989") == [False, False, False]  # a blank parts them: a list
    assert joins("12,989,989") == [False, True, True, True, True]  # thousands
    assert joins("1,5,75") == [False] * 5  # a list, not thousands (3 digits a group)
    assert joins("75,989,5") == [False, True, True, False, False]
    # a window's first and last tokens see past its cuts: the text is the whole passage's
    text = "身高1.75,1,989米。1."
    ids, offsets = tokenizer.piece_ids_with_offsets(text)
    whole = PassageRow(ids, offsets, text).word_joins(tokenizer.continues_word)
    for k in range(len(ids)):
        for row in (PassageRow(ids[k:], offsets[k:], text), PassageRow(ids[:k], offsets[:k], text)):
            got = row.word_joins(tokenizer.continues_word)
            assert got.tolist() == (whole[k:] if row.ids == ids[k:] else whole[:k]).tolist(), k
    assert joins("1;75") == [False, False, False]  # [UNK] for ; is no separator
    # a separator the vocabulary lacks is still one: the text says what it is
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(vocab.read_text().replace(".\n", "x\n"), encoding="utf-8")
    lacking = BertTokenizer(vocab)
    ids, offsets = lacking.piece_ids_with_offsets("1.75")
    assert lacking.id_to_token(ids[1]) == "[UNK]"
    assert PassageRow(ids, offsets, "1.75").word_joins(lacking.continues_word).tolist() == [
        False, True, True,
    ]  # fmt: skip


def test_a_decimal_number_is_answered_whole(tmp_path):
    tokenizer = _number_vocab(tmp_path)
    one = tokenizer.token_to_id("1")

    def full(token_ids, padding, segment_ids):
        # writes 1, then likes [SEP] best: a reader sure of the number's start only
        out = np.full((*token_ids.shape, tokenizer.vocab_size), np.log(1e-3))
        for b in range(len(token_ids)):
            n, m = int(padding[b].sum()), int(((segment_ids[b] == 0) & (padding[b] == 1)).sum())
            out[b, n - 1, one if n == m else tokenizer.sep_id] = 0.0
        return out

    model = RecomputeStepModel(full, pad_id=tokenizer.pad_id)
    questions = [("张伟身高是多少？", ["张伟身高1.75米。"]), ("张伟身高是多少？", ["张伟身高1。"])]
    answers = answer_questions(model, tokenizer, questions, extractive=True)
    assert [a.answer for a in answers] == ["1.75", "1"]
    (free,) = answer_questions(model, tokenizer, questions[:1])  # generated: the reader's own
    assert free.answer == "1"


def test_a_forced_span_search_cuts_only_at_the_limit(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"张伟哪年出生？", "1", "##9", "##8"]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(tmp_path / "vocab.txt")
    model = CachedFake(
        lambda prefix, answer: np.full(tokenizer.vocab_size, 1.0 / tokenizer.vocab_size)
    )
    # no whole word fits in 3 tokens of 1989: the forced answer is cut at the limit, and says so
    for span_search in (False, True):
        (result,) = answer_questions(
            model, tokenizer, [("张伟哪年出生？", ["1989"])], extractive=True, force_answer=True,
            max_answer_tokens=3, span_search=span_search,
        )  # fmt: skip
        assert (result.answer, result.finish_reason) == ("198", "length"), span_search


def test_the_answers_passage_is_one_that_was_heard():
    # passage 1 is heard and holds 5 6 only inside a word; passage 2 holds it whole but is a
    # silent window, never revived: the answer is named from passage 1, which holds it
    passages = [np.array([7, 8, 9]), np.array([5, 6, NINE]), np.array([5, 6, 9])]
    joins = [CONTINUES[p] for p in passages]
    cuts = [WindowCuts(False, True), WindowCuts(True, True), WindowCuts(True, False)]
    question = _Question([0, 1, 2], passages, cuts, True, joins, alive=[0, 1, 2],
                         silent=frozenset({2}))  # fmt: skip
    beam = _Beam([5, 6], 0.0, np.array([-1.0, -2.0, -0.5]), [0, 1, 2],
                 [np.array([], np.int64), np.array([2]), np.array([2])])  # fmt: skip
    assert _best_passage(question, beam) == 1


@pytest.mark.parametrize("beam_size", [1, 3])
def test_an_answer_is_whole_words_in_one_place_not_its_start_in_one_and_end_in_another(beam_size):
    # 1 ##9 starts a word in 1 ##9 ##8 ##9 (where it ends inside it) and ends a word in 3 . 1 ##9
    # (3.19, where it starts inside it): it is a whole word nowhere, so the reader sure of 1 ##9
    # and then of [SEP] writes the year rather than 19 cut out of it
    def dist(prefix, answer):
        if len(answer) < 2:
            return _peaked(YEAR[len(answer)], 0.9)
        probs = _peaked(SEP, 0.6)
        probs[EIGHT] = 0.3
        return probs / probs.sum()

    passage = [8, *YEAR, 12, 9, 7, ONE, NINE, 12]
    joins = CONTINUES[passage].copy()
    joins[[7, 8]] = True  # the decimal point and the digits after it (`PassageRow.word_joins`)
    (result,) = _decode(
        CachedFake(dist), [[_prefix(passage)]], extractive=True, beam_size=beam_size,
        continues_word=CONTINUES, joins=[[joins]],
    )  # fmt: skip
    assert result.token_ids == YEAR
    # where 1 ##9 is a word of its own, the reader's [SEP] stands
    passage[6:8] = [12, 12]
    (own,) = _decode(
        CachedFake(dist), [[_prefix(passage)]], extractive=True, beam_size=beam_size,
        continues_word=CONTINUES, joins=[[CONTINUES[passage]]],
    )  # fmt: skip
    assert own.token_ids == [ONE, NINE]


def test_a_served_year_is_whole_beside_a_decimal_that_ends_with_its_digits(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"张伟出生于年哪？。体重公斤，",
              "1", "##9", "##8", "6", "##3", "."]  # fmt: skip
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(tmp_path / "vocab.txt")
    # writes 1 ##9, then likes [SEP] better than ##8
    full = _sure_of_the_first(tokenizer, tokenizer.piece_ids("1989"), 2)
    model = RecomputeStepModel(full, pad_id=tokenizer.pad_id)
    (result,) = answer_questions(
        model, tokenizer, [("张伟哪年出生？", ["张伟1989年出生，体重63.19公斤。"])], extractive=True
    )
    assert (result.answer, result.finish_reason) == ("1989", "stop")
