"""Decoding over passages with fake step models: no answer, voting, beams, extractive, cache."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pytest

from models.bert.tokenizer import BertTokenizer, tokens_to_text
from models.qa.decoding import (
    DecodedAnswer,
    PassageRow,
    RecomputeStepModel,
    _vote,
    answer_question,
    answer_questions,
    decode_batch,
    results_from_decoded,
    span_text,
)
from models.qa.samples import next_token

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
V = 20
# Question tokens of the fake prefixes.
QUESTION = [15, 16]
Dist = Callable[[list[int], list[int]], np.ndarray]


def _prefix(passage: list[int]) -> list[int]:
    return [CLS, *passage, SEP, *QUESTION, SEP]


def _passage_of(prefix: list[int]) -> list[int]:
    return prefix[1 : prefix.index(SEP)]


def _peaked(token: int, p: float) -> np.ndarray:
    probs = np.full(V, (1.0 - p) / (V - 1))
    probs[token] = p
    return probs


def _normalized_vote(probs: np.ndarray, token: int) -> float:
    """The decoder's step score of token for one passage: p^2 / (p + 1), rescaled to sum 1
    over the tokens that may be written ([PAD], [CLS], [MASK] are banned)."""
    probs = probs.copy()
    probs[[PAD, CLS, MASK]] = 0.0
    vote = probs**2 / (probs + 1)
    return float(vote[token] / vote.sum())


def _full_from(dist: Dist) -> Callable[..., np.ndarray]:
    """full_log_probs of a fake whose next-token distribution is dist(prefix, answer so far)."""

    def full(token_ids: np.ndarray, padding: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        out = np.zeros((*token_ids.shape, V))
        for b in range(len(token_ids)):
            n = int(padding[b].sum())
            prefix_len = int(((segment_ids[b] == 0) & (padding[b] == 1)).sum())
            ids = [int(t) for t in token_ids[b, :n]]
            for t in range(prefix_len - 1, n):
                out[b, t] = np.log(dist(ids[:prefix_len], ids[prefix_len : t + 1]))
        return out

    return full


class CachedFake:
    """A StepModel with a preallocated token cache [B, T]: the shape of the real kv cache."""

    def __init__(self, dist: Dist, capacity: int = 64) -> None:
        self.dist = dist
        self.capacity = capacity
        self.calls: list[int] = []  # rows per model call

    def _probs(self, cache: np.ndarray, prefix_len: np.ndarray, length: np.ndarray) -> np.ndarray:
        return np.log(np.stack([
            self.dist([int(t) for t in cache[b, : prefix_len[b]]],
                      [int(t) for t in cache[b, prefix_len[b] : length[b]]])
            for b in range(len(cache))
        ]))  # fmt: skip

    def prefill(self, token_ids, lengths):
        cache = np.full((len(token_ids), self.capacity), PAD, np.int64)
        cache[:, : token_ids.shape[1]] = token_ids
        state = (cache, lengths.copy(), lengths.copy())
        self.calls.append(len(token_ids))
        return self._probs(*state), state

    def step(self, token_ids, positions, state):
        cache, prefix_len, length = (a.copy() for a in state)
        assert np.array_equal(positions, length), "a step must write right after the cache"
        cache[np.arange(len(cache)), positions] = token_ids
        length += 1
        self.calls.append(len(token_ids))
        return self._probs(cache, prefix_len, length), (cache, prefix_len, length)

    def select_rows(self, state, rows):
        return tuple(a[rows] for a in state)


def _marker_dist(prefix: list[int], answer: list[int]) -> np.ndarray:
    """Answers with the two passage tokens after marker 7, or [SEP] at once without one."""
    passage = _passage_of(prefix)
    if 7 not in passage:
        return _peaked(SEP, 0.9)
    start = passage.index(7) + 1
    target = passage[start : start + 2]
    return _peaked(target[len(answer)] if len(answer) < len(target) else SEP, 0.9)


def _random_dist(prefix: list[int], answer: list[int]) -> np.ndarray:
    """A fixed random distribution per (passage, answer so far), a little biased to [SEP]."""
    seed = zlib.crc32(np.asarray(_passage_of(prefix) + [-1] + answer, np.int64).tobytes())
    logits = np.random.default_rng(seed).normal(0, 2.0, V)
    logits[SEP] += 0.4 * len(answer)
    probs = np.exp(logits - logits.max())
    return probs / probs.sum()


def _decode(model, prefixes, **options):
    options.setdefault("sep_id", SEP)
    options.setdefault("banned_ids", (PAD, CLS, MASK))
    options.setdefault("mask_id", MASK)
    return decode_batch(model, prefixes, **options)


def test_vote_is_sum_of_squares_over_sum_plus_one():
    probs = np.array([[0.6, 0.1], [0.6, 0.9]])
    np.testing.assert_allclose(_vote(probs), [0.72 / 2.2, 0.82 / 2.0])


def test_answer_from_the_passage_that_holds_it_and_null_without_one():
    model = RecomputeStepModel(_full_from(_marker_dist))
    with_answer = [_prefix([5, 6, 9]), _prefix([8, 7, 11, 12, 5]), _prefix([6, 6])]
    without = [_prefix([5, 6, 9]), _prefix([8, 9])]
    found, null = _decode(model, [with_answer, without])
    assert found.token_ids == [11, 12]
    assert found.passage_index == 1
    # one passage left after the first step, sure of each token with p = 0.9
    assert found.score == pytest.approx(_normalized_vote(_peaked(11, 0.9), 11) ** 3)
    assert null.token_ids is None and null.passage_index is None and null.candidates == []
    assert null.score == pytest.approx(2 * 0.81 / (1.8 + 1))


def test_no_passages_gives_no_answer():
    (result,) = _decode(RecomputeStepModel(_full_from(_marker_dist)), [[]])
    assert result.token_ids is None and result.score == 0.0


def test_voting_prefers_an_answer_several_passages_agree_on():
    # Two passages fairly sure of 11, one very sure of 12: 2*0.7^2/(1.4+1) > 0.95^2/(0.95+1)?
    # 0.408 < 0.463 -> 12 would win alone; with a third passage for 11 it wins: 3*0.49/3.1=0.474.
    def dist(prefix, answer):
        passage = _passage_of(prefix)
        if answer:
            return _peaked(SEP, 0.99)
        return _peaked(12, 0.95) if passage[0] == 9 else _peaked(11, 0.7)

    model = RecomputeStepModel(_full_from(dist))
    two = _decode(model, [[_prefix([5]), _prefix([6]), _prefix([9])]])[0]
    three = _decode(model, [[_prefix([5]), _prefix([6]), _prefix([8]), _prefix([9])]])[0]
    assert two.token_ids == [12] and two.passage_index == 2
    assert three.token_ids == [11] and three.passage_index in (0, 1, 2)


def _garden_path(prefix, answer):
    # Greedy takes 5 (p 0.5) then is stuck with weak tokens; 6 (p 0.4) ends well.
    if not answer:
        probs = np.full(V, 0.1 / (V - 2))
        probs[5], probs[6] = 0.5, 0.4
        return probs
    if answer == [5]:
        return _peaked(8, 0.2)
    if answer == [5, 8]:
        return _peaked(SEP, 0.9)
    return _peaked(SEP, 0.95)


def test_beam_search_finds_a_better_answer_than_greedy():
    model = RecomputeStepModel(_full_from(_garden_path))
    greedy = _decode(model, [[_prefix([5, 6, 8])]], beam_size=1)[0]
    beam = _decode(model, [[_prefix([5, 6, 8])]], beam_size=3)[0]
    assert greedy.token_ids == [5, 8]
    assert beam.token_ids == [6]
    first = _normalized_vote(_garden_path([], []), 6)
    assert beam.score == pytest.approx(first * _normalized_vote(_peaked(SEP, 0.95), SEP))
    assert [c[0] for c in beam.candidates][:2] == [[6], [5, 8]]
    assert beam.candidates[0][1] > beam.candidates[1][1]


def test_beam_search_does_not_prefer_no_answer_for_being_short():
    # Sure of a three-token answer; "no answer" is the runner-up at the first step. Raw votes
    # (at most 1/2 a step) would rank the empty answer above it.
    def dist(prefix, answer):
        if not answer:
            probs = np.full(V, 0.01)
            probs[5], probs[SEP] = 0.6, 0.3
            return probs / probs.sum()
        return _peaked([6, 7][len(answer) - 1] if len(answer) < 3 else SEP, 0.95)

    model = RecomputeStepModel(_full_from(dist))
    (result,) = _decode(model, [[_prefix([5, 6, 7])]], beam_size=4)
    assert result.token_ids == [5, 6, 7]
    assert [] in [c[0] for c in result.candidates]


def test_extractive_answers_are_spans_of_a_passage():
    def dist(prefix, answer):
        # prefers 13 (never in the passage), then 9, then anything
        probs = np.full(V, 0.01)
        probs[13] = 0.5
        probs[9 if not answer else 10] = 0.3
        probs[SEP] = 0.2 if len(answer) >= 2 else 0.01
        return probs / probs.sum()

    model = RecomputeStepModel(_full_from(dist))
    prefixes = [[_prefix([8, 9, 10, 12, 9, 11])]]
    free = _decode(model, prefixes)[0]
    span = _decode(model, prefixes, extractive=True)[0]
    assert free.token_ids is not None and free.token_ids[0] == 13
    assert span.token_ids == [9, 10]


def test_extractive_after_a_repeated_token_follows_every_occurrence():
    def dist(prefix, answer):
        wanted = [9, 11]
        return _peaked(wanted[len(answer)] if len(answer) < 2 else SEP, 0.6)

    model = RecomputeStepModel(_full_from(dist))
    # 9 occurs twice; only the second occurrence continues with 11
    (result,) = _decode(model, [[_prefix([9, 10, 9, 11])]], extractive=True)
    assert result.token_ids == [9, 11]
    (blocked,) = _decode(model, [[_prefix([9, 10, 9, 12])]], extractive=True)
    assert blocked.token_ids == [9]  # 11 cannot follow 9 here: [SEP] or 10/12 only


def test_answers_stop_at_max_answer_tokens():
    model = RecomputeStepModel(_full_from(lambda prefix, answer: _peaked(6, 0.8)))
    (result,) = _decode(model, [[_prefix([6, 6])]], max_answer_tokens=3)
    assert result.token_ids == [6, 6, 6]


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("extractive", [False, True])
def test_cache_and_batching_give_the_answers_of_recomputing_one_question_at_a_time(
    beam_size, extractive
):
    rng = np.random.default_rng(0)
    questions = [
        [_prefix(list(rng.integers(5, V, size=rng.integers(3, 9)))) for _ in range(n)]
        for n in (1, 3, 2, 4)
    ]
    options = dict(beam_size=beam_size, extractive=extractive, max_answer_tokens=6)
    cached = CachedFake(_random_dist)
    batched = _decode(cached, questions, **options)
    reference = RecomputeStepModel(_full_from(_random_dist))
    alone = [_decode(reference, [q], **options)[0] for q in questions]
    assert [a.token_ids for a in batched] == [a.token_ids for a in alone]
    assert [a.candidates for a in batched] == [a.candidates for a in alone]
    assert any(a.token_ids for a in batched), "the fake should answer something"
    # one prefill for all questions, then one step call per answer token
    assert cached.calls[0] == sum(len(q) for q in questions)
    assert len(cached.calls) <= 1 + 6


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> BertTokenizer:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"北京上海张伟住在哪里？。", "ab",
              "##c", "12", "##3"]  # fmt: skip
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return BertTokenizer(path)


def test_tokens_to_text_joins_characters_and_word_pieces(tokenizer):
    ids = [tokenizer.token_to_id(t) for t in ["北", "京", "ab", "##c", "12", "[SEP]"]]
    assert tokens_to_text(tokenizer, ids) == "北京abc 12"


def test_answer_question_returns_text_and_candidates(tokenizer):
    beijing = [tokenizer.token_to_id("北"), tokenizer.token_to_id("京")]

    def dist(prefix, answer):
        passage = _passage_of(prefix)
        if beijing[0] not in passage:
            probs = np.full(len(tokenizer_vocab), 0.01)
            probs[tokenizer.sep_id] = 1.0
        else:
            probs = np.full(len(tokenizer_vocab), 0.01)
            probs[beijing[len(answer)] if len(answer) < 2 else tokenizer.sep_id] = 1.0
        return probs / probs.sum()

    tokenizer_vocab = range(tokenizer.vocab_size)

    def full(token_ids, padding, segment_ids):
        out = np.zeros((*token_ids.shape, tokenizer.vocab_size))
        for b in range(len(token_ids)):
            n, m = int(padding[b].sum()), int(((segment_ids[b] == 0) & (padding[b] == 1)).sum())
            ids = [int(t) for t in token_ids[b, :n]]
            out[b, n - 1] = np.log(dist(ids[:m], ids[m:n]))
        return out

    model = RecomputeStepModel(full, pad_id=tokenizer.pad_id)
    result = answer_question(
        model, tokenizer, "张伟住在哪里？", ["张伟住在上海。", "张伟住在北京。"]
    )
    assert result.answer == "北京" and result.passage_index == 1
    assert result.candidates[0][0] == "北京"
    (none,) = answer_questions(model, tokenizer, [("张伟住在哪里？", ["张伟住在上海。"])])
    assert none.answer is None and none.passage_index is None


def _writing(tokenizer: BertTokenizer, answer_tokens: list[int]) -> RecomputeStepModel:
    """A reader that writes `answer_tokens`, then [SEP], over a passage holding the first of
    them, and says "no answer" over the others."""

    def full(token_ids, padding, segment_ids):
        out = np.full((*token_ids.shape, tokenizer.vocab_size), np.log(1e-3))
        for b in range(len(token_ids)):
            n, m = int(padding[b].sum()), int(((segment_ids[b] == 0) & (padding[b] == 1)).sum())
            written = n - m
            nxt = answer_tokens[written] if written < len(answer_tokens) else tokenizer.sep_id
            if answer_tokens[0] not in token_ids[b, :m]:
                nxt = tokenizer.sep_id
            out[b, n - 1, nxt] = 0.0
        return out

    return RecomputeStepModel(full, pad_id=tokenizer.pad_id)


def test_span_text_is_the_passages_own_characters(tokenizer):
    passage = "张伟住在ABC  Ω 123。abc"
    ids, offsets = tokenizer.piece_ids_with_offsets(passage)
    row = PassageRow(ids, offsets, passage)
    abc = [tokenizer.token_to_id("ab"), tokenizer.token_to_id("##c")]
    span = [*abc, tokenizer.unk_id, tokenizer.token_to_id("12"), tokenizer.token_to_id("##3")]
    # an uncased vocabulary writes "abc 123" back from the tokens; the passage has more
    assert tokens_to_text(tokenizer, span) == "abc 123"
    assert span_text(span, row) == "ABC  Ω 123"
    assert span_text(abc, row) == "ABC"  # the first place it occurs
    assert span_text([tokenizer.token_to_id("京")], row) is None  # not a span: written back
    assert span_text([], row) is None
    # a window: its tokens and offsets count in the whole passage
    window = PassageRow(ids[6:], offsets[6:], passage)
    assert span_text(abc, window) == "abc"


def test_an_extractive_answer_is_written_as_its_passage_has_it(tokenizer):
    passages = ["张伟住在上海。", "张伟住在ABC  Ω 123。"]
    span = [tokenizer.token_to_id(t) for t in ["ab", "##c", "[UNK]", "12", "##3"]]
    model = _writing(tokenizer, span)
    for extractive in (False, True):
        result = answer_question(
            model, tokenizer, "张伟住在哪里？", passages, extractive=extractive
        )
        assert (result.answer, result.passage_index) == ("ABC  Ω 123", 1)
        assert result.candidates[0] == ("ABC  Ω 123", result.score, 1)
    # a generated answer that no passage holds is written from its tokens
    beijing = [tokenizer.token_to_id("北"), tokenizer.token_to_id("京")]
    (written,) = answer_questions(
        _writing(tokenizer, beijing), tokenizer, [("张伟住在哪里？", ["张伟住在北边的京。"])]
    )
    assert written.answer == "北京"
    # without the passages' rows, every answer is written from its tokens, as before
    decoded = [DecodedAnswer(span, 0.5, 1, [(span, 0.5, 1)])]
    (plain,) = results_from_decoded(tokenizer, decoded)
    assert plain.answer == "abc 123"


def _unsure_dist(prefix: list[int], answer: list[int]) -> np.ndarray:
    """Every passage leans to "no answer" ([SEP] 0.6 at the first step), the passage with 7 less
    so (0.5); the second most likely first token is the passage's token after 7 (or its first),
    and after one token [SEP]."""
    passage = _passage_of(prefix)
    if answer:
        return _peaked(SEP, 0.9)
    marked = 7 in passage
    probs = np.full(V, 0.01)
    probs[SEP] = 0.5 if marked else 0.6
    probs[passage[passage.index(7) + 1] if marked else passage[0]] = 0.3
    return probs / probs.sum()


@pytest.mark.parametrize("extractive", [False, True])
def test_force_answer_returns_the_best_answer_where_every_passage_says_none(extractive):
    model = RecomputeStepModel(_full_from(_unsure_dist))
    passages = [_prefix([5, 6]), _prefix([8, 7, 11]), _prefix([9, 9])]
    (unforced,) = _decode(model, [passages], extractive=extractive)
    assert unforced.token_ids is None
    (forced,) = _decode(model, [passages], extractive=extractive, force_answer=True)
    # the passage least sure of "no answer" stays, and its best first token that is not [SEP]
    assert forced.token_ids == [11] and forced.passage_index == 1
    assert forced.candidates and all(tokens for tokens, _, _ in forced.candidates)


def test_force_answer_bans_an_empty_answer_at_the_first_step_only():
    # One passage: its best first token is 5 (p 0.45), then [SEP] (0.4); after 5, [SEP].
    def dist(prefix, answer):
        if answer:
            return _peaked(SEP, 0.9)
        probs = np.full(V, 0.15 / (V - 2))
        probs[5], probs[SEP] = 0.45, 0.4
        return probs

    model = RecomputeStepModel(_full_from(dist))
    # with beams, "no answer" is a finished candidate of the first step unless forced
    (free,) = _decode(model, [[_prefix([5, 6])]], beam_size=3)
    assert [] in [tokens for tokens, _, _ in free.candidates]
    (forced,) = _decode(model, [[_prefix([5, 6])]], beam_size=3, force_answer=True)
    assert forced.token_ids == [5]
    assert [] not in [tokens for tokens, _, _ in forced.candidates]


def test_force_answer_keeps_the_answers_of_passages_that_hold_one():
    model = RecomputeStepModel(_full_from(_marker_dist))
    batch = [[_prefix([5, 6, 9]), _prefix([8, 7, 11, 12, 5])], [_prefix([8, 7, 13, 14])]]
    assert [a.token_ids for a in _decode(model, batch, force_answer=True)] == [
        a.token_ids for a in _decode(model, batch)
    ]
    # no passage: still no answer
    (empty,) = _decode(model, [[]], force_answer=True)
    assert empty.token_ids is None


@pytest.mark.parametrize("extractive", [False, True])
@pytest.mark.parametrize("force_answer", [False, True])
def test_a_passage_of_no_tokens_holds_no_answer(extractive, force_answer):
    # a passage of only spaces reads as no tokens; a reader that writes 11 12 whatever it reads
    # would answer from the question alone when not held to spans (README: "a passage of only
    # spaces is read and holds no answer"; force_answer: null when the passages hold no text)
    def writes_11_12(prefix, answer):
        return _peaked([11, 12, SEP][min(len(answer), 2)], 0.9)

    model = RecomputeStepModel(_full_from(writes_11_12))
    options = dict(extractive=extractive, force_answer=force_answer)
    (alone,) = _decode(model, [[_prefix([]), _prefix([])]], **options)
    assert alone.token_ids is None and not any(tokens for tokens, _, _ in alone.candidates)
    # beside a passage that holds the answer, the answer is named from that one
    (beside,) = _decode(model, [[_prefix([]), _prefix([8, 11, 12])]], **options)
    assert beside.token_ids == [11, 12] and beside.passage_index == 1


def _span_log_prob(dist: Dist, prefix: list[int], answer: list[int]) -> float:
    tokens = [*answer, SEP]
    return float(sum(np.log(dist(prefix, answer[:k])[t]) for k, t in enumerate(tokens)))


def test_span_search_finds_the_likeliest_span_greedy_misses():
    model = RecomputeStepModel(_full_from(_garden_path))
    (greedy,) = _decode(model, [[_prefix([5, 8, 6])]], extractive=True)
    (spans,) = _decode(
        model, [[_prefix([5, 8, 6])]], extractive=True, span_search=True, length_penalty=0.0
    )
    assert greedy.token_ids == [5, 8]
    assert spans.token_ids == [6] and spans.passage_index == 0
    assert spans.score == pytest.approx(0.4 * 0.95)


@pytest.mark.parametrize("max_answer_tokens", [2, 4])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_span_search_is_exact_over_every_span(max_answer_tokens, length_penalty):
    rng = np.random.default_rng(1)
    for n in (1, 2, 3):
        passages = [list(rng.integers(5, V, size=rng.integers(3, 8))) for _ in range(n)]
        spans = [
            (_span_log_prob(_random_dist, _prefix(p), p[s:e]), k, p[s:e])
            for k, p in enumerate(passages)
            for s in range(len(p))
            for e in range(s + 1, min(len(p), s + max_answer_tokens) + 1)
        ]
        spans = [(log_p / (len(tokens) + 1) ** length_penalty, k, tokens)
                 for log_p, k, tokens in spans]  # fmt: skip
        best = max(spans, key=lambda span: span[0])
        options = dict(
            extractive=True,
            span_search=True,
            force_answer=True,
            span_starts=100,
            max_answer_tokens=max_answer_tokens,
            length_penalty=length_penalty,
        )
        cached = CachedFake(_random_dist)
        (found,) = _decode(cached, [[_prefix(p) for p in passages]], **options)
        assert found.token_ids == best[2]
        assert np.log(found.score) == pytest.approx(best[0])
        (again,) = _decode(
            RecomputeStepModel(_full_from(_random_dist)),
            [[_prefix(p) for p in passages]],
            **options,
        )
        assert again.token_ids == found.token_ids and again.score == pytest.approx(found.score)


def test_length_penalty_ranks_by_log_probability_per_token():
    # [5] alone: 0.5 * 0.5 = 0.25; [5, 6, 7]: 0.5 * 0.5 * 0.9 * 0.9 = 0.2025 (higher per token)
    def dist(prefix, answer):
        if not answer:
            return _peaked(5, 0.5)
        if answer == [5]:
            probs = np.full(V, 0.0)
            probs[6], probs[SEP] = 0.5, 0.5
            return probs + 1e-12
        if answer == [5, 6]:
            return _peaked(7, 0.9)
        return _peaked(SEP, 0.9)

    model = RecomputeStepModel(_full_from(dist))
    prefixes = [[_prefix([5, 6, 7])]]
    options = dict(extractive=True, span_search=True, beam_size=3)
    (plain,) = _decode(model, prefixes, length_penalty=0.0, **options)
    (per_token,) = _decode(model, prefixes, length_penalty=1.0, **options)
    (default,) = _decode(model, prefixes, **options)
    assert plain.token_ids == [5]
    assert per_token.token_ids == [5, 6, 7]
    assert per_token.score == pytest.approx(0.2025 ** (1 / 4))
    assert default.token_ids == per_token.token_ids


def test_span_search_needs_extractive_and_length_penalty_needs_it():
    model = RecomputeStepModel(_full_from(_marker_dist))
    with pytest.raises(ValueError, match="extractive"):
        _decode(model, [[_prefix([5])]], span_search=True)
    with pytest.raises(ValueError, match="span_search"):
        _decode(model, [[_prefix([5])]], extractive=True, length_penalty=1.0)
    with pytest.raises(ValueError, match="span_search"):
        _decode(model, [[_prefix([5])]], extractive=True, length_penalty=0.0)


def test_span_search_keeps_the_first_step_rule():
    # passages whose best first token is [SEP] leave: null unless forced; forced, the passage
    # least sure of "no answer" is read (as the vote does)
    model = RecomputeStepModel(_full_from(_unsure_dist))
    passages = [_prefix([5, 6]), _prefix([8, 7, 11]), _prefix([9, 9])]
    options = dict(extractive=True, span_search=True, beam_size=10)
    (free,) = _decode(model, [passages], **options)
    assert free.token_ids is None and free.candidates == []
    (forced,) = _decode(model, [passages], force_answer=True, **options)
    assert forced.token_ids == [11] and forced.passage_index == 1
    assert {c[2] for c in forced.candidates} == {1}
    # with an answer in one passage, the others (which say "no answer") are not read
    (found,) = _decode(
        RecomputeStepModel(_full_from(_marker_dist)),
        [[_prefix([5, 6, 9]), _prefix([8, 7, 11, 12, 5])]],
        **options,
    )
    assert found.token_ids == [11, 12] and {c[2] for c in found.candidates} == {1}


# answer_input "next": the answer slots read the passage's token after the span so far.
STOP = 10  # the fakes' sentence end


def _hint_reader(prefix: list[int], fed: list[int]) -> np.ndarray:
    """A "next" reader that writes the first token after marker 7 and then whatever it is fed,
    until it is fed the sentence end: where a value ends is read from the passage."""
    passage = _passage_of(prefix)
    if 7 not in passage:
        return _peaked(SEP, 0.9)
    if not fed:
        return _peaked(passage[passage.index(7) + 1], 0.9)
    return _peaked(SEP if fed[-1] in (STOP, SEP) else fed[-1], 0.9)


def test_next_inputs_write_a_value_to_where_its_sentence_says_it_ends():
    model = CachedFake(_hint_reader)
    passages = [_prefix([8, 7, 9, 11, 12, 13, STOP, 14]), _prefix([8, 7, 6])]
    (result,) = _decode(model, [passages[:1]], extractive=True, answer_input="next")
    assert result.token_ids == [9, 11, 12, 13]
    # to the passage's end, where it reads the passage's [SEP]
    (last,) = _decode(model, [passages[1:]], extractive=True, answer_input="next")
    assert last.token_ids == [6] and last.passage_index == 0
    (again,) = _decode(
        RecomputeStepModel(_full_from(_hint_reader)), [passages[:1]], extractive=True,
        answer_input="next",
    )  # fmt: skip
    assert again.token_ids == result.token_ids and again.score == pytest.approx(result.score)


def test_next_inputs_read_mask_where_the_answer_so_far_goes_on_differently():
    # 9 occurs three times, followed by 5, 6 and 5: the reader wants the one followed by 6
    passage = [8, 9, 5, 10, 9, 6, 10, 9, 5]
    fed: list[list[int]] = []

    def reader(prefix, inputs):
        fed.append(list(inputs))
        return _peaked([9, 6, SEP][len(inputs)], 0.9)

    for model in (CachedFake(reader), RecomputeStepModel(_full_from(reader))):
        fed.clear()
        options = dict(extractive=True, answer_input="next")
        (result,) = _decode(model, [[_prefix(passage)]], **options)
        assert result.token_ids == [9, 6]
        # after 9: [MASK] (5 or 6); after 9 6: 10, the only token that follows it
        assert fed[-1] == [MASK, 10]


def test_next_inputs_a_passage_without_the_answer_so_far_stops_voting():
    # the second passage starts an answer (9) it does not hold, then is sure of [SEP]: it does
    # not end the first passage's answer
    def dist(prefix, fed):
        passage = _passage_of(prefix)
        if 7 in passage:
            return _hint_reader(prefix, fed)
        return _peaked(9, 0.9) if not fed else _peaked(SEP, 0.99)

    options = dict(extractive=True, answer_input="next")
    passages = [_prefix([8, 7, 9, 11, STOP]), _prefix([13, 14])]
    (result,) = _decode(CachedFake(dist), [passages], **options)
    assert result.token_ids == [9, 11] and result.passage_index == 0


@pytest.mark.parametrize("beam_size", [1, 3])
def test_next_inputs_cache_and_batching_give_the_answers_of_recomputing(beam_size):
    rng = np.random.default_rng(2)
    questions = [
        [_prefix(list(rng.integers(5, 9, size=rng.integers(3, 9)))) for _ in range(n)]
        for n in (1, 3, 2, 4)
    ]
    options = dict(beam_size=beam_size, extractive=True, max_answer_tokens=5, answer_input="next")
    batched = _decode(CachedFake(_random_dist), questions, **options)
    reference = RecomputeStepModel(_full_from(_random_dist))
    alone = [_decode(reference, [q], **options)[0] for q in questions]
    assert [a.candidates for a in batched] == [a.candidates for a in alone]
    assert any(a.token_ids and len(a.token_ids) > 1 for a in batched)
    # and not the answers of the previous-token decoder: the inputs differ
    previous = _decode(
        CachedFake(_random_dist), questions, **{**options, "answer_input": "previous"}
    )
    assert [a.candidates for a in previous] != [a.candidates for a in batched]


def _next_span_log_prob(dist: Dist, prefix: list[int], passage: list[int], s: int, e: int) -> float:
    """log p of span passage[s:e] and its [SEP] for a "next" reader: slot k reads what follows
    the span's first k + 1 tokens in the passage ([MASK] where that is ambiguous)."""
    ahead = [next_token(passage, passage[s : s + k + 1], SEP, MASK) for k in range(e - s)]
    tokens = [*passage[s:e], SEP]
    return float(sum(np.log(dist(prefix, ahead[:k])[t]) for k, t in enumerate(tokens)))


