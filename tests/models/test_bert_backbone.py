"""BertBackbone on a tiny configuration: masks, padding, config round-trip, save/load, jit path."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.bert.bert_backbone import BertBackbone, BertConfig, build_attention_mask
from models.bert.masks import unilm_mask
from models.bert.mlm_head import BertMaskedLMHead
from models.bert.pooling import l2_normalize, masked_mean_pool, sentence_embedding

TINY = BertConfig(
    vocab_size=40,
    hidden_size=16,
    num_layers=2,
    num_heads=2,
    intermediate_size=32,
    max_position=32,
    dropout=0.1,
)


def tiny_backbone(attention_mode: str = "bidirectional", seed: int = 0) -> BertBackbone:
    keras.utils.set_random_seed(seed)
    return BertBackbone.from_bert_config(TINY, attention_mode=attention_mode)  # type: ignore[arg-type]


def inputs(token_ids: list[list[int]], segment_ids: list[list[int]] | None = None) -> dict:
    ids = np.array(token_ids, np.int32)
    segments = np.zeros_like(ids) if segment_ids is None else np.array(segment_ids, np.int32)
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": (ids != 0).astype(np.int32)}


def states(backbone: BertBackbone, batch: dict) -> np.ndarray:
    return backbone(batch, training=False)["sequence_output"].numpy()


@pytest.mark.parametrize("mode", ["bidirectional", "causal", "unilm"])
def test_padding_does_not_change_real_token_states(mode: str) -> None:
    backbone = tiny_backbone(mode)
    short = inputs([[2, 7, 8, 3, 9, 3]], [[0, 0, 0, 0, 1, 1]])
    padded = inputs([[2, 7, 8, 3, 9, 3, 0, 0, 0]], [[0, 0, 0, 0, 1, 1, 0, 0, 0]])
    np.testing.assert_allclose(states(backbone, short), states(backbone, padded)[:, :6], atol=1e-5)


def test_bidirectional_states_depend_on_later_tokens() -> None:
    backbone = tiny_backbone()
    a = states(backbone, inputs([[2, 7, 8, 3]]))
    b = states(backbone, inputs([[2, 7, 9, 3]]))
    assert np.abs(a[0, 0] - b[0, 0]).max() > 1e-4


def test_causal_states_do_not_depend_on_later_tokens() -> None:
    backbone = tiny_backbone("causal")
    a = states(backbone, inputs([[2, 7, 8, 3]]))
    b = states(backbone, inputs([[2, 7, 9, 5]]))
    np.testing.assert_allclose(a[0, :2], b[0, :2], atol=1e-5)
    assert np.abs(a[0, 2] - b[0, 2]).max() > 1e-4


def test_unilm_source_ignores_target_and_target_is_left_to_right() -> None:
    backbone = tiny_backbone("unilm")
    segments = [[0, 0, 0, 0, 1, 1, 1]]
    a = states(backbone, inputs([[2, 7, 8, 3, 10, 11, 3]], segments))
    b = states(backbone, inputs([[2, 7, 8, 3, 10, 12, 5]], segments))
    np.testing.assert_allclose(a[0, :5], b[0, :5], atol=1e-5)  # source and the first target
    assert np.abs(a[0, 5] - b[0, 5]).max() > 1e-4
    # A source token sees the whole source, so changing it changes the other source states.
    c = states(backbone, inputs([[2, 7, 9, 3, 10, 11, 3]], segments))
    assert np.abs(a[0, 1] - c[0, 1]).max() > 1e-4


def test_encode_with_explicit_mask_matches_functional_call() -> None:
    backbone = tiny_backbone("unilm")
    batch = inputs([[2, 7, 8, 3, 10, 11, 3, 0]], [[0, 0, 0, 0, 1, 1, 1, 0]])
    mask = build_attention_mask(batch["padding_mask"], batch["segment_ids"], "unilm")
    explicit = backbone.encode(batch["token_ids"], batch["segment_ids"], mask).numpy()
    np.testing.assert_allclose(explicit, states(backbone, batch), atol=1e-6)
    # Without the padding part the pad key leaks into the last target token.
    leaky = backbone.encode(
        batch["token_ids"], batch["segment_ids"], unilm_mask(batch["segment_ids"])
    )
    assert np.abs(leaky.numpy()[0, 6] - explicit[0, 6]).max() > 1e-5


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_encoder_matches_functional_call(jit_compile: bool) -> None:
    backbone = tiny_backbone()
    batch = inputs([[2, 7, 8, 3, 0], [2, 9, 3, 0, 0]])
    encoder = backbone.compiled_encoder(2, 5, jit_compile=jit_compile)
    out = encoder(batch["token_ids"], batch["segment_ids"], batch["padding_mask"]).numpy()
    np.testing.assert_allclose(out, states(backbone, batch), atol=1e-5)
    with pytest.raises((ValueError, TypeError)):
        encoder(np.zeros((2, 6), np.int32), np.zeros((2, 6), np.int32), np.ones((2, 6), np.int32))


def test_dropout_is_active_only_in_training() -> None:
    backbone = tiny_backbone()
    batch = inputs([[2, 7, 8, 3]])
    np.testing.assert_allclose(states(backbone, batch), states(backbone, batch))
    trained = backbone(batch, training=True)["sequence_output"].numpy()
    assert np.abs(trained - states(backbone, batch)).max() > 1e-4


def test_get_config_round_trip() -> None:
    backbone = tiny_backbone("causal")
    config = backbone.get_config()
    clone = BertBackbone.from_config(config)
    assert clone.get_config() == config
    assert clone.config == TINY and clone.attention_mode == "causal"
    clone.set_weights(backbone.get_weights())
    batch = inputs([[2, 7, 8, 3]])
    np.testing.assert_allclose(states(clone, batch), states(backbone, batch), atol=1e-6)


def test_save_and_load_give_same_outputs(tmp_path: Path) -> None:
    backbone = tiny_backbone("unilm")
    batch = inputs([[2, 7, 8, 3, 10, 3, 0]], [[0, 0, 0, 0, 1, 1, 0]])
    path = tmp_path / "bert.keras"
    backbone.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, BertBackbone)
    out, ref = loaded(batch), backbone(batch)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(out[key].numpy(), ref[key].numpy(), atol=1e-6)


def test_config_from_hugging_face_json() -> None:
    config = BertConfig.from_json_dict(
        {
            "vocab_size": 30522,
            "hidden_size": 384,
            "num_hidden_layers": 6,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
            "max_position_embeddings": 512,
            "layer_norm_eps": 1e-12,
            "hidden_act": "gelu",
        }
    )
    assert (config.hidden_size, config.num_layers, config.num_heads) == (384, 6, 12)
    with pytest.raises(ValueError, match="multiple"):
        BertBackbone(vocab_size=10, hidden_size=10, num_layers=1, num_heads=3, intermediate_size=4)


def test_mlm_head_is_tied_to_token_embeddings() -> None:
    backbone = tiny_backbone()
    head = BertMaskedLMHead(backbone.token_embedding, name="mlm")
    hidden = backbone(inputs([[2, 7, 8, 3]]))["sequence_output"]
    logits = head(hidden).numpy()
    assert logits.shape == (1, 4, TINY.vocab_size)
    # The head owns the transform and the bias, not a second [V, H] table.
    own = {
        w.path.split("/")[-1] for w in head.weights if w is not backbone.token_embedding.embeddings
    }
    assert own == {"kernel", "bias", "gamma", "beta", "output_bias"}
    np.testing.assert_array_equal(head.output_bias.numpy(), np.zeros(TINY.vocab_size))
    h = head.transform_layer_norm(head.transform_dense(hidden)).numpy()
    table = backbone.token_embedding.embeddings.numpy()
    np.testing.assert_allclose(logits, h @ table.T, atol=1e-5)
    # Changing the input table changes the output projection.
    backbone.token_embedding.embeddings.assign(table * 2.0)
    np.testing.assert_allclose(head(hidden).numpy(), 2.0 * logits, rtol=1e-4, atol=1e-5)


def test_pooling_ignores_padding_and_normalises() -> None:
    states_ = tf.constant([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]], [[0.0, 0.0]] * 3])
    mask = tf.constant([[1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(masked_mean_pool(states_, mask).numpy(), [[2.0, 2.0], [0.0, 0.0]])
    unit = sentence_embedding(states_, mask).numpy()
    np.testing.assert_allclose(unit[0], [2**-0.5, 2**-0.5], rtol=1e-6)
    assert np.all(np.isfinite(unit)) and np.all(unit[1] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(tf.constant([[3.0, 4.0]])), axis=-1), 1)
