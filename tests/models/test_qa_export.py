"""QA SavedModel: signatures, names and shapes; decoding through it equals full recomputation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.bert.lm_reader import SavedModelLMStepModel
from models.qa.export import export_qa_saved_model
from models.qa.kv_cache import KerasStepModel
from models.qa.signatures import (
    SIGNATURE_FULL_LOGITS,
    SIGNATURE_PREFILL,
    SIGNATURE_REORDER,
    SIGNATURE_STEP,
)
from tests.models.test_qa_cache import (
    MAX_ANSWER_TOKENS,
    SEP_BIAS,
    VOCAB_SIZE,
    CachedScorer,
    FullScorer,
    assert_same_decoding,
    beam_search,
    make_sep_likely,
    pad,
    random_prefixes,
    tiny_model,
)

MAX_PASSAGE_TOKENS, MAX_QUESTION_TOKENS = 12, 6


@pytest.fixture(scope="module", params=[False, True], ids=["vocabulary", "copy"])
def exported(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[Path, KerasStepModel]:
    folder = tmp_path_factory.mktemp("qa")
    vocab = folder / "vocab.txt"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab.write_text("\n".join(specials + [f"w{i}" for i in range(VOCAB_SIZE - 5)]) + "\n")
    # A copy model keeps one more cache entry (`models.qa.copy_attention`): the signatures and
    # the reader carry it unchanged.
    model = tiny_model(seed=4, copy_attention=request.param)
    make_sep_likely(model, SEP_BIAS)
    names = export_qa_saved_model(
        folder / "model", model, vocab, MAX_PASSAGE_TOKENS, MAX_QUESTION_TOKENS, MAX_ANSWER_TOKENS
    )
    assert set(names) >= {SIGNATURE_PREFILL, SIGNATURE_STEP, SIGNATURE_REORDER}
    return folder / "model", KerasStepModel(model, MAX_ANSWER_TOKENS)


def test_signature_names_and_shapes(exported: tuple[Path, KerasStepModel]) -> None:
    path, keras_model = exported
    assert (path / "assets" / "vocab.txt").read_text().startswith("[PAD]\n")
    loaded = tf.saved_model.load(str(path))
    prefill = loaded.signatures[SIGNATURE_PREFILL]
    assert set(prefill.structured_input_signature[1]) == {"token_ids", "segment_ids", "lengths"}
    step = loaded.signatures[SIGNATURE_STEP]
    assert set(step.structured_input_signature[1]) == {"token_ids", "cache", "positions"}
    reorder = loaded.signatures[SIGNATURE_REORDER]
    assert set(reorder.structured_input_signature[1]) == {"cache", "beam_indices"}
    full = loaded.signatures[SIGNATURE_FULL_LOGITS]
    assert set(full.structured_input_signature[1]) == {"token_ids", "segment_ids", "padding_mask"}

    ids = pad(random_prefixes(seed=5))
    lengths = (ids != 0).sum(1).astype(np.int32)
    out = prefill(token_ids=ids, segment_ids=np.zeros_like(ids), lengths=lengths)
    config = keras_model.model.config
    layers = keras_model.model.cache_layers
    cache_shape = (layers, 2, 3, config.num_heads, ids.shape[1] + MAX_ANSWER_TOKENS)
    assert out["cache"].shape == (*cache_shape, config.hidden_size // config.num_heads)
    assert out["log_probs"].shape == (3, VOCAB_SIZE)
    stepped = step(token_ids=np.array([5, 6, 7], np.int32), cache=out["cache"], positions=lengths)
    assert stepped["cache"].shape == out["cache"].shape
    two = reorder(cache=out["cache"], beam_indices=np.array([1, 1], np.int32))["cache"]
    assert two.shape[2] == 2
    # The reader gathers rows itself; the exported `reorder` does the same gather.
    gathered = SavedModelLMStepModel(path).select_rows(out["cache"], np.array([1, 1]))
    np.testing.assert_array_equal(two.numpy(), gathered.numpy())
    # The SavedModel computes what the Keras model does.
    reference, _ = keras_model.prefill(ids, lengths)
    np.testing.assert_allclose(out["log_probs"].numpy(), reference, atol=1e-5)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_through_the_saved_model_equals_full_recomputation(
    exported: tuple[Path, KerasStepModel], beam_size: int
) -> None:
    path, keras_model = exported
    saved = SavedModelLMStepModel(path)
    prefixes = random_prefixes(seed=6)
    cached = beam_search(CachedScorer(saved, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
    # The reference: the SavedModel's own full_logits, and the Keras model's.
    for reference in (saved, keras_model):
        full = beam_search(FullScorer(reference, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
        assert_same_decoding(cached, full)
    assert max(len(a) for _, a, _ in cached.alive) == MAX_ANSWER_TOKENS


def test_limits_must_fit_the_position_table(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(ValueError, match="position table"):
        export_qa_saved_model(tmp_path / "m", tiny_model(max_position=32), vocab, 20, 10, 5)