def test_next_inputs_span_search_is_exact_over_every_span():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3):
        passages = [list(rng.integers(5, V, size=rng.integers(3, 8))) for _ in range(n)]
        spans = [
            (_next_span_log_prob(_random_dist, _prefix(p), p, s, e), p[s:e])
            for p in passages
            for s in range(len(p))
            for e in range(s + 1, min(len(p), s + 3) + 1)
        ]
        best = max(spans, key=lambda span: span[0])
        (found,) = _decode(
            CachedFake(_random_dist), [[_prefix(p) for p in passages]], extractive=True,
            span_search=True, force_answer=True, span_starts=100, max_answer_tokens=3,
            length_penalty=0.0, answer_input="next",
        )  # fmt: skip
        assert found.token_ids == best[1]
        assert np.log(found.score) == pytest.approx(best[0])


def test_next_inputs_need_extractive_decoding():
    model = RecomputeStepModel(_full_from(_hint_reader))
    with pytest.raises(ValueError, match="extractive"):
        _decode(model, [[_prefix([7, 9])]], answer_input="next")
    with pytest.raises(ValueError, match="answer_input"):
        _decode(model, [[_prefix([7, 9])]], extractive=True, answer_input="last")
    with pytest.raises(ValueError, match="mask_id"):
        _decode(model, [[_prefix([7, 9])]], extractive=True, answer_input="next", mask_id=None)


def test_an_answer_at_max_answer_tokens_ends_for_length(tokenizer):
    beijing = [tokenizer.token_to_id("北"), tokenizer.token_to_id("京")]
    decoded = [
        DecodedAnswer(beijing, 0.9, 0, [(beijing, 0.9, 0)]),
        DecodedAnswer(None, 0.8, None, []),
    ]
    at_two = results_from_decoded(tokenizer, decoded, max_answer_tokens=2)
    at_three = results_from_decoded(tokenizer, decoded, max_answer_tokens=3)
    assert [(r.answer, r.finish_reason) for r in at_two] == [("北京", "length"), (None, None)]
    assert [(r.answer, r.finish_reason) for r in at_three] == [("北京", "stop"), (None, None)]
    # answer_questions passes its limit
    model = _writing(tokenizer, beijing)
    for limit, reason in ((1, "length"), (2, "length"), (3, "stop")):
        (result,) = answer_questions(
            model, tokenizer, [("张伟住在哪里？", ["张伟住在北京。"])], max_answer_tokens=limit
        )
        assert result.finish_reason == reason, limit
