"""Training samples and decoding prefixes for reading comprehension as seq2seq (UniLM).

The layout is the one of bert4keras' `task_reading_comprehension_by_seq2seq.py`:

    [CLS] passage [SEP] question [SEP] answer [SEP]
    |------------- segment 0 -------------|-- segment 1 --|

The source (passage and question, with their [CLS] and [SEP]s) is segment 0 and reads itself
bidirectionally; the target (answer and its closing [SEP]) is segment 1 and reads the source and
itself left to right (the UniLM seq2seq mask, Dong et al. 2019, Fig. 1). A passage that does not
hold the answer is trained with an empty answer, so the model learns to write [SEP] at once: the
decoder's first-step "no answer here" rule.

Loss convention: `loss_mask[t]` is 1 when token t is a *target* (an answer token or the final
[SEP]), aligned with `token_ids`. The logits at position t predict token t + 1, so the loss pairs
`logits[:, :-1]` with `token_ids[:, 1:]` under `loss_mask[:, 1:]` (`seq2seq.seq2seq_loss`); the
last source token (the question's [SEP]) is the one that predicts the answer's first token.

Length limits count a part's WordPieces without its special tokens; a packed sample is at most
`max_passage_tokens + max_question_tokens + max_answer_tokens + SPECIAL_TOKENS` long.

What an answer slot reads (`ANSWER_INPUTS`). "previous", UniLM's: the answer token written last,
so each next token is predicted from the one before it. "next", for extractive readers: the
passage token that follows the span written so far (the token that would extend the answer, or
what ends it: `。`, `的`, the passage's [SEP]); the model then decides, at each step, whether that
token belongs to the answer or the answer ends before it, which is a reading of the sentence
around it rather than a recall of the answers it saw in training (a 2-layer reader that reads the
previous token cuts a user's own values where the values it trained on end: 柯基犬 -> 柯基, 1937
-> 193). The targets are the same; only the inputs of the answer slots differ, so the sample keeps
its targets apart (`QASample.label_ids`). Where the span so far occurs more than once in the
passage with different next tokens (1958 and 1979 after "19"), the next token depends on which
occurrence is the answer, which the slot's input cannot tell: the slot reads [MASK] instead, and
the reader finds the occurrence again from the question, as a "previous" reader does at every
step. The decoder applies the same rule to the answer it is writing (`models.qa.decoding`), so
training and answering feed the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.bert.tokenizer import BertTokenizer
from models.qa.placeholders import Placeholders

# bert4keras' defaults for WebQA / SogouQA (max_p_len, max_q_len, max_a_len).
DEFAULT_MAX_PASSAGE_TOKENS = 256
DEFAULT_MAX_QUESTION_TOKENS = 64
DEFAULT_MAX_ANSWER_TOKENS = 32
# [CLS] and the [SEP]s closing passage and question.
PREFIX_SPECIAL_TOKENS = 3
# All four special tokens of a packed sample: the prefix's three and the answer's closing [SEP].
SPECIAL_TOKENS = PREFIX_SPECIAL_TOKENS + 1
SOURCE_SEGMENT = 0
TARGET_SEGMENT = 1
# What an answer slot reads: the token written before it, or the passage's next one (above).
ANSWER_INPUTS = ("previous", "next")


@dataclass
class QASample:
    """One packed training sample, unpadded.

    Attributes:
        token_ids: `[CLS] passage [SEP] question [SEP] answer [SEP]` WordPiece ids.
        segment_ids: 0 on the source (up to the question's [SEP]), 1 on answer and final [SEP].
        loss_mask: 1 on the tokens to predict (answer tokens and the final [SEP]), aligned with
            `token_ids`; the prediction of token t comes from the logits at t - 1.
        label_ids: the tokens to predict, aligned with `token_ids`, when the answer slots read
            something else than the answer (`answer_input="next"`); None: `token_ids` are the
            labels.
    """

    token_ids: list[int]
    segment_ids: list[int]
    loss_mask: list[int]
    label_ids: list[int] | None = None


def max_prefix_length(max_passage_tokens: int, max_question_tokens: int) -> int:
    """Longest `[CLS] passage [SEP] question [SEP]` under these limits."""
    return max_passage_tokens + max_question_tokens + PREFIX_SPECIAL_TOKENS


def max_sample_length(
    max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
    max_question_tokens: int = DEFAULT_MAX_QUESTION_TOKENS,
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS,
) -> int:
    """Longest packed sample (the position table must hold at least this many)."""
    return max_passage_tokens + max_question_tokens + max_answer_tokens + SPECIAL_TOKENS


def build_prefix(
    tokenizer: BertTokenizer,
    passage: str,
    question: str,
    max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
    max_question_tokens: int = DEFAULT_MAX_QUESTION_TOKENS,
    placeholders: Placeholders | None = None,
) -> tuple[list[int], list[int]]:
    """`[CLS] passage [SEP] question [SEP]`, all segment 0: what decoding starts from.

    Args:
        tokenizer: the model's WordPiece tokenizer.
        passage: the passage text (cut to its first `max_passage_tokens` WordPieces).
        question: the question text (cut to its first `max_question_tokens` WordPieces).
        max_passage_tokens: passage WordPieces kept.
        max_question_tokens: question WordPieces kept.
        placeholders: the question's placeholders (`models.qa.placeholders`), for a model
            trained with them; None: unknown text is `[UNK]`.

    Returns:
        (token_ids, segment_ids).
    """
    piece_ids = tokenizer.piece_ids if placeholders is None else placeholders.piece_ids
    token_ids = join_prefix(
        tokenizer,
        piece_ids(passage)[:max_passage_tokens],
        piece_ids(question)[:max_question_tokens],
    )
    return token_ids, [SOURCE_SEGMENT] * len(token_ids)


def join_prefix(
    tokenizer: BertTokenizer, passage_ids: Sequence[int], question_ids: Sequence[int]
) -> list[int]:
    """`[CLS] passage [SEP] question [SEP]` from WordPiece ids already cut to their limits
    (one question over several passages is tokenised once)."""
    return [tokenizer.cls_id, *passage_ids, tokenizer.sep_id, *question_ids, tokenizer.sep_id]


def build_sample(
    tokenizer: BertTokenizer,
    passage: str,
    question: str,
    answer: str | None,
    max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
    max_question_tokens: int = DEFAULT_MAX_QUESTION_TOKENS,
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS,
    placeholders: Placeholders | None = None,
    answer_input: str = "previous",
) -> QASample:
    """`[CLS] passage [SEP] question [SEP] answer [SEP]` with segments and loss mask.

    Args:
        tokenizer: the model's WordPiece tokenizer.
        passage: the passage text.
        question: the question text.
        answer: the answer, or None / "" when the passage does not hold it (the target is then
            the closing [SEP] alone, which teaches the first-step "no answer" signal).
        max_passage_tokens: passage WordPieces kept.
        max_question_tokens: question WordPieces kept.
        max_answer_tokens: answer WordPieces kept.
        placeholders: the question's placeholders (`build_prefix`); the answer's unknown text
            takes the same ones.
        answer_input: what the answer slots read (`ANSWER_INPUTS`). "next" needs the answer to
            be a span of the passage as read; an answer that is not keeps "previous" inputs.

    Returns:
        The unpadded `QASample`.
    """
    if answer_input not in ANSWER_INPUTS:
        raise ValueError(f"answer_input must be one of {ANSWER_INPUTS}, got {answer_input!r}")
    prefix_ids, prefix_segments = build_prefix(
        tokenizer, passage, question, max_passage_tokens, max_question_tokens, placeholders
    )
    piece_ids = tokenizer.piece_ids if placeholders is None else placeholders.piece_ids
    answer_ids = piece_ids(answer)[:max_answer_tokens] if answer else []
    target_ids = [*answer_ids, tokenizer.sep_id]
    inputs = None
    if answer_input == "next" and answer_ids:
        passage_ids = prefix_ids[1 : prefix_ids.index(tokenizer.sep_id)]
        inputs = next_token_inputs(passage_ids, answer_ids, tokenizer.sep_id, tokenizer.mask_id)
    return QASample(
        token_ids=prefix_ids + (target_ids if inputs is None else [*inputs, tokenizer.sep_id]),
        segment_ids=prefix_segments + [TARGET_SEGMENT] * len(target_ids),
        loss_mask=[0] * len(prefix_ids) + [1] * len(target_ids),
        label_ids=None if inputs is None else prefix_ids + target_ids,
    )


def next_token_inputs(
    passage_ids: Sequence[int], answer_ids: Sequence[int], end_id: int, ambiguous_id: int
) -> list[int] | None:
    """The "next" inputs of an answer's slots: slot k reads `next_token` of the answer's first
    k + 1 tokens; None when the answer is not a span of the passage."""
    n = len(answer_ids)
    ids = list(passage_ids)
    if not any(ids[s : s + n] == list(answer_ids) for s in range(len(ids) - n + 1)):
        return None
    return [next_token(ids, answer_ids[: k + 1], end_id, ambiguous_id) for k in range(n)]


def next_token(
    passage_ids: Sequence[int] | np.ndarray,
    span: Sequence[int] | np.ndarray,
    end_id: int,
    ambiguous_id: int,
) -> int:
    """What a "next" reader's slot reads after `span` (non-empty) in a passage: the token that
    follows every occurrence of the span (`end_id`, the passage's [SEP], past its end), or
    `ambiguous_id` ([MASK]) when the occurrences go on differently or there is none."""
    ids = np.asarray(passage_ids)
    wanted = np.asarray(span)
    n = len(wanted)
    if n == 0 or n > len(ids):
        return ambiguous_id
    windows = np.lib.stride_tricks.sliding_window_view(ids, n)
    ends = np.flatnonzero((windows == wanted).all(axis=1)) + n
    return following_token(ids, ends, end_id, ambiguous_id)


def following_token(
    passage_ids: Sequence[int] | np.ndarray, ends: np.ndarray, end_id: int, ambiguous_id: int
) -> int:
    """`next_token` from where the span's occurrences end (`ends`, each one past its last
    token), as a decoder that tracks them has them."""
    following = {int(passage_ids[e]) if e < len(passage_ids) else end_id for e in ends.tolist()}
    return following.pop() if len(following) == 1 else ambiguous_id


def pad_samples(
    samples: list[QASample], pad_id: int, pad_to: int | None = None, with_labels: bool = False
) -> dict[str, np.ndarray]:
    """Pad a list of samples into the model's inputs plus `loss_mask` ([B, L] int32 each).

    Args:
        samples: unpadded samples.
        pad_id: the vocabulary's [PAD] id.
        pad_to: pad every row to this length (at least the longest sample); default the longest.
        with_labels: always add "label_ids" (a training step's inputs keep one signature even
            when no sample of the batch has an answer to read past).

    Returns:
        {"token_ids", "segment_ids", "padding_mask", "loss_mask"}: what `UniLMSeq2Seq.fit` reads;
        and "label_ids" when a sample has its own labels (`QASample.label_ids`).
    """
    longest = max((len(s.token_ids) for s in samples), default=0)
    width = max(longest, pad_to or 0)
    batch = {
        "token_ids": np.full((len(samples), width), pad_id, np.int32),
        "segment_ids": np.zeros((len(samples), width), np.int32),
        "padding_mask": np.zeros((len(samples), width), np.int32),
        "loss_mask": np.zeros((len(samples), width), np.int32),
    }
    for i, sample in enumerate(samples):
        n = len(sample.token_ids)
        batch["token_ids"][i, :n] = sample.token_ids
        batch["segment_ids"][i, :n] = sample.segment_ids
        batch["padding_mask"][i, :n] = 1
        batch["loss_mask"][i, :n] = sample.loss_mask
    if with_labels or any(sample.label_ids is not None for sample in samples):
        labels = batch["token_ids"].copy()
        for i, sample in enumerate(samples):
            if sample.label_ids is not None:
                labels[i, : len(sample.label_ids)] = sample.label_ids
        batch["label_ids"] = labels
    return batch
