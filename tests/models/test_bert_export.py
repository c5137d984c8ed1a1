"""BERT sentence-embedding SavedModel: the Keras encoder's vectors, row by row, any padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from models.bert.checkpoint import LoadedBert, load_hf_folder
from models.bert.encoder_signatures import (
    EMBEDDING_KEY,
    SIGNATURE_DEFAULT,
    SIGNATURE_EMBED,
    SIGNATURE_EMBED_PACKED,
    SIGNATURE_ENCODE,
    TOKEN_STATES_KEY,
    VOCAB_ASSET_PATH,
)
from models.bert.export import TEXTS_PER_ROW, export_embedding_saved_model
from models.bert.pooling import l2_normalize, masked_mean_pool
from tests.models.test_bert_checkpoint import HIDDEN, google_weights, to_hf, write_hf_folder
from tests.models.test_bert_parity import FIXTURE, minilm_folder

# Same float32 kernels on both sides, only XLA's fusions reorder sums.
KERAS_TOLERANCE = 1e-5
# Against PyTorch (the fixture): the requirement.
REFERENCE_TOLERANCE = 1e-4
XLA_ATTRIBUTE = b"_XlaMustCompile"


def tiny_batch() -> dict[str, np.ndarray]:
    """[CLS] w.. [SEP] rows of different lengths, single segment, right padding."""
    ids = np.array(
        [[2, 7, 9, 12, 3, 0, 0], [2, 12, 3, 0, 0, 0, 0], [2, 5, 6, 7, 8, 9, 3]], np.int32
    )
    return {
        "token_ids": ids,
        "segment_ids": np.zeros_like(ids),
        "padding_mask": (ids != 0).astype(np.int32),
    }


def keras_outputs(loaded: LoadedBert, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    states = loaded.backbone(batch, training=False)["sequence_output"]
    return states.numpy(), masked_mean_pool(states, batch["padding_mask"]).numpy()


def embed(model: tf.Module, batch: dict[str, np.ndarray]) -> np.ndarray:
    return model.signatures[SIGNATURE_EMBED](**batch)[EMBEDDING_KEY].numpy()


def xla_functions(path: Path) -> int:
    """How many functions in the SavedModel's graph carry XLA's must-compile attribute."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    library = proto.meta_graphs[0].graph_def.library
    return sum(
        1
        for f in library.function
        if XLA_ATTRIBUTE.decode() in f.attr and f.attr[XLA_ATTRIBUTE.decode()].b
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedBert:
    folder = tmp_path_factory.mktemp("tiny_hf")
    return load_hf_folder(write_hf_folder(folder, to_hf(google_weights(), prefix="")))


@pytest.fixture(scope="module")
def tiny_export(tiny: LoadedBert, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny_export") / "1"
    signatures = export_embedding_saved_model(path, tiny.backbone, tiny.tokenizer.vocab_path)
    assert set(signatures) == {
        SIGNATURE_EMBED,
        SIGNATURE_ENCODE,
        SIGNATURE_EMBED_PACKED,
        SIGNATURE_DEFAULT,
    }
    return path


def test_saved_model_gives_the_keras_encoders_embeddings_and_states(
    tiny: LoadedBert, tiny_export: Path
) -> None:
    model = tf.saved_model.load(str(tiny_export))
    batch = tiny_batch()
    states, pooled = keras_outputs(tiny, batch)
    assert pooled.shape == (3, HIDDEN)
    np.testing.assert_allclose(embed(model, batch), pooled, atol=KERAS_TOLERANCE)
    encoded = model.signatures[SIGNATURE_ENCODE](**batch)
    np.testing.assert_allclose(encoded[EMBEDDING_KEY].numpy(), pooled, atol=KERAS_TOLERANCE)
    real = batch["padding_mask"] > 0
    assert np.abs(encoded[TOKEN_STATES_KEY].numpy() - states)[real].max() < KERAS_TOLERANCE
    # Not normalised: the route decides (OpenAI's `normalize`), so norms are the model's own.
    assert not np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-3)
    default = model.signatures[SIGNATURE_DEFAULT](**batch)[EMBEDDING_KEY].numpy()
    np.testing.assert_array_equal(default, embed(model, batch))
    # The vocabulary travels with the model.
    assert (tiny_export / VOCAB_ASSET_PATH).read_text() == tiny.tokenizer.vocab_path.read_text()


def test_a_row_is_the_same_whatever_the_batch_and_the_padding(tiny_export: Path) -> None:
    model = tf.saved_model.load(str(tiny_export))
    batch = tiny_batch()
    together = embed(model, batch)
    for row in range(3):
        length = int(batch["padding_mask"][row].sum())
        alone = {k: v[row : row + 1, :length] for k, v in batch.items()}
        np.testing.assert_allclose(embed(model, alone)[0], together[row], atol=KERAS_TOLERANCE)
        # Padded far past its length (a longer bucket), next to an all-padding filler row.
        wide = {k: np.zeros((2, 16), np.int32) for k in batch}
        for k in batch:
            wide[k][0, :length] = batch[k][row, :length]
        np.testing.assert_allclose(embed(model, wide)[0], together[row], atol=KERAS_TOLERANCE)


def packed_rows(
    texts: list[np.ndarray], rows: list[list[int]], width: int, restart_positions: bool = True
) -> dict[str, np.ndarray]:
    """`embed_packed`'s inputs: rows[r] lists the texts laid one after another in row r."""
    shape = (len(rows), width)
    packed = {k: np.zeros(shape, np.int32) for k in ("token_ids", "position_ids", "sequence_ids")}
    for r, row in enumerate(rows):
        start = 0
        for slot, text in enumerate(row):
            end = start + len(texts[text])
            packed["token_ids"][r, start:end] = texts[text]
            packed["sequence_ids"][r, start:end] = slot + 1
            first = 0 if restart_positions else start
            packed["position_ids"][r, start:end] = np.arange(first, first + len(texts[text]))
            start = end
    return packed


def test_packed_rows_give_each_text_the_vector_it_has_alone(tiny_export: Path) -> None:
    model = tf.saved_model.load(str(tiny_export))
    batch = tiny_batch()
    alone = embed(model, batch)
    texts = [batch["token_ids"][r, : batch["padding_mask"][r].sum()] for r in range(3)]
    # Row 0: texts 2 and 0 (7 + 5 of 16 tokens); row 1: text 1; row 2: padding only.
    rows = [[2, 0], [1], []]
    packed = model.signatures[SIGNATURE_EMBED_PACKED](**packed_rows(texts, rows, 16))
    out = packed[EMBEDDING_KEY].numpy()
    assert out.shape == (3, TEXTS_PER_ROW, HIDDEN)
    for r, row in enumerate(rows):
        for slot, text in enumerate(row):
            np.testing.assert_allclose(out[r, slot], alone[text], atol=KERAS_TOLERANCE)
    # Slots without a text, and filler rows, are zeros.
    assert not out[0, 2:].any() and not out[1, 1:].any() and not out[2].any()
    # The second text of a row counts its positions from 0: from where it starts in the row,
    # it would be another text.
    shifted = model.signatures[SIGNATURE_EMBED_PACKED](
        **packed_rows(texts, rows, 16, restart_positions=False)
    )[EMBEDDING_KEY].numpy()
    np.testing.assert_allclose(shifted[0, 0], alone[2], atol=KERAS_TOLERANCE)
    assert np.abs(shifted[0, 1] - alone[0]).max() > 100 * KERAS_TOLERANCE


def test_jit_compile_is_recorded_in_the_saved_model_and_can_be_turned_off(
    tiny: LoadedBert, tiny_export: Path, tmp_path: Path
) -> None:
    assert xla_functions(tiny_export) >= 3  # embed, encode and embed_packed
    plain = tmp_path / "plain"
    export_embedding_saved_model(plain, tiny.backbone, tiny.tokenizer.vocab_path, jit_compile=False)
    assert xla_functions(plain) == 0
    batch = tiny_batch()
    np.testing.assert_allclose(
        embed(tf.saved_model.load(str(plain)), batch),
        embed(tf.saved_model.load(str(tiny_export)), batch),
        atol=KERAS_TOLERANCE,
    )


def test_vocabulary_must_be_named_vocab_txt(tiny: LoadedBert, tmp_path: Path) -> None:
    other = tmp_path / "words.txt"
    other.write_text(tiny.tokenizer.vocab_path.read_text())
    with pytest.raises(ValueError, match="vocab.txt"):
        export_embedding_saved_model(tmp_path / "out", tiny.backbone, other)


@pytest.mark.slow
def test_minilm_saved_model_matches_keras_and_the_reference(tmp_path: Path) -> None:
    loaded = load_hf_folder(minilm_folder())
    export_embedding_saved_model(tmp_path / "1", loaded.backbone, loaded.tokenizer.vocab_path)
    model = tf.saved_model.load(str(tmp_path / "1"))
    with np.load(FIXTURE) as data:
        batch = {k: data[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        expected = data["sentence_embedding"]
    served = embed(model, batch)
    _, pooled = keras_outputs(loaded, batch)
    np.testing.assert_allclose(served, pooled, atol=KERAS_TOLERANCE)
    np.testing.assert_allclose(l2_normalize(served).numpy(), expected, atol=REFERENCE_TOLERANCE)
