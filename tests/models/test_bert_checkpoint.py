"""Checkpoint readers: a tiny Hugging Face folder and a tiny Google TF checkpoint, same weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

from models.bert.checkpoint import load_hf_folder, load_tf_checkpoint

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(19)]
HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS, TYPES = 8, 2, 2, 16, 16, 2
CONFIG = {
    "vocab_size": len(VOCAB),
    "hidden_size": HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "intermediate_size": INTERMEDIATE,
    "max_position_embeddings": POSITIONS,
    "type_vocab_size": TYPES,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
}


def google_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights under Google's BERT variable names (kernels [in, out])."""
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.3, shape).astype(np.float32)

    w = {
        "bert/embeddings/word_embeddings": r(len(VOCAB), HIDDEN),
        "bert/embeddings/token_type_embeddings": r(TYPES, HIDDEN),
        "bert/embeddings/position_embeddings": r(POSITIONS, HIDDEN),
        "bert/embeddings/LayerNorm/gamma": 1 + r(HIDDEN),
        "bert/embeddings/LayerNorm/beta": r(HIDDEN),
        "bert/pooler/dense/kernel": r(HIDDEN, HIDDEN),
        "bert/pooler/dense/bias": r(HIDDEN),
        "cls/predictions/transform/dense/kernel": r(HIDDEN, HIDDEN),
        "cls/predictions/transform/dense/bias": r(HIDDEN),
        "cls/predictions/transform/LayerNorm/gamma": 1 + r(HIDDEN),
        "cls/predictions/transform/LayerNorm/beta": r(HIDDEN),
        "cls/predictions/output_bias": r(len(VOCAB)),
    }
    for i in range(LAYERS):
        p = f"bert/encoder/layer_{i}"
        for name, n_in, n_out in [
            ("attention/self/query", HIDDEN, HIDDEN),
            ("attention/self/key", HIDDEN, HIDDEN),
            ("attention/self/value", HIDDEN, HIDDEN),
            ("attention/output/dense", HIDDEN, HIDDEN),
            ("intermediate/dense", HIDDEN, INTERMEDIATE),
            ("output/dense", INTERMEDIATE, HIDDEN),
        ]:
            w[f"{p}/{name}/kernel"] = r(n_in, n_out)
            w[f"{p}/{name}/bias"] = r(n_out)
        for name in ("attention/output/LayerNorm", "output/LayerNorm"):
            w[f"{p}/{name}/gamma"] = 1 + r(HIDDEN)
            w[f"{p}/{name}/beta"] = r(HIDDEN)
    return w


def to_hf(google: dict[str, np.ndarray], prefix: str = "bert.") -> dict[str, np.ndarray]:
    """The same weights under BertForPreTraining's names (Linear weights [out, in])."""
    hf = {}
    for name, value in google.items():
        key = name.replace("bert/", prefix, 1) if name.startswith("bert/") else name
        key = key.replace("/layer_", "/layer/").replace("/", ".")
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
            "LayerNorm.beta", "LayerNorm.bias"
        )
        key = key.replace("word_embeddings", "word_embeddings.weight")
        key = key.replace("token_type_embeddings", "token_type_embeddings.weight")
        key = key.replace("position_embeddings", "position_embeddings.weight")
        key = key.replace("cls.predictions.output_bias", "cls.predictions.bias")
        if key.endswith(".kernel"):
            key, value = key[: -len(".kernel")] + ".weight", value.T
        hf[key] = np.ascontiguousarray(value)
    hf["cls.predictions.decoder.weight"] = hf[f"{prefix}embeddings.word_embeddings.weight"]
    return hf


def write_vocab(folder: Path) -> None:
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")


def write_hf_folder(folder: Path, weights: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**CONFIG, "layer_norm_eps": 1e-12}))
    save_file(weights, str(folder / "model.safetensors"))
    write_vocab(folder)
    return folder


