"""Vectorised generation of JoSE training tuples from a batch of documents (numpy).

One batch of documents gives two sets of training tuples, as one pass of the C code
`TrainModelThread` (yumeng5/Spherical-Text-Embedding, src/jose.c) over the same documents does:

* word-context tuples (u = word table row, v = context table row, K negative word rows): for every
  kept centre position i and every kept position j in its dynamic window, u is the word at j,
  v the word at i (the C code's `syn0[last_word]` and `syn1neg[word]`);
* word-document tuples (u = word at i, d = the document of i, K negative word rows).

Frequent words are dropped before windowing (word2vec subsampling, so the window spans more
distinct words), and negatives are drawn from the unigram^0.75 table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# word2vec / JoSE: the negative-sampling distribution is the unigram distribution raised to 3/4.
UNIGRAM_POWER = 0.75
# Size of the negative-sampling table; 1e8 in the C code, 1e7 keeps every word of a
# vocabulary of ~1e5 with at least a few slots while costing 40 MB instead of 400 MB.
DEFAULT_TABLE_SIZE = 10_000_000


class UnigramTable:
    """Table of word ids in which each id fills a share of slots proportional to count^0.75.

    Args:
        counts: corpus counts per word id; id 0 (padding) must have count 0 and is never drawn.
        table_size: number of slots (bigger tables follow the distribution more finely).
        power: the exponent of the unigram counts.
    """

    def __init__(
        self,
        counts: Sequence[int] | np.ndarray,
        table_size: int = DEFAULT_TABLE_SIZE,
        power: float = UNIGRAM_POWER,
    ) -> None:
        weights = np.asarray(counts, dtype=np.float64) ** power
        weights[0] = 0.0
        if weights.sum() <= 0:
            raise ValueError("the vocabulary has no word with a positive count")
        self.probs = weights / weights.sum()
        # Slot s holds the word whose cumulative-probability interval contains (s + 0.5) / size.
        edges = np.cumsum(self.probs)
        slots = (np.arange(table_size, dtype=np.float64) + 0.5) / table_size
        table = np.searchsorted(edges, slots, side="right")
        self.table = np.minimum(table, len(weights) - 1).astype(np.int32)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Draws word ids with probability ~ count^0.75."""
        return self.table[rng.integers(0, len(self.table), size=shape)]


