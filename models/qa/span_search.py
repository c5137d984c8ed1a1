"""Span search for extractive answers (`decode_batch(span_search=True)`).

Token-by-token decoding (greedy or beams, `models.qa.decoding`) commits to an answer's first
token before it has seen how the answer would go on. An extractive answer is a span of a
passage, so the spans can be scored whole instead, as span readers do (BERT on SQuAD takes the
best span over all windows of a document): from each of the `span_starts` most likely starts of
the question (a passage position whose token the first step likes best), the passage's own
tokens are fed one by one, and every step gives the log-probability of the span so far closed by
[SEP]. A span's score is its whole log-probability in its passage,

    log p(a_1 | passage) + sum_k log p(a_k | passage, a_<k) + log p([SEP] | passage, a),

so every span of up to `max_answer_tokens` tokens from those starts is scored exactly, and the
best of them over all passages is the answer. `max_answer_tokens` steps of one row per start
cost about what reading the passages did.

A passage that is the window of a longer one (`SpanQuestion.cuts`) cannot score a span that
touches its cut: one that ends at its last token, where the passage goes on (its [SEP] is
likely only because the window stops there), or starts at its first token, where the passage
began before it. When another passage being read holds the same tokens away from its own cuts
(the overlapping window, which sees past that cut), such a span is left to it, as BERT's "max
context" rule does: it ranks after every other span of the question, the answer only when the
question has no other. A span no other passage holds inside is scored as any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.qa.samples import next_token

# Starts read per question: the positions whose token the first step likes best (8: what the
# CMRC 2018 measurement used, docs/benchmarks.md; each start costs one row for up to
# max_answer_tokens steps).
DEFAULT_SPAN_STARTS = 8
# A start whose span so far is this many nats below the question's best finished span stops:
# its continuations can only fall further, so ranking by probability (length penalty 0) stays
# exact. With a length penalty this is a heuristic, not a bound: a long span 30 nats below a
# short best one can still have the better mean per token, and is not followed.
PRUNE_MARGIN = 30.0
# Spans rank by their mean log-probability per token (`rank_spans`) unless told otherwise: by
# the probability itself (0) the search prefers the shortest spans, which is what made the
# token-by-token reader's CMRC 2018 answers half the gold's length (docs/benchmarks.md).
DEFAULT_LENGTH_PENALTY = 1.0


@dataclass(frozen=True)
class SpanCandidate:
    """A span of a passage: its tokens, log p(tokens, [SEP] | passage) and the passage."""

    tokens: tuple[int, ...]
    log_prob: float
    passage: int


@dataclass(frozen=True)
class SpanQuestion:
    """What the span search needs of one question.

    Attributes:
        prefill_rows: per passage, its row in the prefill's log-probs and state.
        passages: per passage, its token ids.
        alive: the passages to read.
        cuts: per passage, whether it starts and ends at a window's cut
            (`models.qa.decoding.WindowCuts`); None: every passage is whole.
        joins: per passage, whether each piece continues the word of the one before it
            (`models.qa.decoding.PassageRow.word_joins`): spans start and end at words;
            None: any span.
    """

    prefill_rows: Sequence[int]
    passages: Sequence[np.ndarray]
    alive: Sequence[int]
    cuts: Sequence[tuple[bool, bool]] | None = None
    joins: Sequence[np.ndarray] | None = None

    def starts_word(self, passage: int, position: int) -> bool:
        """Whether a span may start (or the one before it end) at a position: the passage's end
        or a piece that begins a word."""
        return (
            self.joins is None
            or position >= len(self.passages[passage])
            or not self.joins[passage][position]
        )

    def touches_cut(self, passage: int, start: int, end: int) -> bool:
        """Whether the span [start, end] (inclusive) of a passage starts or ends at its cut."""
        if self.cuts is None:
            return False
        starts_cut, ends_cut = self.cuts[passage]
        return (starts_cut and start == 0) or (ends_cut and end == len(self.passages[passage]) - 1)

    def held_inside_elsewhere(self, passage: int, tokens: np.ndarray) -> bool:
        """Whether another alive passage holds `tokens` as a span that touches none of its
        cuts."""
        n = len(tokens)
        for other in self.alive:
            ids = np.asarray(self.passages[other])
            if other == passage or len(ids) < n:
                continue
            for start in np.flatnonzero(ids[: len(ids) - n + 1] == tokens[0]).tolist():
                if np.array_equal(ids[start : start + n], tokens) and not self.touches_cut(
                    other, start, start + n - 1
                ):
                    return True
        return False


def span_starts(
    first_log_probs: np.ndarray,
    question: SpanQuestion,
    count: int,
    sep_id: int,
    banned: np.ndarray,
) -> list[tuple[float, int, int]]:
    """The `count` best (log p of the first token, passage, position) of a question's alive
    passages; ties in passage and position order."""
    starts: list[tuple[float, int, int]] = []
    for passage in question.alive:
        ids = np.asarray(question.passages[passage])
        scores = first_log_probs[question.prefill_rows[passage]][ids]
        ok = (ids != sep_id) & ~np.isin(ids, banned)
        if question.joins is not None and (~question.joins[passage] & ok).any():
            ok &= ~question.joins[passage]  # spans start at words' starts, if any
        starts.extend((float(scores[s]), passage, int(s)) for s in np.flatnonzero(ok))
    starts.sort(key=lambda start: -start[0])  # stable: ties keep passage and position order
    return starts[:count]


def search_spans(
    model: Any,
    state: Any,
    first_log_probs: np.ndarray,
    lengths: np.ndarray,
    questions: Sequence[SpanQuestion],
    *,
    sep_id: int,
    banned: np.ndarray,
    max_answer_tokens: int,
    starts_per_question: int = DEFAULT_SPAN_STARTS,
    next_ambiguous_id: int | None = None,
) -> list[list[SpanCandidate]]:
    """Scores every span of up to `max_answer_tokens` tokens from each question's best starts.

    Args:
        model: the step model (`models.qa.decoding.StepModel`).
        state: its state after the prefill whose log-probs are `first_log_probs` [B, V].
        lengths: the prefill rows' prefix lengths [B].
        questions: the questions, with their rows in the prefill.
        sep_id: id of [SEP].
        banned: ids never written.
        max_answer_tokens: longest span.
        starts_per_question: starts read per question.
        next_ambiguous_id: for a model whose answer slots read the passage's next token, not
            the span's last one (`models.qa.samples.ANSWER_INPUTS`: "next"), the id read where
            that token is ambiguous ([MASK], `models.qa.samples.next_token`); None: the span's.

    Returns:
        Per question, its distinct spans (per passage), best first; with `SpanQuestion.cuts`,
        the spans that touch a cut and another passage holds inside only when it has no other.
    """
    rows: list[tuple[int, int, int]] = []  # (question, passage, start) per row
    cumulative: list[float] = []
    for index, question in enumerate(questions):
        for score, passage, start in span_starts(
            first_log_probs, question, starts_per_question, sep_id, banned
        ):
            rows.append((index, passage, start))
            cumulative.append(score)
    found: list[dict[tuple[int, tuple[int, ...]], float]] = [{} for _ in questions]
    at_cuts: list[dict[tuple[int, tuple[int, ...]], float]] = [{} for _ in questions]
    # spans of max_answer_tokens that end inside a word: the answer only when a question has no
    # other (a forced answer where no whole word fits in the limit)
    in_words: list[dict[tuple[int, tuple[int, ...]], float]] = [{} for _ in questions]
    if not rows:
        return [[] for _ in questions]
    gather = np.asarray([questions[q].prefill_rows[p] for q, p, _ in rows], np.int32)
    state = model.select_rows(state, gather)
    prefix_lengths = np.asarray(lengths)[gather]  # a row's first answer position
    live = np.arange(len(rows))
    total = np.asarray(cumulative, np.float64)
    best = np.full(len(questions), -np.inf)
    for step in range(max_answer_tokens):
        if next_ambiguous_id is None:
            feed = [int(questions[q].passages[p][s + step]) for q, p, s in (rows[r] for r in live)]
        else:
            feed = [
                next_token(ids, ids[s : s + step + 1], sep_id, next_ambiguous_id)
                for ids, s in ((questions[q].passages[p], s) for q, p, s in (rows[r] for r in live))
            ]
        positions = (prefix_lengths[live] + step).astype(np.int32)
        log_probs, state = model.step(np.asarray(feed, np.int32), positions, state)
        log_probs = np.asarray(log_probs, np.float64)
        keep = []
        for k, r in enumerate(live):
            q, p, s = rows[r]
            ids = questions[q].passages[p]
            closed = total[r] + log_probs[k, sep_id]
            key = (p, tuple(int(t) for t in ids[s : s + step + 1]))
            # a span that ends inside a word is no answer (its longer spans may be), unless
            # max_answer_tokens cuts it there
            if not questions[q].starts_word(p, s + step + 1):
                if step + 1 == max_answer_tokens:
                    in_words[q][key] = max(in_words[q].get(key, -np.inf), closed)
            elif questions[q].touches_cut(p, s, s + step) and questions[q].held_inside_elsewhere(
                p, ids[s : s + step + 1]
            ):
                at_cuts[q][key] = max(at_cuts[q].get(key, -np.inf), closed)
            else:
                found[q][key] = max(found[q].get(key, -np.inf), closed)
                best[q] = max(best[q], closed)
            if s + step + 1 < len(ids):
                nxt = int(ids[s + step + 1])
                total[r] += log_probs[k, nxt] if nxt != sep_id else -np.inf
                if np.isfinite(total[r]) and total[r] > best[q] - PRUNE_MARGIN:
                    keep.append(k)
        if not keep:
            break
        if len(keep) < len(live):
            state = model.select_rows(state, np.asarray(keep, np.int32))
            live = live[keep]
    return [
        sorted(
            (SpanCandidate(tokens, score, passage) for (passage, tokens), score in spans.items()),
            key=lambda c: -c.log_prob,
        )
        for spans in (
            inside or cut or in_word
            for inside, cut, in_word in zip(found, at_cuts, in_words, strict=True)
        )
    ]


def rank_spans(
    spans: Sequence[SpanCandidate], length_penalty: float = DEFAULT_LENGTH_PENALTY
) -> list[tuple[float, SpanCandidate]]:
    """(ranking score, span), best first: log p / (tokens + 1) ** length_penalty, the +1 for the
    [SEP] that closes the span (its log-probability is part of the score). 0 ranks by the
    probability itself, which favours short spans (every token multiplies in a factor below
    1); 1 by the mean per token; above 1 longer spans are favoured further."""
    ranked = [
        (span.log_prob / float(len(span.tokens) + 1) ** length_penalty, span) for span in spans
    ]
    ranked.sort(key=lambda item: -item[0])
    return ranked
