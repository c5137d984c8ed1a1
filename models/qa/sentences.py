"""Reading a passage sentence by sentence (`read_by="sentence"`).

A reader votes across the rows it reads: passages, or the windows of a long one. A passage that
states facts of several people ("张伟住在北京。王芳住在上海。") makes the reader match the asked
name against every person's in one row, which a small reader does badly: it answers with
somebody else's value. Read sentence by sentence, each row is about one person, and the vote
across rows does the rest (on the demo's hard held-out set: 0.946 -> 0.988 of 1,000 questions,
docs/benchmarks.md "Reading by sentence").

A sentence ends after a run of 。！？!?… (with the closing quotes or brackets after it), after a
full stop of either width followed by a space or by Chinese (not the point of 1.75), and at a line
break. A sentence that starts with a third-person pronoun continues the one before it, so
"张伟住在北京。他今年35岁。" stays one row and 他 keeps its name. What it cannot keep is a
subject stated in another sentence without a pronoun ("张伟今年35岁。现在住在上海。"): such
text is read by passage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, get_args

ReadBy = Literal["passage", "sentence"]
READ_BY: tuple[str, ...] = get_args(ReadBy)

# A sentence's end: its final punctuation (a run of it, 。 of either width), the closing quotes
# and brackets after it, then the blanks before the next one; a full stop (. of either width) only
# before a blank, the text's end, or Chinese or its quotes (Chinese typed with half-width stops),
# so decimals (1.75, １．７５), abbreviations and domain names inside a word stay; a line break of
# any kind (\r\n, \r, \u2028) on its own.
_CHINESE = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff“‘「『”’」』）"
_SENTENCE_END = re.compile(
    rf"""(?:[。｡！？!?…]+|[.．](?=\s|$|[{_CHINESE}]))[”’"'」』）)\]]*\s*|[\n\r\u2028\u2029]\s*"""
)
# Third-person pronouns that refer back to the sentence before: Chinese (他们 and 她们 start with
# 他 and 她) and English, as the first word.
_CHINESE_PRONOUNS = ("他", "她", "它")
_ENGLISH_PRONOUNS = frozenset("he she it they his her its their him them".split())
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_LEADING_INVISIBLE = re.compile(r"^[\s\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The [start, end) characters of `text`'s sentences, in order, covering it with no gaps
    (each one's trailing blanks included); a sentence that starts with a pronoun is joined to the
    one before it. Empty text: no sentences."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            spans.append((start, match.end()))
            start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    joined: list[tuple[int, int]] = []
    for begin, end in spans:
        if joined and _refers_back(text[begin:end]):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((begin, end))
    return joined


def _refers_back(sentence: str) -> bool:
    # Blanks and the invisible characters the tokenizer drops (a zero-width space, a byte-order
    # mark) before the pronoun; a sentence of nothing else has nothing of its own either.
    stripped = _LEADING_INVISIBLE.sub("", sentence, count=1)
    if not stripped or stripped.startswith(_CHINESE_PRONOUNS):
        return True
    word = _FIRST_WORD.match(stripped)
    return word is not None and word.group().lower() in _ENGLISH_PRONOUNS


def sentence_token_ranges(text: str, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The [start, end) token ranges of `text`'s sentences (`sentence_spans`), for tokens whose
    characters in `text` are `offsets`: a token belongs to the sentence its first character is
    in. Sentences with no token (blanks, characters the tokenizer drops) are left out."""
    ranges: list[tuple[int, int]] = []
    token = 0
    for _, end in sentence_spans(text):
        first = token
        while token < len(offsets) and offsets[token][0] < end:
            token += 1
        if token > first:
            ranges.append((first, token))
    return ranges


def reading_units(
    text: str, offsets: Sequence[tuple[int, int]], read_by: ReadBy
) -> list[tuple[int, int]]:
    """The [start, end) token ranges a passage is read as: its sentences
    (`sentence_token_ranges`) or the whole of it. Always one range at least: a passage with no
    token is one empty row, which holds no answer (`models.qa.decoding.decode_batch`)."""
    whole = [(0, len(offsets))]
    return (sentence_token_ranges(text, offsets) if read_by == "sentence" else whole) or whole
