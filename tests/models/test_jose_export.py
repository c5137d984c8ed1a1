"""SavedModel export of JoSE: signatures, determinism, batch and padding invariance."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.jose.export import export_saved_model
from models.jose.jose_model import FoldInConfig, random_unit_rows
from models.jose.reader import load_word_vectors
from models.jose.tokenizer import PAD_TOKEN, Vocabulary

DIM = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    vocab = Vocabulary([PAD_TOKEN, *words], [0, *range(40, 20, -1)])
    vectors = random_unit_rows(len(vocab), DIM, rng) * 3.0  # export re-normalises
    path = tmp_path_factory.mktemp("jose") / "1"
    config = FoldInConfig(steps=10, negative=3, negative_positions=8)
    signatures = export_saved_model(path, vectors, vocab, config)
    return path, vectors, vocab, signatures


def _pad(rows, length):
    out = np.zeros((len(rows), length), np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return tf.constant(out)


def _call(loaded, name, ids):
    return loaded.signatures[name](token_ids=ids)["embedding"].numpy()


def test_export_writes_saved_model_layout_and_signatures(exported):
    path, _, vocab, signatures = exported
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    lines = (path / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines == vocab.words and lines[0] == PAD_TOKEN
    assert signatures == ["average", "fold_in", "serving_default"]
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == set(signatures)


def test_average_signature_is_the_normalised_mean(exported):
    path, vectors, _, _ = exported
    loaded = tf.saved_model.load(str(path))
    rows = [[1, 2, 3], [5]]
    out = _call(loaded, "average", _pad(rows, 6))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for got, ids in zip(out, rows, strict=True):
        mean = unit[ids].mean(0)
        np.testing.assert_allclose(got, mean / np.linalg.norm(mean), atol=1e-6)


@pytest.mark.parametrize("name", ["average", "fold_in", "serving_default"])
def test_all_padding_row_gives_zero_vector(exported, name):
    loaded = tf.saved_model.load(str(exported[0]))
    out = _call(loaded, name, _pad([[], [4, 5]], 4))
    assert np.all(out[0] == 0) and np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out[1]), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["average", "fold_in"])
def test_row_vector_ignores_batch_neighbours_and_padding_length(exported, name):
    loaded = tf.saved_model.load(str(exported[0]))
    row = [3, 9, 9, 1, 14, 2, 7, 7, 20, 11, 5]  # longer than the 8 negative positions
    alone = _call(loaded, name, _pad([row], len(row)))[0]
    others = [[2, 4], [19] * 30, [], row[:4]]
    in_batch = _call(loaded, name, _pad([*others[:2], row, *others[2:]], 40))[2]
    np.testing.assert_allclose(in_batch, alone, atol=1e-5)
    padded = _call(loaded, name, _pad([row], 64))[0]
    np.testing.assert_allclose(padded, alone, atol=1e-5)


def test_fold_in_is_deterministic_and_default(exported):
    path = str(exported[0])
    ids = _pad([[1, 2, 3, 4], [6, 7, 8]], 5)
    first = _call(tf.saved_model.load(path), "fold_in", ids)
    again = tf.saved_model.load(path)
    np.testing.assert_array_equal(_call(again, "fold_in", ids), first)
    np.testing.assert_array_equal(_call(again, "serving_default", ids), first)
    # fold-in moves the vector away from its starting point, the average
    assert np.all(np.abs(first - _call(again, "average", ids)).max(axis=1) > 1e-3)


def test_load_word_vectors_round_trips(exported):
    path, vectors, vocab, _ = exported
    loaded_vectors, loaded_vocab = load_word_vectors(path)
    assert loaded_vocab.words == vocab.words
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(loaded_vectors[1:], unit[1:], atol=1e-6)
    assert np.all(loaded_vectors[0] == 0)


def test_export_rejects_mismatched_vocabulary(tmp_path):
    vocab = Vocabulary([PAD_TOKEN, "a"])
    with pytest.raises(ValueError):
        export_saved_model(tmp_path / "x", np.ones((3, DIM), np.float32), vocab, FoldInConfig())
