"""An answer's evidence as character spans of its passages: from the attention weights that
decoding keeps per passage token (`models.qa.decoding`, `evidence=True`) to
{passage_index, start, end, text, weight} spans, the heaviest first.

A token is part of the evidence when its weight is at least `EVIDENCE_FRACTION` of the heaviest
token's (over all passages of the candidate); tokens of that kind next to each other in a passage
merge into one span, whose weight is the sum of theirs (the mean share of the answer tokens'
attention that went to those characters). Token positions become character offsets through the
tokenizer's offsets (`BertTokenizer.piece_ids_with_offsets`), so `text` is always
`passage[start:end]`. Pure numpy, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Spans returned per candidate, and a token's least weight relative to the heaviest one.
EVIDENCE_SPANS = 3
EVIDENCE_FRACTION = 0.3


@dataclass(frozen=True)
class EvidenceSpan:
    """Characters [start, end) of passage `passage_index` and the weight of their tokens."""

    passage_index: int
    start: int
    end: int
    text: str
    weight: float


def evidence_spans(
    weights: Mapping[int, np.ndarray],
    offsets: Sequence[Sequence[tuple[int, int]]],
    passages: Sequence[str],
    *,
    max_spans: int = EVIDENCE_SPANS,
    fraction: float = EVIDENCE_FRACTION,
) -> list[EvidenceSpan]:
    """The heaviest spans of a candidate's evidence.

    Args:
        weights: {passage index: weight of each of its tokens read} (`DecodedAnswer.evidence`).
        offsets: per passage, the (start, end) characters of each token read (at least as many
            as its weights).
        passages: the passages' texts.
        max_spans: spans kept.
        fraction: a token's least weight, relative to the heaviest token.

    Returns:
        At most `max_spans` spans, heaviest first (ties: earlier passage, earlier start).
    """
    heaviest = max((float(w.max()) for w in weights.values() if len(w)), default=0.0)
    if heaviest <= 0:
        return []
    spans: list[EvidenceSpan] = []
    for passage_index, token_weights in weights.items():
        spots = offsets[passage_index]
        high = np.flatnonzero(token_weights >= fraction * heaviest)
        if not len(high):
            continue
        # Runs of consecutive token positions.
        breaks = np.flatnonzero(np.diff(high) > 1) + 1
        for run in np.split(high, breaks):
            start, end = spots[int(run[0])][0], spots[int(run[-1])][1]
            if end <= start:
                continue
            text = passages[passage_index][start:end]
            weight = float(token_weights[run].sum())
            spans.append(EvidenceSpan(passage_index, int(start), int(end), text, weight))
    spans.sort(key=lambda s: (-s.weight, s.passage_index, s.start))
    return spans[:max_spans]