def keep_probabilities(counts: Sequence[int] | np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping each word under word2vec subsampling (the C code's `-sample`).

    keep(w) = (sqrt(c_w / (s * N)) + 1) * (s * N) / c_w, capped at 1, where N is the number of
    tokens; `sample <= 0` keeps everything.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    keep[counts <= 0] = 1.0
    return np.minimum(keep, 1.0)


@dataclass
class TrainingTuples:
    """One minibatch of JoSE training tuples (all int32 / int64 numpy arrays).

    Attributes:
        wc_word: [P] word-table ids (u) of the word-context pairs.
        wc_context: [P] context-table ids (v).
        wc_negative: [P, K] negative word-table ids.
        wd_word: [Q] word-table ids of the word-document pairs.
        wd_doc: [Q] document-table ids.
        wd_negative: [Q, K] negative word-table ids.
        num_words: in-vocabulary tokens read (before subsampling), the C code's `word_count`,
            which drives the learning-rate schedule and the words/s figure.
    """

    wc_word: np.ndarray
    wc_context: np.ndarray
    wc_negative: np.ndarray
    wd_word: np.ndarray
    wd_doc: np.ndarray
    wd_negative: np.ndarray
    num_words: int


def make_training_tuples(
    docs: Sequence[np.ndarray],
    doc_ids: Sequence[int] | np.ndarray,
    keep_prob: np.ndarray,
    table: UnigramTable,
    rng: np.random.Generator,
    window: int,
    negative: int,
) -> TrainingTuples:
    """Builds the training tuples of a batch of documents, without a Python loop over words.

    Args:
        docs: encoded documents (int arrays of word ids, no padding).
        doc_ids: the document-table row of each document.
        keep_prob: per word id, the probability of keeping it (see `keep_probabilities`).
        table: the negative-sampling table.
        rng: source of randomness (subsampling, window sizes, negatives).
        window: the maximal window radius; each centre draws its own radius in 1..window, as in
            word2vec and the C code (`b = random % window`, radius `window - b`).
        negative: number K of negatives per positive pair.
    """
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    num_words = int(lengths.sum())
    if num_words:
        tokens = np.concatenate([np.asarray(d, dtype=np.int32) for d in docs])
    else:
        tokens = np.zeros(0, dtype=np.int32)
    segment = np.repeat(np.arange(len(docs), dtype=np.int32), lengths)

    kept = rng.random(num_words) < keep_prob[tokens]
    tokens, segment = tokens[kept], segment[kept]
    n = len(tokens)

    radius = window - rng.integers(0, window, size=n) if window > 0 else np.zeros(n, np.int64)
    centre = np.arange(n)
    word_parts, context_parts, centre_parts = [], [], []
    for offset in [o for o in range(-window, window + 1) if o != 0]:
        # Clamped at 0: a negative end would wrap round when fewer words than the offset remain.
        lo, hi = max(0, -offset), max(0, min(n, n - offset))
        i = centre[lo:hi]
        j = i + offset
        ok = (segment[j] == segment[i]) & (radius[i] >= abs(offset))
        word_parts.append(tokens[j[ok]])
        context_parts.append(tokens[i[ok]])
        centre_parts.append(i[ok])
    if word_parts:
        # In corpus order (by centre position), so fixed-size chunks of tuples walk through the
        # documents as the C code does, instead of grouping all tuples of one offset together.
        order = np.argsort(np.concatenate(centre_parts), kind="stable")
        wc_word = np.concatenate(word_parts)[order]
        wc_context = np.concatenate(context_parts)[order]
    else:
        wc_word = wc_context = np.zeros(0, np.int32)

    doc_ids = np.asarray(doc_ids, dtype=np.int32)
    return TrainingTuples(
        wc_word=wc_word.astype(np.int32),
        wc_context=wc_context.astype(np.int32),
        wc_negative=table.sample(rng, (len(wc_word), negative)),
        wd_word=tokens.astype(np.int32),
        wd_doc=doc_ids[segment],
        wd_negative=table.sample(rng, (n, negative)),
        num_words=num_words,
    )


def concatenate_tuples(parts: Sequence[TrainingTuples]) -> TrainingTuples:
    """Joins the tuples of consecutive document batches."""

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return TrainingTuples(
        wc_word=cat("wc_word"),
        wc_context=cat("wc_context"),
        wc_negative=cat("wc_negative"),
        wd_word=cat("wd_word"),
        wd_doc=cat("wd_doc"),
        wd_negative=cat("wd_negative"),
        num_words=sum(p.num_words for p in parts),
    )


@dataclass
class ChunkedBatch:
    """Training tuples cut into C fixed-size chunks (padding: word id 0, document `pad_doc`).

    Fixed shapes let the per-chunk step be compiled once (XLA). Attributes as in
    `TrainingTuples`, with a leading chunk axis: wc_* [C, P] / [C, P, K], wd_* [C, Q] / [C, Q, K].
    """

    wc_word: np.ndarray
    wc_context: np.ndarray
    wc_negative: np.ndarray
    wd_word: np.ndarray
    wd_doc: np.ndarray
    wd_negative: np.ndarray
    num_words: int

    @property
    def num_chunks(self) -> int:
        return int(self.wc_word.shape[0])


def pack_chunks(tuples: TrainingTuples, wc_chunk: int, wd_chunk: int, pad_doc: int) -> ChunkedBatch:
    """Cuts tuples (in corpus order) into chunks of `wc_chunk` word-context and `wd_chunk`
    word-document tuples, padding the last ones; both streams get the same number of chunks.

    Args:
        tuples: the tuples of a batch of documents.
        wc_chunk: word-context tuples per chunk (P).
        wd_chunk: word-document tuples per chunk (Q).
        pad_doc: the document row that padding tuples point at (never a real document).
    """
    p, q = len(tuples.wc_word), len(tuples.wd_word)
    chunks = max(1, -(-p // wc_chunk), -(-q // wd_chunk))
    # Spread each stream evenly over the chunks so that chunk i covers about the same documents
    # in both streams (the word-document stream is shorter).
    wc_rows = _spread(p, chunks, wc_chunk)
    wd_rows = _spread(q, chunks, wd_chunk)
    k = tuples.wc_negative.shape[1]

    def place(values: np.ndarray, rows: np.ndarray, width: int, fill: int) -> np.ndarray:
        out = np.full((chunks * width,) + values.shape[1:], fill, dtype=np.int32)
        out[rows] = values
        return out.reshape((chunks, width) + values.shape[1:])

    return ChunkedBatch(
        wc_word=place(tuples.wc_word, wc_rows, wc_chunk, 0),
        wc_context=place(tuples.wc_context, wc_rows, wc_chunk, 0),
        wc_negative=place(tuples.wc_negative.reshape(p, k), wc_rows, wc_chunk, 0),
        wd_word=place(tuples.wd_word, wd_rows, wd_chunk, 0),
        wd_doc=place(tuples.wd_doc, wd_rows, wd_chunk, pad_doc),
        wd_negative=place(tuples.wd_negative.reshape(q, k), wd_rows, wd_chunk, 0),
        num_words=tuples.num_words,
    )


def _spread(n: int, chunks: int, width: int) -> np.ndarray:
    """Flat slots for n items over `chunks` rows of `width`: row r gets items r*n//C..(r+1)*n//C."""
    item = np.arange(n)
    row = item * chunks // max(n, 1)
    start = (row * n + chunks - 1) // chunks  # first item of each row: ceil(row * n / C)
    return row * width + (item - start)
