"""`python -m training.bert`: a checkpoint folder -> a store version with its manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.bert.encoder_signatures import EMBEDDING_KEY, SIGNATURE_EMBED, VOCAB_ASSET_PATH
from models.store import REQUIRED_MANIFEST_KEYS
from tests.models.test_bert_checkpoint import (
    HIDDEN,
    POSITIONS,
    google_weights,
    to_hf,
    write_google_folder,
    write_hf_folder,
)
from tests.tiny_store import load_in_runtime
from training.bert import EXPORT_TOLERANCE, default_lowercase, main

ST_MAX_SEQ_LENGTH = 12  # below the tiny position table, so the default is visibly read


def sentence_transformers_folder(folder: Path) -> Path:
    write_hf_folder(folder, to_hf(google_weights(), prefix=""))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": ST_MAX_SEQ_LENGTH})
    )
    return folder


def embed(path: Path) -> np.ndarray:
    ids = np.array([[2, 7, 9, 3, 0], [2, 5, 6, 8, 3]], np.int32)
    signature = tf.saved_model.load(str(path)).signatures[SIGNATURE_EMBED]
    out = signature(
        token_ids=ids, segment_ids=np.zeros_like(ids), padding_mask=(ids != 0).astype(np.int32)
    )
    return np.asarray(out[EMBEDDING_KEY])


@pytest.mark.slow
def test_hf_folder_becomes_a_version_with_the_manifest(tmp_path: Path) -> None:
    checkpoint = sentence_transformers_folder(tmp_path / "st-tiny")
    store = tmp_path / "store"
    final = main(["--checkpoint", str(checkpoint), "--out", str(store), "--name", "tiny"])
    assert final == store / "tiny" / "1"
    assert [p.name for p in (store / "tiny").iterdir()] == ["1"]  # no temporary folder left
    manifest = json.loads((final / "manifest.json").read_text())
    assert set(REQUIRED_MANIFEST_KEYS) <= set(manifest)
    assert (manifest["task"], manifest["family"], manifest["version"]) == ("embedding", "bert", 1)
    assert manifest["dim"] == HIDDEN and manifest["pooling"] == "mean"
    assert manifest["max_seq_len"] == ST_MAX_SEQ_LENGTH
    assert load_in_runtime(final).max_seq_len == ST_MAX_SEQ_LENGTH  # the store's round trip
    assert manifest["tokenizer"] == {
        "kind": "wordpiece",
        "lowercase": True,
        "strip_accents": None,
        "vocab": VOCAB_ASSET_PATH,
    }
    assert (final / VOCAB_ASSET_PATH).is_file()
    assert {"embed", "encode", "embed_packed", "serving_default"} == set(manifest["signatures"])
    weights = (checkpoint / "model.safetensors").read_bytes()
    assert manifest["data"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert manifest["config"]["format"] == "huggingface" and manifest["config"]["jit_compile"]
    assert manifest["config"]["bert"]["num_layers"] == 2
    assert 0.0 <= manifest["metrics"]["saved_model_max_abs_error"] < EXPORT_TOLERANCE
    # A second run is a new version, the first one untouched.
    again = main(
        ["--checkpoint", str(checkpoint), "--out", str(store), "--name", "tiny", "--no-jit"]
    )
    assert again == store / "tiny" / "2"
    assert json.loads((again / "manifest.json").read_text())["config"]["jit_compile"] is False
    np.testing.assert_allclose(embed(again), embed(final), atol=1e-5)


@pytest.mark.slow
def test_google_checkpoint_gives_the_same_vectors_as_the_hf_folder(tmp_path: Path) -> None:
    weights = google_weights()
    google = write_google_folder(tmp_path / "uncased_tiny", weights)
    hf = write_hf_folder(tmp_path / "hf", to_hf(weights))
    store = tmp_path / "store"
    from_google = main(["--checkpoint", str(google), "--out", str(store), "--name", "g"])
    from_hf = main(["--checkpoint", str(hf), "--out", str(store), "--name", "h"])
    np.testing.assert_allclose(embed(from_google), embed(from_hf), atol=1e-5)
    manifest = json.loads((from_google / "manifest.json").read_text())
    assert manifest["config"]["format"] == "google"
    assert manifest["max_seq_len"] == POSITIONS  # no sentence-transformers config: the table
    assert manifest["tokenizer"]["lowercase"] is True
    assert any(name.startswith("bert_model.ckpt.data") for name in manifest["data"]["weights"])


def test_bad_folders_and_options_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = tmp_path / "store"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="neither"):
        main(["--checkpoint", str(empty), "--out", str(store), "--name", "x"])
    checkpoint = sentence_transformers_folder(tmp_path / "st")
    too_long = str(POSITIONS + 1)
    with pytest.raises(SystemExit, match="position table"):
        main(["--checkpoint", str(checkpoint), "--out", str(store), "--name", "x",
              "--max-length", too_long])  # fmt: skip
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(checkpoint), "--out", str(store), "--name", "x",
              "--pooling", "cls"])  # fmt: skip
    # --max-length 0 exported a version at the default length, as if it had not been given.
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(checkpoint), "--out", str(store), "--name", "x",
              "--max-length", "0"])  # fmt: skip
    assert exit_info.value.code == 2
    assert not store.exists()


@pytest.mark.parametrize(
    ("folder", "lowercase"),
    [
        ("uncased_L-12_H-768_A-12", True),
        ("cased_L-12_H-768_A-12", False),
        ("multi_cased_L-12_H-768_A-12", False),
        ("chinese_L-12_H-768_A-12", True),
    ],
)
def test_google_folder_names_say_their_casing(folder: str, lowercase: bool) -> None:
    assert default_lowercase(Path(folder)) is lowercase
