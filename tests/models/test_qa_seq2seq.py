"""UniLMSeq2Seq: masked seq2seq loss, training on a memorisation task, save/load, checkpoints."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.qa.samples import QASample, pad_samples
from models.qa.seq2seq import (
    UniLMSeq2Seq,
    answer_window_loss,
    build_qa_model,
    seq2seq_loss,
    small_qa_config,
)
from tests.models.test_bert_checkpoint import (
    google_weights,
    to_hf,
    write_google_folder,
    write_hf_folder,
)

VOCAB_SIZE = 30


def tiny_model(seed: int = 0) -> UniLMSeq2Seq:
    keras.utils.set_random_seed(seed)
    config = small_qa_config(
        VOCAB_SIZE, 32, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, dropout=0.0
    )
    return build_qa_model(config)


def batch() -> dict[str, np.ndarray]:
    # [CLS] p p [SEP] q [SEP] | a a [SEP]  and a no-answer row: [CLS] p [SEP] q [SEP] | [SEP]
    ids = np.array([[2, 7, 8, 3, 9, 3, 11, 12, 3], [2, 7, 3, 10, 3, 3, 0, 0, 0]], np.int32)
    segments = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1, 0, 0, 0]], np.int32)
    padding = (ids != 0).astype(np.int32)
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": padding,
            "loss_mask": segments.copy()}  # fmt: skip


def test_loss_is_the_mean_cross_entropy_of_the_targets() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 9, VOCAB_SIZE)).astype(np.float32)
    b = batch()
    got = float(seq2seq_loss(logits, b["token_ids"], b["loss_mask"]))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    terms = [
        -log_probs[i, t - 1, b["token_ids"][i, t]]
        for i in range(2)
        for t in range(1, 9)
        if b["loss_mask"][i, t]
    ]
    assert len(terms) == 4
    assert got == pytest.approx(np.mean(terms), rel=1e-5)
    # Logits at positions that predict no target do not matter.
    logits[:, :4] += rng.normal(size=(2, 4, VOCAB_SIZE)).astype(np.float32) * 5
    logits[1, :4] = 0
    changed = float(seq2seq_loss(logits, b["token_ids"], b["loss_mask"]))
    assert changed == pytest.approx(got, rel=1e-5)


def test_target_tokens_do_not_leak_into_their_own_prediction() -> None:
    model = tiny_model()
    b = batch()
    logits = model(b).numpy()
    assert logits.shape == (2, 9, VOCAB_SIZE)
    altered = {**b, "token_ids": b["token_ids"].copy()}
    altered["token_ids"][0, 7] = 20  # second answer token
    changed = model(altered).numpy()
    # Positions before it (it is predicted at 6) are unchanged; the source never sees targets.
    np.testing.assert_allclose(changed[0, :7], logits[0, :7], atol=1e-5)
    assert np.abs(changed[0, 7] - logits[0, 7]).max() > 1e-4


def test_fit_learns_the_answers_and_save_load_round_trips(tmp_path: Path) -> None:
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = tf.data.Dataset.from_tensors(batch()).repeat(150)
    history = model.fit(data, epochs=1, verbose=0, shuffle=False).history
    assert history["loss"][-1] < 1.0
    b = batch()
    predicted = model(b).numpy().argmax(-1)
    # Greedy targets: positions 5, 6, 7 of row 0 predict 11, 12, [SEP]; row 1's 4 predicts [SEP].
    assert predicted[0, 5:8].tolist() == [11, 12, 3]
    assert predicted[1, 4] == 3
    model.save(tmp_path / "qa.keras")
    loaded = keras.models.load_model(tmp_path / "qa.keras")
    np.testing.assert_allclose(loaded(b).numpy(), model(b).numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["hf", "google"])
def test_build_from_a_pretrained_checkpoint(tmp_path: Path, kind: str) -> None:
    weights = google_weights(seed=3)
    if kind == "hf":
        folder = write_hf_folder(tmp_path / "ckpt", to_hf(weights))
    else:
        folder = write_google_folder(tmp_path / "ckpt", weights)
    model = build_qa_model(init_checkpoint=folder)
    assert model.backbone.attention_mode == "unilm"
    np.testing.assert_allclose(
        model.backbone.token_embedding.embeddings.numpy(),
        weights["bert/embeddings/word_embeddings"],
    )
    np.testing.assert_allclose(
        model.mlm_head.output_bias.numpy(), weights["cls/predictions/output_bias"]
    )


def test_needs_a_config_or_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_qa_model()
    with pytest.raises(FileNotFoundError):
        build_qa_model(init_checkpoint=tmp_path)


def answer_batch(seed: int) -> dict[str, np.ndarray]:
    """Three random samples padded to 24: no answer, a short one, the longest (3 tokens)."""
    rng = np.random.default_rng(seed)
    samples = []
    for prefix_len, answer_len in ((12, 0), (7, 1), (15, 3)):
        prefix = [2, *rng.integers(5, VOCAB_SIZE, prefix_len - 3).tolist(), 3, 9, 3]
        answer = [*rng.integers(5, VOCAB_SIZE, answer_len).tolist(), 3]
        samples.append(
            QASample(
                token_ids=prefix + answer,
                segment_ids=[0] * len(prefix) + [1] * len(answer),
                loss_mask=[0] * len(prefix) + [1] * len(answer),
            )
        )
    return pad_samples(samples, 0, pad_to=24)


def test_answer_window_loss_equals_the_full_loss() -> None:
    model = tiny_model()
    batch = answer_batch(seed=0)
    full = seq2seq_loss(model(batch), batch["token_ids"], batch["loss_mask"])
    np.testing.assert_allclose(answer_window_loss(model, batch, window=3 + 1), full, rtol=1e-5)
    # A window that misses targets gives another value: the test can fail.
    assert abs(float(answer_window_loss(model, batch, window=1)) - float(full)) > 1e-4


def test_answer_window_loss_weighs_each_rows_first_target() -> None:
    model = tiny_model()
    batch = answer_batch(seed=1)
    logits = model(batch).numpy()
    # The reference: each target's cross-entropy from the full logits, the first of a row x3.
    total, weights = 0.0, 0.0
    rows = zip(batch["token_ids"], batch["loss_mask"], strict=True)
    for row, (token_ids, loss_mask) in enumerate(rows):
        targets = [t for t, m in enumerate(loss_mask) if m]
        for k, t in enumerate(targets):
            row_logits = logits[row, t - 1].astype(np.float64)
            log_z = np.log(np.exp(row_logits - row_logits.max()).sum()) + row_logits.max()
            weight = 3.0 if k == 0 else 1.0
            total += weight * (log_z - row_logits[token_ids[t]])
            weights += weight
    loss = answer_window_loss(model, batch, window=3 + 1, first_token_weight=3.0)
    np.testing.assert_allclose(float(loss), total / weights, rtol=1e-4)
    assert abs(float(loss) - float(answer_window_loss(model, batch, window=4))) > 1e-4


def test_answer_window_loss_predicts_the_labels_of_samples_that_read_other_inputs() -> None:
    # "next" samples (`answer_input`): the answer slots read other tokens than they predict
    model = tiny_model()
    batch = answer_batch(seed=2)
    labels = batch["token_ids"].copy()
    inputs = batch["token_ids"].copy()
    inputs[2, 15:17] = (labels[2, 15:17] + 1) % VOCAB_SIZE  # the long answer's first two slots
    fed = {**batch, "token_ids": inputs, "label_ids": labels}
    reference = seq2seq_loss(model({**batch, "token_ids": inputs}), labels, batch["loss_mask"])
    np.testing.assert_allclose(answer_window_loss(model, fed, window=4), reference, rtol=1e-5)
    # without the labels the loss predicts the inputs instead: another value
    plain = answer_window_loss(model, {**batch, "token_ids": inputs}, window=4)
    assert abs(float(plain) - float(reference)) > 1e-4
    # labels equal to the inputs change nothing
    same = answer_window_loss(model, {**batch, "label_ids": batch["token_ids"]}, window=4)
    np.testing.assert_allclose(same, answer_window_loss(model, batch, window=4), rtol=1e-6)
