"""The "exact match" input feature of DrQA (Chen et al., "Reading Wikipedia to Answer Open-Domain
Questions", ACL 2017, Sec. 3.1: a passage token is marked when it also occurs in the question),
over n-grams rather than single tokens, for a source `[CLS] A [SEP] B [SEP]` (QA: A the
passage, B the question).

A token of A is marked when a bigram of A that contains it also occurs in B, and the same for
B's tokens against A. Equivalently: a token is marked when it lies inside a common substring of
A and B at least two tokens long (every such substring is made of common bigrams, and every
common bigram is such a substring), so no longer n-gram level is needed.

Why bigrams and not single tokens: over a character vocabulary a name is two or three tokens,
and the names the model must tell apart share them ("张伟" asked, "张芳" and "李伟" in the
passage; each shares a character with the question). Unigram marks would mark all three; bigram
marks mark the whole name "张伟" only (of "李伟住在上海" asked `张伟住在哪里？`, 伟 is marked, as
part of the common "伟住在", but 李 is not), and leave the name of a person no passage names
unmarked in the question, which makes "no answer" a matter of reading one bit. What bigrams
lose: a single-character word in common (rare over names; the attention still sees the tokens).

Why in the graph and not as a third segment id in the inputs: the decoders' `prefill(token_ids,
lengths)` protocol (in-memory and SavedModel, shared with generation) takes no segment ids, so
every caller, the service included, would have had to compute and pass them, the segment table
would have grown (a new row for pretrained checkpoints) and the UniLM mask would have had to stop
reading the cumulative sum of the segment ids. Here the inputs, the mask, the signatures and the
service are unchanged, and a model without the feature is the same model as before.

A third, sentence-level feature (`sentence_overlap`, `--sentence-feature count`): each token of A
gets how many distinct bigrams of B its sentence holds. The token-level marks say that "张伟"
and "住在" occur in the passage; in "张伟今年35岁。李伟住在上海。张伟住在北京。" they do not say
which sentence holds both, which a 2-layer encoder trained for minutes often got wrong on passages
of five sentences and more (the demo's held-out errors, docs/benchmarks.md, issue 18's sixth
pass). The counts (1, 2 and 3 there) point at the sentence about the person and the fact asked,
as sentence selection does in retrieval-based QA.

The feature is computed inside the model's graph from `token_ids` and `segment_ids` (the
embeddings layer, `models.bert.bert_layers.BertEmbeddings(overlap_sep_id=...)`), so training,
the exported SavedModel's `prefill` and `full_logits`, and every caller of them share this one
function; a written (target, segment != 0) token is never marked, so cached decoding steps need
nothing. Parts: A is the tokens after position 0 ([CLS]) up to the first source [SEP], B the
tokens between the first and second source [SEP]; padding and anything after the second [SEP]
belong to neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

OVERLAP_FEATURES = ("none", "bigram", "ngram")
# What ends a sentence for `sentence_overlap` (those of them the vocabulary holds).
SENTENCE_ENDS = "。！？；"
# `sentence_overlap`'s default cap: a question holds at most `max_question_tokens` - 1 bigrams;
# a name and a relation ("张秀英最喜欢的颜色是", 9 bigrams) fit under it.
DEFAULT_MAX_SENTENCE_COUNT = 16
# `ngram`'s default cap: lengths 1..7 apart, 8 and more one bucket. A name and the relation after
# it ("张伟的职业是", 6) fit under it, so the match covering a like name's relation ("伟的职业是",
# 5) stays one shorter than the asked name's.
DEFAULT_MAX_MATCH_LENGTH = 8


def _source_parts(
    token_ids: tf.Tensor, segment_ids: tf.Tensor, sep_id: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """[B, L] bool each: the content tokens of A and of B in `[CLS] A [SEP] B [SEP] ...`."""
    source = tf.equal(tf.cast(segment_ids, tf.int32), 0)
    is_sep = tf.logical_and(source, tf.equal(token_ids, sep_id))
    part = tf.cumsum(tf.cast(is_sep, tf.int32), axis=1, exclusive=True)
    length = tf.shape(token_ids)[1]
    content = tf.logical_and(source, tf.logical_not(is_sep))
    content = tf.logical_and(content, tf.range(length)[tf.newaxis, :] > 0)
    return tf.logical_and(content, tf.equal(part, 0)), tf.logical_and(content, tf.equal(part, 1))


def _shift_left(x: tf.Tensor, fill: tf.Tensor) -> tf.Tensor:
    return tf.concat([x[:, 1:], fill], axis=1)


def _bigrams(
    token_ids: tf.Tensor, segment_ids: tf.Tensor, sep_id: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """(A's content, B's content, bigram starts in A, bigram starts in B: [B, L] bool each;
    same: [B, L, L] bool, the bigrams starting at i and at j are equal)."""
    token_ids = tf.cast(token_ids, tf.int32)
    first, second = _source_parts(token_ids, segment_ids, sep_id)
    no = tf.zeros_like(first[:, :1])
    # A bigram starts at i when tokens i and i + 1 are both in the same part.
    first_start = tf.logical_and(first, _shift_left(first, no))
    second_start = tf.logical_and(second, _shift_left(second, no))
    following = _shift_left(token_ids, -tf.ones_like(token_ids[:, :1]))
    same = tf.logical_and(
        tf.equal(token_ids[:, :, tf.newaxis], token_ids[:, tf.newaxis, :]),
        tf.equal(following[:, :, tf.newaxis], following[:, tf.newaxis, :]),
    )
    return first, second, first_start, second_start, same


def bigram_overlap(token_ids: tf.Tensor, segment_ids: tf.Tensor, sep_id: int) -> tf.Tensor:
    """[B, L] float32: 1.0 on the source tokens of A (B) inside a bigram that B (A) also holds.

    Args:
        token_ids: [B, L] int ids, rows `[CLS] A [SEP] B [SEP] ...` (anything after the second
            source [SEP], e.g. an answer in another segment, or padding, is never marked).
        segment_ids: [B, L] int; only segment-0 tokens are source.
        sep_id: the vocabulary's [SEP] id.
    """
    first, _, first_start, second_start, same = _bigrams(token_ids, segment_ids, sep_id)
    first_hit = tf.logical_and(
        first_start, tf.reduce_any(tf.logical_and(same, second_start[:, tf.newaxis, :]), axis=2)
    )
    second_hit = tf.logical_and(
        second_start, tf.reduce_any(tf.logical_and(same, first_start[:, tf.newaxis, :]), axis=2)
    )
    start = tf.logical_or(first_hit, second_hit)
    # A bigram starting at i marks tokens i and i + 1.
    no = tf.zeros_like(first[:, :1])
    marked = tf.logical_or(start, tf.concat([no, start[:, :-1]], axis=1))
    return tf.cast(marked, tf.float32)


def sentence_overlap(
    token_ids: tf.Tensor,
    segment_ids: tf.Tensor,
    sep_id: int,
    end_ids: Sequence[int],
    max_count: int,
    join_ids: Sequence[int] = (),
) -> tf.Tensor:
    """[B, L] int32: for each token of A, how many distinct bigrams of B its sentence holds
    (capped at `max_count`); 0 for every other token.

    A's sentences end at (and include) the tokens `end_ids` (e.g. the ids of 。！？；). A bigram
    of A belongs to the sentence of its first token. Asked `张伟住在哪里？` over
    "李伟住在上海。张伟今年35岁。张伟住在北京。", the tokens of the three sentences get 2 (伟住,
    住在), 1 (张伟) and 3 (张伟, 伟住, 住在): the sentence about the person asked and the fact
    asked holds most of the question, which the token-level marks do not say (a sentence
    selection feature, as in answer-sentence retrieval). A repeated bigram of B counts once.

    A sentence that opens with one of `join_ids` (a third-person pronoun, 他/她/它) counts as
    part of the sentence before it. In "张伟住在北京。他今年35岁。王芳是一名护士。" the
    sentence "他今年35岁。" is about 张伟, but alone it holds only 今年 (1) of `张伟今年多大？`,
    and the same 1 of the absent person's `王芳今年多大？`, so the count cannot tell the two
    apart. Joined to the named sentence it gets 2 (张伟, 今年) for 张伟 and stays at 1 (今年, no
    name) for 王芳: the counts of a passage that names the person in every sentence. This is the
    simplest coreference rule (a pronoun subject refers to the person named just before), the one
    passages of short factual sentences follow.

    Args:
        token_ids, segment_ids, sep_id: as `bigram_overlap`.
        end_ids: the ids that end a sentence (none: A is one sentence).
        max_count: the cap (>= 1).
        join_ids: the ids that, opening a sentence, join it to the one before (none: every
            sentence stands alone).
    """
    if max_count < 1:
        raise ValueError(f"max_count must be 1 or more, not {max_count}")
    token_ids = tf.cast(token_ids, tf.int32)
    first, _, first_start, second_start, same = _bigrams(token_ids, segment_ids, sep_id)
    # B's bigrams counted once: the first start of each distinct bigram of B.
    earlier = tf.linalg.band_part(tf.ones_like(same[0], tf.int32), 0, -1) - tf.eye(
        tf.shape(same)[1], dtype=tf.int32
    )  # [L, L]: 1 where i < j
    repeat = tf.reduce_any(
        tf.logical_and(
            tf.logical_and(same, second_start[:, :, tf.newaxis]),
            tf.cast(earlier, tf.bool)[tf.newaxis],
        ),
        axis=1,
    )  # [B, L]: an earlier start of B holds the same bigram
    distinct = tf.logical_and(second_start, tf.logical_not(repeat))
    match = tf.logical_and(
        tf.logical_and(same, first_start[:, :, tf.newaxis]), distinct[:, tf.newaxis, :]
    )  # [B, L (A starts), L (B's distinct starts)]
    is_end = tf.zeros_like(first)
    for end_id in end_ids:
        is_end = tf.logical_or(is_end, tf.equal(token_ids, end_id))
    is_end = tf.logical_and(first, is_end)
    if join_ids:
        # An end followed by a joining token ends nothing: the next sentence continues this one.
        following = _shift_left(token_ids, -tf.ones_like(token_ids[:, :1]))
        joins = tf.zeros_like(first)
        for join_id in join_ids:
            joins = tf.logical_or(joins, tf.equal(following, join_id))
        is_end = tf.logical_and(is_end, tf.logical_not(joins))
    sentence = tf.cumsum(tf.cast(is_end, tf.int32), axis=1, exclusive=True)  # [B, L]
    together = tf.logical_and(
        tf.equal(sentence[:, :, tf.newaxis], sentence[:, tf.newaxis, :]),
        tf.logical_and(first[:, :, tf.newaxis], first[:, tf.newaxis, :]),
    )  # [B, L, L]: tokens i and k are in the same sentence of A
    hits = tf.matmul(tf.cast(together, tf.float32), tf.cast(match, tf.float32))  # [B, L, L]
    count = tf.reduce_sum(tf.cast(hits > 0.5, tf.int32), axis=2)
    count = tf.where(first, tf.minimum(count, max_count), tf.zeros_like(count))
    return count


def match_length_overlap(
    token_ids: tf.Tensor, segment_ids: tf.Tensor, sep_id: int, max_length: int
) -> tf.Tensor:
    """[B, L] int32: for each source token of A (B), the length of the longest common substring
    of A and B that covers it (0: none), capped at `max_length`.

    Richer than `bigram_overlap` (whose marks are exactly the lengths of 2 and more): asked
    `张伟住在哪里？` over "张伟住在北京。李伟住在上海。", 张伟住在 gets 4 on every token and 李伟's
    伟住在 3 (李 0), so the length tells the whole name's match from a like name's. Computed as
    the [B, L, L] table of token pairs in different parts that are equal, the runs of equal pairs
    along each diagonal counted back and forward (`max_length` - 1 shifts each way), and for each
    token the longest run through it. Same parts and rules as `bigram_overlap` (segment-0
    tokens only, [CLS], [SEP], padding and written tokens get 0).

    Args:
        token_ids, segment_ids, sep_id: as `bigram_overlap`.
        max_length: the cap (>= 2): longer matches count as `max_length`.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be 2 or more, not {max_length}")
    token_ids = tf.cast(token_ids, tf.int32)
    first, second = _source_parts(token_ids, segment_ids, sep_id)
    across = tf.logical_or(
        tf.logical_and(first[:, :, tf.newaxis], second[:, tf.newaxis, :]),
        tf.logical_and(second[:, :, tf.newaxis], first[:, tf.newaxis, :]),
    )
    equal = tf.logical_and(
        across, tf.equal(token_ids[:, :, tf.newaxis], token_ids[:, tf.newaxis, :])
    )  # [B, L, L]: tokens i and j are equal and in different parts

    def back(x: tf.Tensor) -> tf.Tensor:  # [b, i, j] <- x[b, i - 1, j - 1]
        return tf.pad(x[:, :-1, :-1], [[0, 0], [1, 0], [1, 0]])

    def forward(x: tf.Tensor) -> tf.Tensor:  # [b, i, j] <- x[b, i + 1, j + 1]
        return tf.pad(x[:, 1:, 1:], [[0, 0], [0, 1], [0, 1]])

    def run(shift: Any) -> tf.Tensor:
        """How many equal pairs in a row, from (i, j) on along the diagonal (capped)."""
        count = tf.cast(equal, tf.int32)
        shifted, still = equal, equal
        for _ in range(max_length - 1):
            shifted = shift(shifted)
            still = tf.logical_and(still, shifted)
            count += tf.cast(still, tf.int32)
        return count

    through = tf.minimum(run(back) + run(forward) - 1, max_length)
    through = tf.where(equal, through, tf.zeros_like(through))
    return tf.reduce_max(through, axis=2)
