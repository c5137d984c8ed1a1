"""Training-tuple generation: window, subsampling, negatives, chunking."""

from __future__ import annotations

from collections import Counter

import numpy as np

from models.jose.pairs import (
    UnigramTable,
    keep_probabilities,
    make_training_tuples,
    pack_chunks,
)


def _docs():
    return [np.array(d, np.int32) for d in ([1, 2, 3, 4, 5], [6, 7], [8])]


def test_unigram_table_follows_counts_to_the_three_quarters():
    counts = np.array([0, 1000, 100, 10, 1])
    table = UnigramTable(counts, table_size=200_000)
    freq = np.bincount(table.table, minlength=5) / len(table.table)
    expected = counts**0.75 / np.sum(counts**0.75)
    np.testing.assert_allclose(freq, expected, atol=1e-4)
    assert freq[0] == 0  # padding is never a negative
    draws = table.sample(np.random.default_rng(0), (1000, 3))
    assert draws.shape == (1000, 3) and draws.min() >= 1


def test_keep_probabilities_match_word2vec_formula():
    counts = np.array([0, 10_000, 10, 1])
    keep = keep_probabilities(counts, sample=1e-3)
    t = 1e-3 * counts.sum()
    np.testing.assert_allclose(keep[1], (np.sqrt(10_000 / t) + 1) * t / 10_000)
    assert keep[1] < keep[2] <= 1.0 and keep[3] == 1.0
    assert np.all(keep_probabilities(counts, sample=0) == 1.0)


def test_pairs_stay_inside_documents_and_windows():
    docs = _docs()
    keep = np.ones(9)
    table = UnigramTable(np.r_[0, np.ones(8)], table_size=1000)
    rng = np.random.default_rng(0)
    t = make_training_tuples(docs, [10, 11, 12], keep, table, rng, window=2, negative=3)
    position = {w: (d, i) for d, doc in enumerate(docs) for i, w in enumerate(doc)}
    for u, v in zip(t.wc_word, t.wc_context, strict=True):
        (du, iu), (dv, iv) = position[u], position[v]
        assert du == dv and 1 <= abs(iu - iv) <= 2
    assert t.wc_negative.shape == (len(t.wc_word), 3)
    # word-document tuples: every kept word once, with its own document row
    assert sorted(zip(t.wd_word, t.wd_doc, strict=True)) == [
        (w, 10 + d) for d, doc in enumerate(docs) for w in doc
    ]
    assert t.num_words == 8


def test_a_batch_shorter_than_the_window_pairs_only_its_own_words():
    # Fewer kept words than the window: offsets past the end must not wrap round to the start.
    table = UnigramTable(np.r_[0, np.ones(8)], table_size=1000)
    rng = np.random.default_rng(0)
    t = make_training_tuples([np.array([1, 2], np.int32)], [0], np.ones(9), table, rng, 5, 2)
    assert sorted(zip(t.wc_word.tolist(), t.wc_context.tolist(), strict=True)) == [(1, 2), (2, 1)]


def test_window_one_gives_both_neighbours_of_every_word():
    docs = _docs()
    table = UnigramTable(np.r_[0, np.ones(8)], table_size=1000)
    t = make_training_tuples(docs, [0, 1, 2], np.ones(9), table, np.random.default_rng(1), 1, 1)
    pairs = Counter(zip(t.wc_word.tolist(), t.wc_context.tolist(), strict=True))
    expected = Counter()
    for doc in docs:
        for a, b in zip(doc[:-1], doc[1:], strict=True):
            expected[(int(a), int(b))] += 1
            expected[(int(b), int(a))] += 1
    assert pairs == expected


def test_dynamic_window_shrinks_on_average():
    doc = [np.arange(1, 2001, dtype=np.int32)]
    table = UnigramTable(np.r_[0, np.ones(2000)], table_size=10_000)
    t = make_training_tuples(doc, [0], np.ones(2001), table, np.random.default_rng(0), 5, 1)
    # radius uniform in 1..5 -> mean 3 -> about 6 pairs per centre, well under the fixed 10
    assert 5.5 < len(t.wc_word) / 2000 < 6.5


def test_subsampling_drops_frequent_words_only():
    doc = [np.array([1] * 900 + [2] * 100, np.int32)]
    keep = np.array([1.0, 0.1, 1.0])
    table = UnigramTable([0, 1, 1], table_size=100)
    t = make_training_tuples(doc, [0], keep, table, np.random.default_rng(0), 2, 1)
    kept = Counter(t.wd_word.tolist())
    assert kept[2] == 100 and 50 < kept[1] < 140
    assert t.num_words == 1000  # counted before subsampling, as the C code does


def test_tuples_are_deterministic_for_a_seed():
    docs = _docs()
    table = UnigramTable(np.r_[0, np.ones(8)], table_size=1000)
    keep = np.full(9, 0.7)
    a = make_training_tuples(docs, [0, 1, 2], keep, table, np.random.default_rng(5), 3, 2)
    b = make_training_tuples(docs, [0, 1, 2], keep, table, np.random.default_rng(5), 3, 2)
    for name in ("wc_word", "wc_context", "wc_negative", "wd_word", "wd_doc", "wd_negative"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_pack_chunks_keeps_every_tuple_and_pads_with_sentinels():
    docs = [np.arange(1, 40, dtype=np.int32)]
    table = UnigramTable(np.r_[0, np.ones(39)], table_size=1000)
    t = make_training_tuples(docs, [0], np.ones(40), table, np.random.default_rng(0), 3, 2)
    batch = pack_chunks(t, wc_chunk=16, wd_chunk=8, pad_doc=99)
    c = batch.num_chunks
    assert batch.wc_word.shape == (c, 16) and batch.wc_negative.shape == (c, 16, 2)
    assert batch.wd_doc.shape == (c, 8) and c >= len(t.wc_word) / 16
    real = batch.wc_word > 0
    got = sorted(zip(batch.wc_word[real], batch.wc_context[real], strict=True))
    assert got == sorted(zip(t.wc_word, t.wc_context, strict=True))
    assert np.all(batch.wd_doc[batch.wd_word == 0] == 99)
    assert sorted(batch.wd_word[batch.wd_word > 0]) == sorted(t.wd_word)
    # corpus order is kept: the first chunk holds the earliest tuples
    first = batch.wd_word[0][batch.wd_word[0] > 0]
    np.testing.assert_array_equal(first, t.wd_word[: len(first)])
