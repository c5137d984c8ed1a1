"""Answer metrics for reading comprehension: accuracy (exact match), character F1 and Final.

Answers are compared after `normalize_answer`: full-width forms to half-width, lower case,
punctuation and blanks removed, so "ＮＢＡ。" and "nba" are the same answer. Character F1 follows
the CMRC 2018 evaluation script: precision and recall of the longest common substring between the
prediction and a gold answer, the best over the gold answers. Final = (accuracy + F1) / 2, the
score of the CIPS-SOGOU QA task that bert4keras reports.

A question without an answer has an empty gold list; predicting no answer (None or "") for it is
exactly right, and predicting anything else is wrong, as is predicting nothing for a question
that has an answer.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Protocol

# Full-width ASCII variants U+FF01..U+FF5E sit at this offset above their ASCII originals
# (Unicode block "Halfwidth and Fullwidth Forms"); U+3000 is the ideographic (full-width) space.
FULL_WIDTH_FIRST, FULL_WIDTH_LAST = 0xFF01, 0xFF5E
FULL_WIDTH_OFFSET = 0xFEE0
IDEOGRAPHIC_SPACE = 0x3000
# ASCII symbols the CMRC 2018 script strips that Unicode files as symbols (S*), not punctuation.
_ASCII_PUNCTUATION = frozenset(string.punctuation)


class GoldExample(Protocol):
    """What `evaluate` needs of an example (`models.qa.readers.QAExample` has it)."""

    def gold_answers(self) -> list[str]: ...


def to_half_width(text: str) -> str:
    """Maps full-width ASCII variants and the ideographic space to their half-width forms."""
    out = []
    for char in text:
        code = ord(char)
        if code == IDEOGRAPHIC_SPACE:
            out.append(" ")
        elif FULL_WIDTH_FIRST <= code <= FULL_WIDTH_LAST:
            out.append(chr(code - FULL_WIDTH_OFFSET))
        else:
            out.append(char)
    return "".join(out)


def _is_dropped(char: str) -> bool:
    return (
        char.isspace()
        or char in _ASCII_PUNCTUATION
        or unicodedata.category(char).startswith("P")  # 。，、《》“”…· and the like
    )


def normalize_answer(text: str | None) -> str:
    """Full-width -> half-width, lower case, punctuation and blanks removed ("" for None)."""
    if not text:
        return ""
    return "".join(c for c in to_half_width(text).lower() if not _is_dropped(c))


def _longest_common_substring(a: str, b: str) -> int:
    """Length of the longest common substring (dynamic programming, O(len(a) len(b)))."""
    if not a or not b:
        return 0
    best = 0
    previous = [0] * (len(b) + 1)
    for char_a in a:
        current = [0] * (len(b) + 1)
        for j, char_b in enumerate(b, start=1):
            if char_a == char_b:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def _gold_set(gold: Sequence[str | None]) -> list[str]:
    """Normalised non-empty gold answers; empty means "no answer"."""
    return [g for g in (normalize_answer(x) for x in gold) if g]


def exact(prediction: str | None, gold: Sequence[str | None]) -> float:
    """1.0 if the normalised prediction equals a normalised gold answer, else 0.0.

    Args:
        prediction: the predicted answer; None or "" for "no answer".
        gold: the gold answers; empty (or only empty strings) when the question has none.
    """
    pred, golds = normalize_answer(prediction), _gold_set(gold)
    if not golds:
        return float(not pred)
    return float(pred in golds)


def char_f1(prediction: str | None, gold: Sequence[str | None]) -> float:
    """Best character F1 over the gold answers (CMRC 2018: longest common substring).

    Args:
        prediction: the predicted answer; None or "" for "no answer".
        gold: the gold answers; empty when the question has none (then F1 is 1.0 for no
            prediction and 0.0 otherwise).
    """
    pred, golds = normalize_answer(prediction), _gold_set(gold)
    if not golds or not pred:
        return float(not golds and not pred)
    best = 0.0
    for answer in golds:
        common = _longest_common_substring(pred, answer)
        if common:
            precision, recall = common / len(pred), common / len(answer)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def evaluate(
    predictions: Sequence[str | None] | Mapping[int, str | None],
    examples: Sequence[GoldExample],
) -> dict[str, float]:
    """Accuracy, character F1 and Final of predictions against examples, as fractions in [0, 1].

    Args:
        predictions: one answer per example, in order (or a mapping from example index to
            answer; a missing index counts as "no answer").
        examples: the examples, each with `gold_answers()`.

    Returns:
        {"accuracy", "f1", "final", "count"} with final = (accuracy + f1) / 2.
    """
    if isinstance(predictions, Mapping):
        predicted = [predictions.get(i) for i in range(len(examples))]
    else:
        predicted = list(predictions)
        if len(predicted) != len(examples):
            raise ValueError(f"{len(predicted)} predictions for {len(examples)} examples")
    if not examples:
        return {"accuracy": 0.0, "f1": 0.0, "final": 0.0, "count": 0}
    em = f1 = 0.0
    for prediction, example in zip(predicted, examples, strict=True):
        gold = example.gold_answers()
        em += exact(prediction, gold)
        f1 += char_f1(prediction, gold)
    accuracy, f1 = em / len(examples), f1 / len(examples)
    return {
        "accuracy": accuracy,
        "f1": f1,
        "final": (accuracy + f1) / 2,
        "count": len(examples),
    }
