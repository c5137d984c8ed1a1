"""Copy attention (`models.qa.copy_attention`): the shared softmax against a NumPy reference, the
training loss against the full model's, and what it is for: writing values training never wrote.

Cached decoding and the SavedModel are checked against full recomputation with the other readers
(`test_qa_cache.py`, `test_qa_export.py`, parametrized over both output layers).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.qa import copy_attention
from models.qa.kv_cache import KerasStepModel
from models.qa.samples import QASample, pad_samples
from models.qa.seq2seq import (
    UniLMSeq2Seq,
    answer_window_loss,
    build_qa_model,
    seq2seq_loss,
    small_qa_config,
)
from tests.models.test_qa_seq2seq import answer_batch

CLS, SEP = 2, 3
# Tokens 10-24 answer in training, 25-39 only in the test (`pick_the_middle`).
VOCAB_SIZE = 40


def tiny_copy_model(seed: int = 0, copy: bool = True, **shape: int) -> UniLMSeq2Seq:
    keras.utils.set_random_seed(seed)
    dims = {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32, **shape}
    config = small_qa_config(VOCAB_SIZE, 32, dropout=0.0, **dims)
    return build_qa_model(config, copy_attention=copy)


def reference_log_probs(vocab: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """P(t) = (exp(v_t) + sum over j holding t of exp(c_j)) / Z, one query at a time."""
    out = np.empty_like(vocab, dtype=np.float64)
    for b in range(vocab.shape[0]):
        for q in range(vocab.shape[1]):
            mass = np.exp(vocab[b, q].astype(np.float64))
            for j, token in enumerate(ids[b]):
                mass[token] += np.exp(float(scores[b, q, j]))
            out[b, q] = np.log(mass / mass.sum())
    return out


def test_merged_log_probs_and_loss_equal_the_reference() -> None:
    rng = np.random.default_rng(0)
    vocab = rng.normal(size=(2, 3, VOCAB_SIZE)).astype(np.float32)
    scores = rng.normal(scale=2.0, size=(2, 3, 5)).astype(np.float32)
    ids = np.array([[7, 8, 7, 9, 3], [11, 12, 13, 14, 15]], np.int32)
    scores[1, :, 3:] = -1e9  # not source: no mass
    expected = reference_log_probs(vocab, scores, ids)
    got = copy_attention.merged_log_probs(vocab, scores, ids).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, atol=1e-5)
    # Row 1 holds 14 and 15 only off the source: they get the vocabulary's share alone.
    plain = vocab[1] - np.log(
        np.exp(vocab[1]).sum(-1, keepdims=True) + np.exp(scores[1, :, :3]).sum(-1, keepdims=True)
    )
    np.testing.assert_allclose(got[1, :, 14], plain[:, 14], atol=1e-5)
    targets = np.array([[7, 9, 20], [11, 14, 3]], np.int32)
    loss = copy_attention.copy_loss(vocab, scores, ids, targets).numpy()
    np.testing.assert_allclose(
        loss, -np.take_along_axis(expected, targets[..., None], -1)[..., 0], atol=1e-5
    )


def test_answer_window_loss_equals_the_full_models_loss() -> None:
    model = tiny_copy_model()
    batch = answer_batch(seed=0)
    log_probs = model(batch)
    # The full model returns the shared softmax's log-probabilities.
    np.testing.assert_allclose(np.exp(log_probs.numpy()).sum(-1), 1.0, atol=1e-4)
    full = seq2seq_loss(log_probs, batch["token_ids"], batch["loss_mask"])
    np.testing.assert_allclose(answer_window_loss(model, batch, window=3 + 1), full, rtol=1e-5)
    # Not the vocabulary head's loss alone: the copy attention's scores count.
    plain = UniLMSeq2Seq(model.backbone, model.mlm_head)
    assert abs(float(answer_window_loss(plain, batch, window=4)) - float(full)) > 1e-3


def test_answer_window_loss_of_next_samples_equals_the_full_models_loss() -> None:
    """`--answer-input next`: the answer slots read other tokens than they predict; the pointer
    still scores the source and each target is the label, as in the full model."""
    model = tiny_copy_model(seed=2)
    batch = answer_batch(seed=2)
    labels, inputs = batch["token_ids"].copy(), batch["token_ids"].copy()
    inputs[2, 15:17] = (labels[2, 15:17] + 1) % VOCAB_SIZE  # the long answer's first two slots
    fed = {**batch, "token_ids": inputs, "label_ids": labels}
    full = seq2seq_loss(model({**batch, "token_ids": inputs}), labels, batch["loss_mask"])
    np.testing.assert_allclose(answer_window_loss(model, fed, window=4), full, rtol=1e-5)


def test_save_and_load_keep_the_copy_attention(tmp_path: Path) -> None:
    model = tiny_copy_model(seed=1)
    batch = answer_batch(seed=1)
    model.save(tmp_path / "qa.keras")
    loaded = keras.models.load_model(tmp_path / "qa.keras")
    assert loaded.copy_attention is not None and loaded.cache_layers == 3
    np.testing.assert_allclose(loaded(batch).numpy(), model(batch).numpy(), atol=1e-5)


def pick_the_middle(count: int, values: np.ndarray, seed: int) -> list[QASample]:
    """`[CLS] a v b [SEP] q [SEP]` -> v: three tokens of one pool, the answer always the middle
    one; the reader must point at a position, not recall a token."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        a, v, b = (int(t) for t in rng.choice(values, 3, replace=False))
        prefix = [CLS, a, v, b, SEP, 5, SEP]
        samples.append(
            QASample(
                token_ids=[*prefix, v, SEP],
                segment_ids=[0] * len(prefix) + [1, 1],
                loss_mask=[0] * len(prefix) + [1, 1],
            )
        )
    return samples


def first_token_accuracy(model: UniLMSeq2Seq, samples: list[QASample]) -> float:
    ids = np.array([s.token_ids[:-2] for s in samples], np.int32)
    log_probs, _ = KerasStepModel(model, 2).prefill(ids, np.full(len(ids), ids.shape[1]))
    return float(np.mean(log_probs.argmax(-1) == [s.token_ids[-2] for s in samples]))


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "vocabulary"])
def test_a_copy_reader_writes_values_training_never_wrote(copy: bool) -> None:
    """Trained on answers from tokens 10-24, asked about tokens 25-39: the copy reader points at
    the middle token whatever it is; the vocabulary reader can only write what it was taught."""
    model = tiny_copy_model(copy=copy, num_layers=1)
    batch = pad_samples(pick_the_middle(512, np.arange(10, 25), seed=0), 0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(64).repeat(5), verbose=0)
    seen = first_token_accuracy(model, pick_the_middle(100, np.arange(10, 25), seed=1))
    unseen = first_token_accuracy(model, pick_the_middle(100, np.arange(25, 40), seed=1))
    if copy:
        assert seen >= 0.95 and unseen >= 0.95
    else:
        assert unseen <= 0.1
