"""Answer decoding for the UniLM reading-comprehension model: all passages of a question together.

Pure numpy and model-agnostic: a `StepModel` gives next-token log-probabilities from a prefill
over `[CLS] passage [SEP] question [SEP]` and then one step per answer token (with a key/value
cache, `models.bert.kv_cache`; or recomputing everything, `RecomputeStepModel`, the reference).
The algorithm is the one of bert4keras' `task_reading_comprehension_by_seq2seq.py`:

1. Every passage of a question is one row; the first step reads all rows. A passage whose most
   likely first token is [SEP] holds no answer and leaves, and so does a passage of no tokens
   (only spaces: its row would answer from the question alone); when none is left the answer is
   null.
2. The remaining passages share the answer being written: at every step each passage gives its
   distribution p_i over the next token and the question's score of token t is the vote
   v(t) = sum_i p_i(t)^2 / (sum_i p_i(t) + 1), which favours tokens that several passages are
   sure of over tokens one passage is unsure of.
3. With `extractive`, the next token must extend the answer so far to a span of a remaining
   passage (or be [SEP]): the probabilities of all other tokens are set to zero before voting.
   Given which ids continue a word (`continues_word`: WordPiece's "##" pieces), a span is of
   whole words too: it starts at no "##" piece, and [SEP] may end it only where some passage
   holding it from a word's start goes on with a new word (or ends), so that it is a whole word
   in one place (1 ##9 starts a word in 1989 and ends one in 3.19: it is neither). A reader
   sure of 198 but not of the last 9 of 1989 (1 ##9 ##8 ##9) writes 1989, not 198; SQuAD's
   answers are whole words in the same way.
4. With `force_answer` (the caller knows the passages hold an answer: bert4keras' decoder can be
   told so too), [SEP] may not win the first step: when every passage would leave, the one
   least sure of "no answer" (lowest p([SEP]) at the first step) among those with tokens stays,
   and the first token is chosen among the others, so the best answer is returned rather than
   null (null when no passage has a token).
5. Beam search on the summed log-votes keeps `beam_size` answers; beams end at [SEP] (or at
   `max_answer_tokens`); the cache rows follow their beams (`StepModel.select_rows`). Each step's
   votes are rescaled to sum to 1 first (`_normalized_vote`): the raw vote is at most 1/2, which
   would bias beams towards short answers.

The candidates are the finished beams, best first; a candidate's score is the product of its
normalised votes, and its passage is the remaining passage that gives it the highest probability.

With `answer_input="next"` (a model trained so, `models.qa.samples.ANSWER_INPUTS`; extractive
only), each step feeds a passage's row the passage token that follows the answer so far instead of
the answer's last token (`models.qa.samples.next_token`: [MASK] where the answer so far occurs in
the passage with several next tokens, 35 and 38 after "3"), and the row says whether it extends
the answer or the answer ends. A passage that does not hold the answer so far has no next token:
it stops voting.

With `span_search` (extractive only), steps 2-5 are replaced by `models.qa.span_search`: every
span of the remaining passages that starts at one of the question's `span_starts` likeliest
starts is scored whole, by its log-probability in its passage, and the spans are ranked by that
score over (tokens + 1) ** `length_penalty` (no vote: the best span of any passage wins). The
first step's rule, `force_answer` included, is the same.

A passage longer than the model reads is cut into overlapping windows (`service.runtimes.qa`,
`models.qa.readers.window_passages`), each a row of its own, and a window cannot know what lies
beyond its cuts: a window that ends right after 北 can only end 北 there, and would vote for
[SEP] against the window that holds 北京 whole. With `cuts` (which rows start or end at a cut),
a row does not vote on the answer's edges beyond them, as BERT's "max context" rule on SQuAD
leaves each position to the window that sees most around it (`_edge_votes`): where the answer so
far occurs in a row only at its cut end the row abstains, and a row cut at its start does not
vote for its first token as the answer's first, both while another voting row holds that answer
so far (that token) away from its own cuts. Windows that say "no answer" at the first step are
read on, silent (they neither vote nor widen the extractive constraint): when the answer so far
reaches a voting row's cut end and no voting row holds it inside, the silent windows that do
vote for that beam from then on (`_revived`), since a window sure of an answer's start but cut
inside it would otherwise end it at its cut. The span search ranks a span that touches a cut
after the others when another read passage holds it inside (it reads no silent window). Without
cuts, nothing changes.

With `evidence`, the same pass also keeps, for each beam, the attention over its passages of the
token that predicted each answer token (the step model's `prefill_with_attention` and
`step_with_attention`: the last prefix token for the first answer token, then each answer token
for the next), from the layers `evidence_layers` names, heads averaged. Each passage's share of a
token is its part of the passages' probability of that token, so a passage that did not want the
token adds little. A candidate's evidence is, per passage, the mean over its tokens of that
weighted attention over the passage's tokens (`models.qa.evidence` turns it into character
spans). Answers and scores are the same with and without it.
An answer's text is its passage's own characters when its tokens are a span of that passage
(always so when `extractive`): from its first token's start to its last one's end, as the user
wrote them (`span_text`); otherwise its tokens are written back (`tokens_to_text`, through the
question's placeholders), which loses what the vocabulary normalised or lacks.
Several questions decode in one batch (`decode_batch`, `answer_questions`): their rows share
each prefill and step call, which is what the service does with requests of different callers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple, Protocol, cast

import numpy as np

from models.bert.tokenizer import BertTokenizer
from models.qa.evidence import EvidenceSpan, evidence_spans
from models.qa.placeholders import PlaceholderMap, Placeholders, answer_text
from models.qa.samples import (
    ANSWER_INPUTS,
    DEFAULT_MAX_ANSWER_TOKENS,
    DEFAULT_MAX_PASSAGE_TOKENS,
    DEFAULT_MAX_QUESTION_TOKENS,
    TARGET_SEGMENT,
    following_token,
    join_prefix,
)
from models.qa.sentences import ReadBy, reading_units
from models.qa.span_search import (
    DEFAULT_LENGTH_PENALTY,
    DEFAULT_SPAN_STARTS,
    SpanCandidate,
    SpanQuestion,
    rank_spans,
    search_spans,
)

# Beam width of bert4keras' reading-comprehension example (`topk=1`: greedy), the service default.
DEFAULT_BEAM_SIZE = 1
# Prefix layout `[CLS] passage [SEP] ...`: the passage starts after [CLS].
PASSAGE_OFFSET = 1
# The layers whose attention (heads averaged) makes answers' evidence: None averages all layers,
# an int picks one (-1 the last). The mean of the layers put the gold answer inside the top span
# most often on the demo model's held-out questions (bench/qa_evidence.py, docs/benchmarks.md).
EVIDENCE_LAYERS: int | None = None


class WindowCuts(NamedTuple):
    """Whether a row's passage text starts and ends at a cut: the window of a longer passage,
    which goes on before (`start`) or after (`end`) what the row reads."""

    start: bool = False
    end: bool = False


class StepModel(Protocol):
    """Incremental next-token log-probabilities; the state is opaque to the decoder. The step
    protocol of `models.bert.kv_cache` (QA's models take no condition).

    Row b of every call is one (question, passage, beam); positions count from 0 at [CLS].
    """

    def prefill(self, token_ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, Any]:
        """Reads padded prefixes [B, L] (row b real up to lengths[b]; segment 0).

        Returns:
            (log-probs [B, V] of the first answer token, state).
        """
        ...

    def step(
        self, token_ids: np.ndarray, positions: np.ndarray, state: Any
    ) -> tuple[np.ndarray, Any]:
        """Feeds one answer token per row (segment 1) at `positions` [B].

        Returns:
            (log-probs [B, V] of the token after it, new state).
        """
        ...

    def select_rows(self, state: Any, rows: np.ndarray) -> Any:
        """The state of rows `rows` [B'] (gathered; rows may repeat or disappear)."""
        ...


class AttentionStepModel(StepModel, Protocol):
    """A `StepModel` that also returns the attention answers' evidence is made of (QA versions
    exported since `return_evidence`, `models.qa.signatures`; `KerasStepModel`)."""

    has_attention: bool

    def prefill_with_attention(
        self, token_ids: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """`prefill`, and the attention [num_layers, B, L] (heads averaged) of each row's last
        real token over the prefix."""
        ...

    def step_with_attention(
        self, token_ids: np.ndarray, positions: np.ndarray, state: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """`step`, and the attention [num_layers, B, slots] (heads averaged) of the new tokens
        over the cache slots before them."""
        ...


class RecomputeStepModel:
    """A `StepModel` without a cache: each step re-reads prefix and answer so far.

    The reference that a cached model must match token for token; also a way to decode with a
    model that has no cache.

    Args:
        full_log_probs: (token_ids [B, L], padding_mask [B, L], segment_ids=[B, L]) -> log-probs
            [B, L, V] at every position (e.g. a step model's `full_logits`).
        pad_id: id to pad rows with.
    """

    def __init__(
        self,
        full_log_probs: Callable[..., Any],
        pad_id: int = 0,
    ) -> None:
        self.full_log_probs = full_log_probs
        self.pad_id = pad_id

    def _last_log_probs(self, rows: list[tuple[list[int], list[int]]]) -> np.ndarray:
        width = max(len(prefix) + len(answer) for prefix, answer in rows)
        token_ids = np.full((len(rows), width), self.pad_id, np.int32)
        segment_ids = np.zeros((len(rows), width), np.int32)
        padding = np.zeros((len(rows), width), np.int32)
        for i, (prefix, answer) in enumerate(rows):
            ids = prefix + answer
            token_ids[i, : len(ids)] = ids
            segment_ids[i, len(prefix) : len(ids)] = TARGET_SEGMENT
            padding[i, : len(ids)] = 1
        out = np.asarray(self.full_log_probs(token_ids, padding, segment_ids=segment_ids))
        last = padding.sum(axis=1) - 1
        return out[np.arange(len(rows)), last]

    def prefill(
        self, token_ids: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[list[int], list[int]]]]:
        rows: list[tuple[list[int], list[int]]] = [
            ([int(t) for t in token_ids[i, : lengths[i]]], []) for i in range(len(lengths))
        ]
        return self._last_log_probs(rows), rows

    def step(
        self, token_ids: np.ndarray, positions: np.ndarray, state: Any
    ) -> tuple[np.ndarray, list[tuple[list[int], list[int]]]]:
        rows = [
            (prefix, [*answer, int(token)])
            for (prefix, answer), token in zip(state, token_ids, strict=True)
        ]
        for (prefix, answer), position in zip(rows, positions, strict=True):
            if len(prefix) + len(answer) - 1 != int(position):
                raise ValueError(f"position {position} for a row of {len(prefix) + len(answer)}")
        return self._last_log_probs(rows), rows

    def select_rows(self, state: Any, rows: np.ndarray) -> list[tuple[list[int], list[int]]]:
        return [state[int(i)] for i in rows]


@dataclass
class DecodedAnswer:
    """The outcome of decoding one question, in token ids.

    Attributes:
        token_ids: the best answer's tokens without [SEP]; None when there is no answer.
        score: the best answer's score (product of its normalised votes; with `span_search`,
            exp of its ranking score: its probability in its passage when `length_penalty` is
            0); for a null answer found at the first step, the raw vote for [SEP] over all
            passages.
        passage_index: the passage the answer comes from, or None.
        candidates: (token ids, score, passage index) of every finished beam, best first; empty
            token ids for "no answer".
    """

    token_ids: list[int] | None
    score: float
    passage_index: int | None
    candidates: list[tuple[list[int], float, int | None]] = field(default_factory=list)
    # With `evidence`: per candidate, {passage index: weight of each of its tokens} (the mean
    # attention of the answer tokens, `decode_batch`); None when not asked.
    evidence: list[dict[int, np.ndarray]] | None = None


@dataclass
class _Beam:
    tokens: list[int]
    score: float  # sum of log votes
    passage_log_probs: np.ndarray  # [passages alive] sum of log p_i over the tokens
    rows: list[int]  # its row per alive passage in the current state
    # extractive, or a question with windows' cuts: per alive passage, the positions right after
    # the answer so far's occurrences (the next token's positions that fit)
    matches: list[np.ndarray] | None
    # answer_input "next": per alive passage, whether it holds the answer so far (and votes);
    # None: every passage votes (the rows read the answer's last token)
    voting: list[bool] | None = None
    # evidence: per step that chose a token ([SEP] included), (attention [alive, P] over the
    # passages' tokens of the rows that predicted it, their probabilities of it [alive])
    attention: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    # windows' cuts: the silent passages (`_Question.silent`) that vote for this beam, from the
    # step its answer so far reached a cut they see past (`_revived`)
    revived: frozenset[int] = frozenset()


@dataclass
class _Question:
    prefill_rows: list[int]
    passages: list[np.ndarray]  # passage token ids, per passage
    # per passage, whether its row starts and ends at a window's cut (its passage goes on before
    # and after what the row read, `WindowCuts`); None: no row is cut
    cuts: list[WindowCuts] | None = None
    extractive: bool = False
    # per passage, whether each piece continues the word of the one before it (`word_joins`:
    # extractive spans are of whole words); None: any span
    joins: list[np.ndarray] | None = None
    alive: list[int] = field(default_factory=list)  # passage indices still reading
    # windows that said "no answer" at the first step but are read on (`_revived`): they vote
    # only for the beams that revive them
    silent: frozenset[int] = frozenset()
    beams: list[_Beam] = field(default_factory=list)
    finished: list[_Beam] = field(default_factory=list)
    result: DecodedAnswer | None = None

    def passage_attention(self, attention: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        """[B, slots] attention -> [alive, P] over each alive passage's tokens (rows[k] is the
        row of alive passage k), zero past a passage's end; P the longest passage."""
        width = max(len(p) for p in self.passages)
        out = np.zeros((len(rows), width))
        for k, (passage_index, row) in enumerate(zip(self.alive, rows, strict=True)):
            n = len(self.passages[passage_index])
            out[k, :n] = attention[row, PASSAGE_OFFSET : PASSAGE_OFFSET + n]
        return out


def _vote(probs: np.ndarray) -> np.ndarray:
    """bert4keras' vote over passages (axis 0): sum p^2 / (sum p + 1)."""
    return np.square(probs).sum(axis=0) / (probs.sum(axis=0) + 1.0)


def _normalized_vote(probs: np.ndarray) -> np.ndarray:
    """The vote over the vocabulary, rescaled to sum to 1.

    The raw vote is at most 1/2 per step even when every passage is sure (p = 1 gives
    1 / (1 + 1)), so summed over steps it would favour short answers, and "no answer" above
    all, in beam search. Rescaling keeps each step's ranking (greedy decoding is unchanged) and
    makes answers of different lengths comparable.
    """
    vote = _vote(probs)
    total = vote.sum()
    return vote / total if total > 0 else vote


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def _allowed_mask(
    vocab_size: int,
    beam: _Beam,
    question: _Question,
    sep_id: int,
    banned: np.ndarray,
    end_allowed: bool = True,
    last: bool = False,
) -> np.ndarray | None:
    """[V] bool of the tokens that may come next, or None when any token may (not extractive).
    `end_allowed` False bans [SEP] (a forced answer's first token); `last`: the token is the
    answer's last one (`max_answer_tokens`), so with words (`_Question.joins`) it ends one."""
    if not question.extractive or beam.matches is None:
        if not len(banned) and end_allowed:
            return None
        mask = np.ones(vocab_size, bool)
        mask[banned] = False
        mask[sep_id] = end_allowed
        return mask
    mask = np.zeros(vocab_size, bool)
    closing = np.zeros(vocab_size, bool)  # `last`: the tokens that end a word where they occur
    joins = question.joins
    ends_word = joins is None or not beam.tokens
    # the span so far reaches a window's cut end, and whether some row reads on past it
    at_cut = read_on = False
    for passage_index, positions in zip(question.alive, beam.matches, strict=True):
        if passage_index in question.silent and passage_index not in beam.revived:
            continue
        ids = question.passages[passage_index]
        inside = positions[positions < len(ids)]
        if joins is not None:
            joined = joins[passage_index]
            # The span so far ends a word where a new word follows it or its passage ends; a
            # window's cut end (service windows are cut between tokens: 1 ##9 ##8 | ##9) only
            # when no row reads on past the span, since the word may go on beyond the cut.
            reaches_end = len(inside) < len(positions)
            cut = question.cuts is not None and question.cuts[passage_index].end
            at_cut = at_cut or (reaches_end and cut)
            read_on = read_on or len(inside) > 0
            ends_word = ends_word or (reaches_end and not cut) or not joined[inside].all()
            if not beam.tokens:
                inside = inside[~joined[inside]]  # and it starts at a word's start
            if last:
                after = inside + 1
                ends = (after >= len(ids)) & (not cut)  # a cut end: the word may go on
                within = after < len(ids)
                ends[within] = ~joined[after[within]]
                closing[ids[inside[ends]]] = True
        mask[ids[inside]] = True
    if joins is not None and not beam.tokens and not mask.any():
        # no passage holds a word's start (a window of ## pieces only): any token may start
        return _allowed_mask(
            vocab_size, beam, replace(question, joins=None), sep_id, banned, end_allowed
        )
    if last and (mask & closing).any():
        # the answer stops here: it ends a word if it can (else it is cut at the limit)
        mask &= closing
    mask[banned] = False
    mask[sep_id] = end_allowed and (ends_word or (at_cut and not read_on))
    return mask


def _extend_matches(
    question: _Question, matches: list[np.ndarray] | None, token: int, first: bool = False
) -> list[np.ndarray] | None:
    """The positions right after the answer so far's occurrences, once `token` extends it.

    `first` (the answer's first token), with words (`_Question.joins`): only its occurrences
    that start a word, where a heard passage has one (a window of "##" pieces only has none),
    so that the [SEP] rule of `_allowed_mask` sees whole words in one place: 1 ##9 starts a word
    in 1989 and ends one in 3.19, and is a word in neither."""
    if matches is None:
        return None
    out = []
    for passage_index, positions in zip(question.alive, matches, strict=True):
        ids = question.passages[passage_index]
        inside = positions[positions < len(ids)]
        out.append(inside[ids[inside] == token] + 1)
    if first and question.joins is not None:
        joins = question.joins
        starts = [ends[~joins[i][ends - 1]] for i, ends in zip(question.alive, out, strict=True)]
        if any(
            len(s) for i, s in zip(question.alive, starts, strict=True) if i not in question.silent
        ):
            out = starts
    return out


def _passage_probs(log_probs: np.ndarray, beam: _Beam) -> np.ndarray:
    """[alive, V] probabilities of a beam's passages; zero for a passage that does not vote
    (`_Beam.voting`)."""
    probs = np.exp(log_probs[beam.rows])
    if beam.voting is not None:
        probs[~np.asarray(beam.voting, bool)] = 0.0
    return probs


def _edge_votes(probs: np.ndarray, beam: _Beam, question: _Question) -> np.ndarray:
    """[alive, V] votes of a beam's rows: `probs` without what a window cannot know, the
    answer's edges beyond its cuts (BERT's "max context" rule on SQuAD, for votes).

    * End: a row whose answer so far occurs in it only at its last token, where its window is
      cut, abstains (on [SEP] and every other token): it cannot see whether the answer ends
      there, and the window after it, which overlaps it, can.
    * Start: at the first step, a row whose window starts at a cut does not vote for its first
      token as the answer's start (when that token occurs nowhere else in it): it may be the tail
      of an answer that starts before the window, which the window before it sees.

    Either holds only while another voting row holds the answer so far (or that first token)
    away from its own cuts: a row with no one to defer to votes as it is. A question without
    cuts gets `probs` back.
    """
    if question.cuts is None or beam.matches is None:
        return probs
    voting = probs.sum(axis=1) > 0
    cuts = [question.cuts[i] for i in question.alive]
    ids = [question.passages[i] for i in question.alive]
    if not beam.tokens:
        out = probs.copy()
        for k, (edges, tokens) in enumerate(zip(cuts, ids, strict=True)):
            if not edges.start or not len(tokens) or (tokens[1:] == tokens[0]).any():
                continue
            # another voting row holds the token where it may start an answer: not at its cut
            if any(
                voting[j] and (ids[j][int(cuts[j].start) :] == tokens[0]).any()
                for j in range(len(ids))
                if j != k
            ):
                out[k, tokens[0]] = 0.0
        return out
    # per row: whether the answer so far occurs in it only at its cut end; elsewhere in it
    at_cut = np.zeros(len(ids), bool)
    inside = np.zeros(len(ids), bool)
    for k, (edges, tokens, ends) in enumerate(zip(cuts, ids, beam.matches, strict=True)):
        cut_ends = ends == len(tokens) if edges.end else np.zeros(len(ends), bool)
        at_cut[k] = len(ends) > 0 and bool(cut_ends.all())
        inside[k] = bool((~cut_ends).any())
    if not at_cut.any() or not (inside & voting).any():
        return probs
    return np.where(at_cut[:, None], 0.0, probs)


def _revived(question: _Question, beam: _Beam) -> frozenset[int]:
    """The silent passages (`_Question.silent`) that vote for a beam: those revived before, and
    when the answer so far occurs in a voting row only at its cut end and no voting row holds it
    away from its cuts, the silent ones that do: a window that said "no answer" at the first
    step but sees past the cut decides how the answer goes on, rather than the window that
    cannot see (which would end it at its cut)."""
    if not question.silent or question.cuts is None or beam.matches is None or not beam.tokens:
        return beam.revived
    at_cut = inside_voting = False
    waking = []
    for passage_index, ends in zip(question.alive, beam.matches, strict=True):
        length = len(question.passages[passage_index])
        cut_ends = ends == length if question.cuts[passage_index].end else ends < 0
        inside = bool((~cut_ends).any())
        if passage_index in question.silent and passage_index not in beam.revived:
            if inside:
                waking.append(passage_index)
            continue
        at_cut = at_cut or (len(ends) > 0 and bool(cut_ends.all()))
        inside_voting = inside_voting or inside
    if at_cut and not inside_voting and waking:
        return beam.revived | frozenset(waking)
    return beam.revived


def _heard(question: _Question, beam: _Beam) -> np.ndarray:
    """[alive] bool: the beam's rows that vote (all but the silent ones it did not revive)."""
    return np.array([i not in question.silent or i in beam.revived for i in question.alive], bool)


def _best_passage(question: _Question, beam: _Beam) -> int | None:
    """The alive passage most sure of the beam's answer. Extractive, among the passages that hold
    the answer as a span: the vote keeps every passage that did not say "no answer", and one that
    lacks the span can still be the surest of its tokens."""
    if not question.alive:
        return None
    scores = np.where(_heard(question, beam), beam.passage_log_probs, -np.inf)
    if question.extractive and beam.matches is not None:
        holds = np.array([len(positions) > 0 for positions in beam.matches]) & _heard(
            question, beam
        )
        if question.joins is not None and beam.tokens:
            # a passage that holds the answer as whole words before one holding it in a word
            whole = holds & [
                _holds_whole(question.joins[i], positions, len(beam.tokens))
                for i, positions in zip(question.alive, beam.matches, strict=True)
            ]
            holds = whole if whole.any() else holds
        if holds.any():
            scores = np.where(holds, scores, -np.inf)
    return question.alive[int(np.argmax(scores))]


def _holds_whole(joins: np.ndarray, ends: np.ndarray, length: int) -> bool:
    """Whether some occurrence of a span of `length` tokens, given the positions right after
    each (`_Beam.matches`), starts and ends a word of a passage (its `word_joins`)."""
    for end in ends.tolist():
        start = end - length
        if start >= 0 and not joins[start] and (end >= len(joins) or not joins[end]):
            return True
    return False


def _beam_evidence(question: _Question, beam: _Beam, shift: int = 0) -> dict[int, np.ndarray]:
    """{passage index: weight per token} of a finished beam: the mean over its answer tokens of
    each alive passage's attention, weighted by the passage's share of the token's probability.

    `shift` 0 takes the attention of the tokens that predicted the answer tokens (the answer
    being written); 1 that of the answer tokens themselves (as they are read back, predicting
    the next token or [SEP]).
    """
    steps = beam.attention[shift : shift + len(beam.tokens)]
    if not steps:
        return {}
    total = np.zeros_like(steps[0][0])
    for attention, probs in steps:
        mass = probs.sum()
        share = probs / mass if mass > 0 else np.full(len(probs), 1.0 / len(probs))
        total += share[:, None] * attention
    total /= len(steps)
    return {
        passage_index: total[k, : len(question.passages[passage_index])]
        for k, passage_index in enumerate(question.alive)
    }


def _finish(question: _Question, evidence: bool = False, shift: int = 0) -> DecodedAnswer:
    ranked = sorted(question.finished, key=lambda b: -b.score)
    candidates: list[tuple[list[int], float, int | None]] = []
    weights: list[dict[int, np.ndarray]] = []
    seen: set[tuple[int, ...]] = set()
    for beam in ranked:
        if tuple(beam.tokens) in seen:
            continue
        seen.add(tuple(beam.tokens))
        passage = _best_passage(question, beam) if beam.tokens else None
        candidates.append((list(beam.tokens), float(np.exp(beam.score)), passage))
        if evidence:
            weights.append(_beam_evidence(question, beam, shift))
    if not candidates:
        return DecodedAnswer(None, 0.0, None, [], [] if evidence else None)
    tokens, score, passage = candidates[0]
    return DecodedAnswer(
        tokens or None, score, passage if tokens else None, candidates,
        weights if evidence else None,
    )  # fmt: skip


def _select(
    question: _Question,
    log_probs: np.ndarray,
    sep_id: int,
    banned: np.ndarray,
    beam_size: int,
    max_answer_tokens: int,
    force_answer: bool = False,
    attention: np.ndarray | None = None,
) -> None:
    """One beam-search step of a question from its rows' log-probs (rows of `beam.rows`);
    with `force_answer`, an empty beam may not end (the answer has at least one token).
    `attention` [B, slots] (evidence): the rows' attention, kept with the token each beam
    chooses."""
    vocab_size = log_probs.shape[1]
    totals, per_passage = [], []
    seen = [
        question.passage_attention(attention, beam.rows) if attention is not None else None
        for beam in question.beams
    ]
    heard = []
    for beam in question.beams:
        beam.revived = _revived(question, beam)
        heard.append(_heard(question, beam))
        probs = _passage_probs(log_probs, beam)  # [alive, V]
        end_allowed = not (force_answer and not beam.tokens)
        last = len(beam.tokens) + 1 >= max_answer_tokens
        mask = _allowed_mask(vocab_size, beam, question, sep_id, banned, end_allowed, last)
        if mask is not None:
            probs = np.where(mask[None, :], probs, 0.0)
        votes = _edge_votes(np.where(heard[-1][:, None], probs, 0.0), beam, question)
        totals.append(beam.score + _log(_normalized_vote(votes)))
        # a row that abstains still says how sure it is of the token (which passage the answer
        # is named from, `_best_passage`)
        per_passage.append(_log(probs))
    scores = np.stack(totals)  # [beams, V]
    flat = scores.ravel()
    k = min(beam_size, int(np.isfinite(flat).sum()))
    if k == 0:
        question.finished.extend(question.beams)
        question.beams = []
        return
    chosen = np.argpartition(-flat, k - 1)[:k]
    chosen = chosen[np.argsort(-flat[chosen], kind="stable")]
    beams = []
    for index in chosen:
        parent_index, token = divmod(int(index), vocab_size)
        parent = question.beams[parent_index]
        attended = seen[parent_index]
        child = _Beam(
            tokens=parent.tokens if token == sep_id else [*parent.tokens, token],
            score=float(flat[index]),
            passage_log_probs=parent.passage_log_probs + per_passage[parent_index][:, token],
            rows=parent.rows,
            # [SEP] ends the span: the matches stay those of the answer's last token.
            matches=parent.matches
            if token == sep_id
            else _extend_matches(question, parent.matches, token, first=not parent.tokens),
            attention=parent.attention
            if attended is None
            else [
                *parent.attention,
                (attended, np.exp(log_probs[parent.rows, token]) * heard[parent_index]),
            ],
            revived=parent.revived,
        )
        if token == sep_id or len(child.tokens) >= max_answer_tokens:
            question.finished.append(child)
        else:
            beams.append(child)
    # Votes are below 1, so scores only fall: a live beam below the beam_size-th finished one
    # can never become a candidate.
    if len(question.finished) >= beam_size:
        floor = sorted((b.score for b in question.finished), reverse=True)[beam_size - 1]
        beams = [b for b in beams if b.score > floor]
    question.beams = beams


def decode_batch(
    model: StepModel,
    prefixes: Sequence[Sequence[Sequence[int]]],
    *,
    sep_id: int,
    pad_id: int = 0,
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS,
    beam_size: int = DEFAULT_BEAM_SIZE,
    extractive: bool = False,
    banned_ids: Sequence[int] = (),
    force_answer: bool = False,
    evidence: bool = False,
    evidence_layers: int | None = EVIDENCE_LAYERS,
    evidence_shift: int = 0,
    span_search: bool = False,
    span_starts: int = DEFAULT_SPAN_STARTS,
    length_penalty: float | None = None,
    answer_input: str = "previous",
    mask_id: int | None = None,
    cuts: Sequence[Sequence[tuple[bool, bool]]] | None = None,
    continues_word: np.ndarray | None = None,
    joins: Sequence[Sequence[np.ndarray]] | None = None,
) -> list[DecodedAnswer]:
    """Decodes the answers of several questions together, in token ids.

    Args:
        model: the step model.
        prefixes: per question, per passage, the prefix `[CLS] passage [SEP] question [SEP]`
            (segment 0; `models.qa.samples.build_prefix`).
        sep_id: id of [SEP] (ends an answer; as the first token: "no answer here").
        pad_id: id the prefixes are padded with.
        max_answer_tokens: longest answer; a beam that reaches it ends there.
        beam_size: beams per question (1: greedy).
        extractive: answers must be spans of the remaining passages.
        banned_ids: tokens never written ([PAD], [CLS], [MASK]).
        force_answer: the passages are known to hold an answer: never "no answer" (see the
            module's docstring), unless a question has no passage.
        evidence: also keep each candidate's evidence (`DecodedAnswer.evidence`); the model
            must have `prefill_with_attention` and `step_with_attention` (`has_attention`).
        evidence_layers: whose attention: None the mean of all layers, an int one layer.
        evidence_shift: 0 the attention of the tokens that predicted the answer's tokens, 1 that
            of the answer's tokens themselves (`_beam_evidence`).
        span_search: score whole spans instead of voting token by token (needs `extractive`;
            no evidence): `models.qa.span_search`. Candidates are the `beam_size` best spans.
        span_starts: with `span_search`, the starts read per question.
        length_penalty: with `span_search`, spans rank by log-probability / (tokens + 1) **
            length_penalty (0: by log-probability; 1, the default: per token).
        answer_input: what the model's answer slots read (`models.qa.samples.ANSWER_INPUTS`):
            "previous", the answer's last token; "next", the passage's next one (extractive
            only; see the module's docstring).
        mask_id: with "next", the id of [MASK] (what a slot reads where the next token is
            ambiguous).
        cuts: per question, per passage, whether it starts and ends at a cut (`WindowCuts`:
            windows of a longer passage); a row does not vote on the answer's edges beyond its
            cuts (`_edge_votes`), windows that leave at the first step are read on in case the
            answer reaches a cut they see past (`_revived`), and the span search ranks a span
            that touches a cut after the others when another passage holds it inside
            (`models.qa.span_search`). None: every passage is whole.
        continues_word: [vocab] bool, the ids of pieces that continue a word ("##" pieces,
            `BertTokenizer.continues_word`): with `extractive` (and `span_search`), answers are
            spans of whole words. None: any span of tokens.
        joins: with `continues_word`, per question, per passage, whether each token continues
            the word of the one before it (`PassageRow.word_joins`: a "##" piece, or the
            separator and digits of 1.75 or 1,989); None: the "##" pieces alone.

    Returns:
        One `DecodedAnswer` per question, in order.
    """
    if answer_input not in ANSWER_INPUTS:
        raise ValueError(f"answer_input must be one of {ANSWER_INPUTS}, got {answer_input!r}")
    reads_next = answer_input == "next"
    if reads_next and not extractive:
        raise ValueError('answer_input "next" reads the passage after the span: set extractive')
    if reads_next and mask_id is None:
        raise ValueError('answer_input "next" needs mask_id')
    ambiguous_id = -1 if mask_id is None else mask_id
    if span_search and (not extractive or evidence):
        raise ValueError("span_search needs extractive decoding and gives no evidence")
    if length_penalty is not None and not span_search:
        raise ValueError("length_penalty ranks the spans of span_search; set span_search")
    penalty = DEFAULT_LENGTH_PENALTY if length_penalty is None else length_penalty
    if beam_size < 1 or max_answer_tokens < 1:
        raise ValueError(f"need beam_size >= 1 and max_answer_tokens >= 1, got {beam_size}, "
                         f"{max_answer_tokens}")  # fmt: skip
    if evidence and not getattr(model, "has_attention", False):
        raise ValueError("evidence needs a step model that returns attention (has_attention)")
    attending = cast(AttentionStepModel, model)
    banned = np.asarray(sorted(set(banned_ids) - {sep_id}), np.int64)
    questions: list[_Question] = []
    flat_prefixes: list[Sequence[int]] = []
    if cuts is not None and [len(c) for c in cuts] != [len(p) for p in prefixes]:
        raise ValueError("cuts must give one (start, end) pair per passage of every question")
    for index, passages in enumerate(prefixes):
        rows = list(range(len(flat_prefixes), len(flat_prefixes) + len(passages)))
        flat_prefixes.extend(passages)
        texts = []
        for prefix in passages:
            ids = np.asarray(prefix, np.int64)
            ends = np.flatnonzero(ids == sep_id)
            end = int(ends[0]) if len(ends) else len(ids)
            texts.append(ids[PASSAGE_OFFSET:end])
        edges = [WindowCuts(*map(bool, c)) for c in cuts[index]] if cuts is not None else []
        questions.append(
            _Question(
                rows,
                texts,
                edges if any(map(any, edges)) else None,
                extractive,
                (
                    [
                        np.asarray(j[: len(t)], bool)
                        for j, t in zip(joins[index], texts, strict=True)
                    ]
                    if joins is not None
                    else [continues_word[t] for t in texts]
                )
                if extractive and continues_word is not None
                else None,
            )  # fmt: skip
        )
        if not passages:
            questions[-1].result = DecodedAnswer(None, 0.0, None, [])
    if not flat_prefixes:
        return [q.result or DecodedAnswer(None, 0.0, None, []) for q in questions]
    empty_evidence: list[dict[int, np.ndarray]] | None = [] if evidence else None
    for question in questions:
        if question.result is not None:
            question.result.evidence = empty_evidence

    lengths = np.array([len(p) for p in flat_prefixes], np.int32)
    token_ids = np.full((len(flat_prefixes), int(lengths.max())), pad_id, np.int32)
    for i, prefix in enumerate(flat_prefixes):
        token_ids[i, : lengths[i]] = prefix
    attention: np.ndarray | None = None
    if evidence:
        log_probs, layers, state = attending.prefill_with_attention(token_ids, lengths)
        attention = _combine_layers(layers, evidence_layers)
    else:
        log_probs, state = model.prefill(token_ids, lengths)
    log_probs = np.asarray(log_probs, np.float64)

    # First step: passages whose best first token is [SEP] hold no answer and leave.
    for question in questions:
        if question.result is not None:
            continue
        first = log_probs[question.prefill_rows]
        # A passage of no tokens (only spaces) holds no answer, whatever its row would write
        # from the question alone; forced, the least sure of "no answer" among the others stays.
        readable = [i for i, text in enumerate(question.passages) if len(text)]
        question.alive = [i for i in readable if int(np.argmax(first[i])) != sep_id]
        if not question.alive and force_answer and readable:
            question.alive = [readable[int(np.argmin(first[readable, sep_id]))]]
        if not question.alive:
            no_answer = _vote(np.exp(first[:, sep_id : sep_id + 1]))[0]
            question.result = DecodedAnswer(None, float(no_answer), None, [], empty_evidence)
            continue
        if span_search:
            continue
        if question.cuts is not None and any(question.cuts[i].end for i in question.alive):
            # windows that leave are read on, silent, in case an answer reaches a cut that they
            # see past (`_revived`: only a voting row's cut end revives them)
            question.silent = frozenset(
                i for i, edges in enumerate(question.cuts)
                if i not in question.alive and any(edges)
            )  # fmt: skip
            question.alive = sorted([*question.alive, *question.silent])
        question.beams = [
            _Beam(
                tokens=[],
                score=0.0,
                passage_log_probs=np.zeros(len(question.alive)),
                rows=[question.prefill_rows[i] for i in question.alive],
                matches=(
                    [np.arange(len(question.passages[i])) for i in question.alive]
                    if extractive or question.cuts is not None
                    else None
                ),
            )
        ]
        _select(
            question, log_probs, sep_id, banned, beam_size, max_answer_tokens, force_answer,
            attention,
        )  # fmt: skip

    if span_search:
        waiting = [q for q in questions if q.result is None]
        found = search_spans(
            model, state, log_probs, lengths,
            [
                SpanQuestion(q.prefill_rows, q.passages, q.alive, q.cuts, q.joins)
                for q in waiting
            ],
            sep_id=sep_id, banned=banned, max_answer_tokens=max_answer_tokens,
            starts_per_question=span_starts, next_ambiguous_id=mask_id if reads_next else None,
        )  # fmt: skip
        for question, spans in zip(waiting, found, strict=True):
            question.result = _from_spans(spans, beam_size, penalty)
        return [q.result for q in questions if q.result is not None]

    while True:
        live = [q for q in questions if q.result is None and q.beams]
        if not live:
            break
        # New row layout: each live beam gets one row per alive passage, gathered from its
        # parent's rows; the token it feeds is its last one, or with "next" what follows the
        # answer so far in the row's passage.
        gather: list[int] = []
        feed: list[int] = []
        positions: list[int] = []
        for question in live:
            for beam in question.beams:
                new_rows = []
                voting = []
                for k, (passage_index, parent_row) in enumerate(
                    zip(question.alive, beam.rows, strict=True)
                ):
                    new_rows.append(len(gather))
                    gather.append(parent_row)
                    prefill_row = question.prefill_rows[passage_index]
                    positions.append(int(lengths[prefill_row]) + len(beam.tokens) - 1)
                    if reads_next:
                        # A passage without the answer so far keeps its row (a [MASK] fed)
                        # but no longer votes.
                        assert beam.matches is not None
                        voting.append(len(beam.matches[k]) > 0)
                        passage = question.passages[passage_index]
                        ends = beam.matches[k]
                        feed.append(following_token(passage, ends, sep_id, ambiguous_id))
                    else:
                        feed.append(beam.tokens[-1])
                beam.rows = new_rows
                beam.voting = voting if reads_next else None
        state = model.select_rows(state, np.asarray(gather, np.int32))
        step_ids = np.asarray(feed, np.int32)
        step_positions = np.asarray(positions, np.int32)
        if evidence:
            log_probs, layers, state = attending.step_with_attention(
                step_ids, step_positions, state
            )
            attention = _combine_layers(layers, evidence_layers)
        else:
            log_probs, state = model.step(step_ids, step_positions, state)
        log_probs = np.asarray(log_probs, np.float64)
        for question in live:
            _select(
                question, log_probs, sep_id, banned, beam_size, max_answer_tokens,
                attention=attention,
            )  # fmt: skip

    for question in questions:
        if question.result is None:
            question.result = _finish(question, evidence, evidence_shift)
    return [q.result for q in questions if q.result is not None]


def _from_spans(
    spans: Sequence[SpanCandidate], beam_size: int, length_penalty: float
) -> DecodedAnswer:
    """The span search's spans as an answer: the `beam_size` best distinct spans by
    `rank_spans`' score, each with exp(that score) and its passage."""
    candidates: list[tuple[list[int], float, int | None]] = []
    seen: set[tuple[int, ...]] = set()
    for score, span in rank_spans(spans, length_penalty):
        if span.tokens in seen:
            continue
        seen.add(span.tokens)
        candidates.append((list(span.tokens), float(np.exp(score)), span.passage))
        if len(candidates) >= beam_size:
            break
    if not candidates:
        return DecodedAnswer(None, 0.0, None, [])
    tokens, score, passage = candidates[0]
    return DecodedAnswer(tokens, score, passage, candidates)


def _combine_layers(attention: np.ndarray, layers: int | None) -> np.ndarray:
    """[num_layers, B, slots] -> [B, slots]: one layer's, or the mean of all (None)."""
    attention = np.asarray(attention, np.float64)
    return attention.mean(axis=0) if layers is None else attention[layers]


@dataclass
class QAResult:
    """The answer to one question, as the service returns it.

    Attributes:
        answer: the answer text, or None when no passage holds one.
        score: its score (product of the normalised votes of its tokens).
        passage_index: the passage it comes from, or None.
        candidates: (text, score, passage index) of the finished beams, best first, one per
            distinct text; "no answer" is not a candidate.
        evidence: per candidate, its evidence spans (`models.qa.evidence`), heaviest first;
            None when not asked.
        finish_reason: why the answer ended, as in OpenAI's API and `/v1/generate`: "stop", the
            reader ended it; "length", it has `max_answer_tokens` tokens and may be cut short (a
            number or word longer than the limit); None without an answer.
    """

    answer: str | None
    score: float
    passage_index: int | None
    candidates: list[tuple[str, float, int | None]] = field(default_factory=list)
    evidence: list[list[EvidenceSpan]] | None = None
    finish_reason: Literal["stop", "length"] | None = None


def answer_questions(
    model: StepModel,
    tokenizer: BertTokenizer,
    questions: Sequence[tuple[str, Sequence[str]]],
    *,
    max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
    max_question_tokens: int = DEFAULT_MAX_QUESTION_TOKENS,
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS,
    beam_size: int = DEFAULT_BEAM_SIZE,
    extractive: bool = False,
    force_answer: bool = False,
    evidence: bool = False,
    evidence_layers: int | None = EVIDENCE_LAYERS,
    evidence_shift: int = 0,
    span_search: bool = False,
    span_starts: int = DEFAULT_SPAN_STARTS,
    length_penalty: float | None = None,
    placeholders: int = 0,
    answer_input: str = "previous",
    cuts: Sequence[Sequence[tuple[bool, bool]]] | None = None,
    read_by: ReadBy = "passage",
) -> list[QAResult]:
    """Answers several questions, each over its passages, in one batch of model calls.

    Args:
        model: the step model.
        tokenizer: the model's tokenizer.
        questions: (question, passages) pairs.
        max_passage_tokens: passage WordPieces read (the model's limit).
        max_question_tokens: question WordPieces read.
        max_answer_tokens: longest answer in WordPieces.
        beam_size: beams per question.
        extractive: answers must be spans of the passages.
        force_answer: the passages are known to hold an answer; never null (`decode_batch`).
        evidence, evidence_layers, evidence_shift: also each candidate's evidence spans
            (`decode_batch`, `models.qa.evidence`).
        span_search, span_starts, length_penalty: score whole spans (`decode_batch`).
        placeholders: K of a model trained with placeholders for unknown text (its manifest's
            `placeholders.count`, `models.qa.placeholders`); 0: unknown text is `[UNK]`.
        answer_input: what the model's answer slots read (its manifest's
            `decoding.answer_input`, `decode_batch`).
        cuts: per question, per passage, whether it starts and ends at a cut (the windows of a
            longer passage, `models.qa.readers.window_passages`; `decode_batch`); None: every
            passage is whole. A passage longer than `max_passage_tokens` ends at a cut too.
        read_by: "sentence": each passage is read as its sentences, each a row that votes
            (`models.qa.sentences`; answers still name the passage); "passage": whole.

    Returns:
        One `QAResult` per question.
    """
    mapper = PlaceholderMap(tokenizer, placeholders) if placeholders else None
    owners: list[tuple[int, ...] | None] = []  # per question, each row's passage when they differ
    prefixes = []
    rows: list[list[PassageRow]] = []
    mappings: list[Placeholders | None] = []
    for question, passages in questions:
        mapping = (
            mapper.assign(question, passages, question_tokens=max_question_tokens)
            if mapper
            else None
        )
        mappings.append(mapping)
        encode = tokenizer if mapping is None else mapping
        question_ids = encode.piece_ids(question)[:max_question_tokens]
        prefix, read, passage_of = [], [], []
        for j, passage in enumerate(passages):
            all_ids, all_offsets = encode.piece_ids_with_offsets(passage)
            start, end = cuts[len(rows)][j] if cuts is not None else (False, False)
            units = reading_units(passage, all_offsets, read_by)
            for first, last in units:
                ids, offsets = all_ids[first:last], all_offsets[first:last]
                edges = WindowCuts(
                    bool(start) and first == 0,
                    (bool(end) and last == len(all_ids)) or len(ids) > max_passage_tokens,
                )
                prefix.append(join_prefix(tokenizer, ids[:max_passage_tokens], question_ids))
                read.append(
                    PassageRow(
                        ids[:max_passage_tokens], offsets[:max_passage_tokens], passage, edges
                    )
                )
                passage_of.append(j)
        if mapping is not None and len(read) > len(passages):
            mappings[-1] = replace(mapping, rows=tuple(passage_of))
        owners.append(tuple(passage_of) if len(read) > len(passages) else None)
        prefixes.append(prefix)
        rows.append(read)
    decoded = decode_batch(
        model,
        prefixes,
        sep_id=tokenizer.sep_id,
        pad_id=tokenizer.pad_id,
        max_answer_tokens=max_answer_tokens,
        beam_size=beam_size,
        extractive=extractive,
        banned_ids=banned_ids(tokenizer),
        force_answer=force_answer,
        evidence=evidence,
        evidence_layers=evidence_layers,
        evidence_shift=evidence_shift,
        span_search=span_search,
        span_starts=span_starts,
        length_penalty=length_penalty,
        answer_input=answer_input,
        mask_id=tokenizer.mask_id,
        cuts=[[row.cuts for row in read] for read in rows],
        continues_word=tokenizer.continues_word,
        joins=[[row.word_joins(tokenizer.continues_word) for row in read] for read in rows],
    )
    results = results_from_decoded(
        tokenizer, decoded, rows, mappings if mapper else None, max_answer_tokens
    )
    return [
        result if rows_of is None else passages_of_rows(result, rows_of)
        for result, rows_of in zip(results, owners, strict=True)
    ]


def passages_of_rows(result: QAResult, owners: Sequence[int]) -> QAResult:
    """A result over rows (a passage's windows or sentences) as one over the request's
    passages: row indices become the indices of the passages they were cut from; a candidate or
    evidence span found in two overlapping windows is kept once."""

    def owner(index: int | None) -> int | None:
        return None if index is None else owners[index]

    evidence = None
    if result.evidence is not None:
        evidence = []
        for spans in result.evidence:
            kept: dict[tuple[int, int, int], EvidenceSpan] = {}
            for span in spans:
                moved = replace(span, passage_index=owners[span.passage_index])
                key = (moved.passage_index, moved.start, moved.end)
                if key not in kept:
                    kept[key] = moved
            evidence.append(list(kept.values()))
    return replace(
        result,
        passage_index=owner(result.passage_index),
        candidates=[(text, score, owner(index)) for text, score, index in result.candidates],
        evidence=evidence,
    )


def banned_ids(tokenizer: BertTokenizer) -> tuple[int, ...]:
    """Tokens an answer never contains ([SEP] is not among them: it ends the answer)."""
    return (tokenizer.pad_id, tokenizer.cls_id, tokenizer.mask_id)


@dataclass(frozen=True)
class PassageRow:
    """A row's passage as the model read it, which answers and evidence are cut from.

    Attributes:
        ids: its tokens read (placeholders included: the ids of the row's prefix).
        offsets: each token's characters [start, end) in `text`.
        text: the passage (a window's offsets count in the whole passage it was cut from).
        cuts: whether the tokens read start and end at a cut of the passage (a window, or the
            passage read up to the model's limit), `decode_batch(cuts=)`.
    """

    ids: Sequence[int]
    offsets: Sequence[tuple[int, int]]
    text: str
    cuts: WindowCuts = WindowCuts()

    def word_joins(self, continues_word: np.ndarray) -> np.ndarray:
        """[tokens] bool: whether each token continues the word of the one before it: a "##"
        piece (`continues_word`), and a number's decimal point or thousands separator between
        two digits, with the digits after it: BERT's basic tokenizer splits 1.75 into 1 . 75 as
        punctuation, which a reader takes for one word. Read from the passage's text around each
        token (a separator the vocabulary lacks, [UNK], counts too, and a window's first or last
        token sees past its cut); see `_joins_digits`."""
        ids = np.asarray(self.ids[: len(self.offsets)], np.int64)
        joins = continues_word[ids]
        text = self.text
        for i, (start, end) in enumerate(self.offsets[: len(ids)]):
            if end - start == 1 and _joins_digits(text, start):
                joins[i] = True  # the separator
            elif (
                text[start : start + 1].isdigit() and start >= 2 and _joins_digits(text, start - 1)
            ):
                joins[i] = True  # the digits after it
        return joins


def _joins_digits(text: str, at: int) -> bool:
    """Whether text[at] is a decimal point between digits (1.75, 2026.12.05) or a thousands
    separator before a group of exactly three (1,989; not the list 1,2,3 nor 3,25)."""
    if at < 1 or not text[at - 1].isdigit():
        return False
    if text[at] == ".":
        return text[at + 1 : at + 2].isdigit()
    group = text[at + 1 : at + 5]
    return (
        text[at] == "," and group[:3].isdigit() and len(group[:3]) == 3 and not group[3:].isdigit()
    )


def span_text(
    token_ids: Sequence[int], row: PassageRow, continues_word: np.ndarray | None = None
) -> str | None:
    """The passage's own characters for an answer whose tokens are a span of it, from its first
    token's start to its last one's end: the text as the user wrote it (case, width, accents,
    words the vocabulary lacks, the blanks between words), which writing the tokens back cannot
    give (an uncased vocabulary's `london`, a `[UNK]` dropped). The first place the span occurs
    as whole words (given `continues_word`, `PassageRow.word_joins`: `washington` is Washington,
    not the start of Washingtonian), else the first place it occurs; None when it occurs nowhere (a
    generated answer, not a span)."""
    n = len(token_ids)
    ids = np.asarray(row.ids[: len(row.offsets)])
    if n == 0 or n > len(ids):
        return None
    wanted = np.asarray(token_ids)
    places = [
        start
        for start in np.flatnonzero(ids[: len(ids) - n + 1] == wanted[0]).tolist()
        if np.array_equal(ids[start : start + n], wanted)
    ]
    if continues_word is not None:
        joins = row.word_joins(continues_word)
        whole = [
            start
            for start in places
            if not joins[start] and (start + n == len(ids) or not joins[start + n])
        ]
        places = whole or places
    if not places:
        return None
    begin, end = row.offsets[places[0]][0], row.offsets[places[0] + n - 1][1]
    return row.text[begin:end] if end > begin else None


def results_from_decoded(
    tokenizer: BertTokenizer,
    decoded: Sequence[DecodedAnswer],
    rows: Sequence[Sequence[PassageRow]] | None = None,
    placeholders: Sequence[Placeholders | None] | None = None,
    max_answer_tokens: int | None = None,
) -> list[QAResult]:
    """Token ids to text: the answer, and one candidate per distinct non-empty text.

    Args:
        tokenizer: the model's tokenizer.
        decoded: `decode_batch`'s answers.
        rows: per question, its rows' passages (`PassageRow`): an answer that is a span of its
            passage is that passage's characters (`span_text`), and a candidate's evidence
            becomes spans (`QAResult.evidence`, when decoded with it); None: every answer is
            written from its tokens.
        placeholders: per question, its placeholders (`models.qa.placeholders`): each one in an
            answer written from its tokens is the text it stands for; None: no placeholders.
        max_answer_tokens: the decoding's limit: an answer that long ends for "length"
            (`QAResult.finish_reason`); None: every answer ends for "stop".
    """

    def text_of(i: int, ids: Sequence[int], passage: int | None) -> str:
        if rows is not None and passage is not None and 0 <= passage < len(rows[i]):
            text = span_text(ids, rows[i][passage], tokenizer.continues_word)
            if text is not None:
                return text
        mapping = placeholders[i] if placeholders is not None else None
        return answer_text(tokenizer, ids, mapping, passage)

    results = []
    for i, answer in enumerate(decoded):
        candidates: list[tuple[str, float, int | None]] = []
        spans: list[list[EvidenceSpan]] | None = None
        if rows is not None and answer.evidence is not None:
            spans = []
            offsets = [row.offsets for row in rows[i]]
            texts = [row.text for row in rows[i]]
        seen: set[str] = set()
        for k, (ids, score, passage) in enumerate(answer.candidates):
            text = text_of(i, ids, passage)
            if text and text not in seen:
                seen.add(text)
                candidates.append((text, score, passage))
                if spans is not None and answer.evidence is not None:
                    spans.append(evidence_spans(answer.evidence[k], offsets, texts))
        text = text_of(i, answer.token_ids, answer.passage_index) if answer.token_ids else ""
        at_limit = (
            max_answer_tokens is not None and len(answer.token_ids or ()) >= max_answer_tokens
        )
        results.append(
            QAResult(text or None, answer.score, answer.passage_index if text else None,
                     candidates, spans, ("length" if at_limit else "stop") if text else None)
        )  # fmt: skip
    return results


def answer_question(
    model: StepModel,
    tokenizer: BertTokenizer,
    question: str,
    passages: Sequence[str],
    **options: Any,
) -> QAResult:
    """One question over its passages; `options` as in `answer_questions`."""
    return answer_questions(model, tokenizer, [(question, passages)], **options)[0]