def write_google_folder(folder: Path, weights: dict[str, np.ndarray]) -> Path:
    """bert_config.json + bert_model.ckpt.* written with tf.train's Saver, as Google's were."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bert_config.json").write_text(json.dumps(CONFIG))
    write_vocab(folder)
    with tf.Graph().as_default():
        variables = {
            name: tf.compat.v1.get_variable(name.replace("/", "__"), initializer=value)
            for name, value in weights.items()
        }
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(folder / "bert_model.ckpt"), write_meta_graph=False)
    # Google's zip files carry no `checkpoint` index file.
    os.remove(folder / "checkpoint")
    return folder


def model_inputs() -> dict[str, np.ndarray]:
    ids = np.array([[2, 7, 9, 3, 11, 3, 0], [2, 12, 3, 0, 0, 0, 0]], np.int32)
    segments = np.array([[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0]], np.int32)
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": (ids != 0).astype(np.int32)}


def test_google_checkpoint_and_hf_folder_give_the_same_outputs(tmp_path: Path) -> None:
    weights = google_weights()
    google = load_tf_checkpoint(
        write_google_folder(tmp_path / "google", weights), with_mlm_head=True
    )
    hf = load_hf_folder(write_hf_folder(tmp_path / "hf", to_hf(weights)), with_mlm_head=True)
    assert google.missing == [] and hf.missing == []
    assert google.config == hf.config and google.config.num_layers == LAYERS
    batch = model_inputs()
    out_g, out_h = google.backbone(batch), hf.backbone(batch)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(out_g[key].numpy(), out_h[key].numpy(), atol=1e-6)
    assert google.mlm_head is not None and hf.mlm_head is not None
    logits_g = google.mlm_head(out_g["sequence_output"]).numpy()
    logits_h = hf.mlm_head(out_h["sequence_output"]).numpy()
    np.testing.assert_allclose(logits_g, logits_h, atol=1e-5)
    # The weights really are the checkpoint's (a kernel, a table and the MLM bias).
    query = google.backbone.transformer_layers[1].attention.query_dense.kernel.numpy()
    np.testing.assert_array_equal(
        query, weights["bert/encoder/layer_1/attention/self/query/kernel"]
    )
    np.testing.assert_array_equal(
        hf.backbone.token_embedding.embeddings.numpy(), weights["bert/embeddings/word_embeddings"]
    )
    np.testing.assert_array_equal(
        hf.mlm_head.output_bias.numpy(), weights["cls/predictions/output_bias"]
    )
    assert google.tokenizer.tokenize("w3 W4") == ["w3", "w4"]


def test_sentence_transformers_folder_without_mlm_weights(tmp_path: Path) -> None:
    # No "bert." prefix, no pooler, no cls.* (as a sentence-transformers folder), old gamma/beta.
    hf = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): v
        for k, v in to_hf(google_weights(), prefix="").items()
        if not k.startswith(("cls.", "pooler."))
    }
    loaded = load_hf_folder(write_hf_folder(tmp_path / "st", hf), with_mlm_head=True)
    assert loaded.mlm_head is not None
    np.testing.assert_array_equal(loaded.mlm_head.output_bias.numpy(), np.zeros(len(VOCAB)))
    assert "cls.predictions.bias" in loaded.missing and "pooler.dense.weight" in loaded.missing
    gamma = loaded.backbone.transformer_layers[0].output_layer_norm.gamma.numpy()
    np.testing.assert_array_equal(gamma, hf["encoder.layer.0.output.LayerNorm.gamma"])


def test_missing_encoder_weight_or_wrong_shape_is_an_error(tmp_path: Path) -> None:
    hf = to_hf(google_weights())
    del hf["bert.encoder.layer.1.output.dense.weight"]
    with pytest.raises(KeyError, match="layer.1.output.dense"):
        load_hf_folder(write_hf_folder(tmp_path / "a", hf))
    hf = to_hf(google_weights())
    hf["bert.embeddings.position_embeddings.weight"] = np.zeros((4, HIDDEN), np.float32)
    with pytest.raises(ValueError, match="shape"):
        load_hf_folder(write_hf_folder(tmp_path / "b", hf))
