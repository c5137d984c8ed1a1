"""The shared BERT LM task reads what the families' own classes wrote before it existed: `.keras`
files and training checkpoints (model, optimizer, EMA) made by commit 1841569's `UniLMSeq2Seq`
and `ConditionalLM` (tests/fixtures/bert_lm_v1/make_fixtures.py), under the same registered
names; and the service's reader imports no Keras model code."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from models.bert.bert_lm import BertLM
from models.bert.lm_reader import SavedModelLMStepModel
from models.generation.export import SavedModelGenerationStepModel
from models.generation.lm import ConditionalLM, build_generation_model, small_lm_config
from models.qa.export import SavedModelStepModel
from models.qa.seq2seq import UniLMSeq2Seq, build_qa_model, small_qa_config
from training.common.checkpoint import CheckpointKeeper
from training.common.ema import ExponentialMovingAverage
from training.common.loop import bert_adamw

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bert_lm_v1"
REPO = Path(__file__).resolve().parents[2]
# The old fixtures' shape (make_fixtures.py).
SHAPE = {"hidden_size": 8, "num_layers": 2, "num_heads": 2, "intermediate_size": 16}
VOCAB_SIZE, MAX_POSITION = 24, 16
FAMILIES = {"qa": ("kexue_qa>UniLMSeq2Seq", UniLMSeq2Seq), "generation":
            ("kexue_generation>ConditionalLM", ConditionalLM)}  # fmt: skip


def inputs(family: str) -> dict[str, np.ndarray]:
    ids = np.array([[2, 7, 8, 3, 9, 3, 11, 12, 3], [2, 7, 3, 10, 3, 3, 0, 0, 0]], np.int32)
    padding = (ids != 0).astype(np.int32)
    if family == "qa":
        segments = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1, 0, 0, 0]], np.int32)
        return {"token_ids": ids, "segment_ids": segments, "padding_mask": padding}
    return {"token_ids": ids, "padding_mask": padding, "label_ids": np.array([1, 0], np.int32)}


def fresh_model(family: str) -> BertLM:
    """The model a training job builds before it resumes (other weights than the checkpoint's)."""
    keras.utils.set_random_seed(1)
    if family == "qa":
        return build_qa_model(small_qa_config(VOCAB_SIZE, MAX_POSITION, dropout=0.0, **SHAPE))
    return build_generation_model(
        small_lm_config(VOCAB_SIZE, MAX_POSITION, dropout=0.0, **SHAPE),
        labels=["neg", "pos"],
        condition_size=4,
    )


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_old_keras_file_loads_with_the_same_outputs(family: str) -> None:
    registered, cls = FAMILIES[family]
    assert keras.saving.get_registered_name(cls) == registered
    path = FIXTURES / f"{family}.keras"
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("config.json"))["registered_name"] == registered
    model = keras.saving.load_model(path)
    assert type(model) is cls
    expected = np.load(FIXTURES / "expected.npz")[f"{family}_logits"]
    np.testing.assert_allclose(np.asarray(model(inputs(family))), expected, atol=1e-6)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_old_training_checkpoint_resumes(family: str) -> None:
    model = fresh_model(family)
    expected = np.load(FIXTURES / "expected.npz")
    assert not np.allclose(model(inputs(family)), expected[f"{family}_trained_logits"], atol=1e-3)
    optimizer, _ = bert_adamw(1e-2, 10)
    optimizer.build(model.trainable_variables)
    ema = ExponentialMovingAverage(model.trainable_variables, decay=0.5)
    keeper = CheckpointKeeper(
        FIXTURES / f"{family}-checkpoint", read_only=True, model=model, optimizer=optimizer, ema=ema
    )
    # Every object that exists now has its value in the old checkpoint (else this raises).
    assert keeper.restore_latest() == 1
    np.testing.assert_allclose(
        np.asarray(model(inputs(family))), expected[f"{family}_trained_logits"], atol=1e-6
    )
    with ema.averaged():
        np.testing.assert_allclose(
            np.asarray(model(inputs(family))), expected[f"{family}_averaged_logits"], atol=1e-6
        )
    assert int(optimizer.iterations.numpy()) == 1


def test_the_readers_old_names_are_the_shared_reader() -> None:
    assert SavedModelStepModel is SavedModelLMStepModel
    assert SavedModelGenerationStepModel is SavedModelLMStepModel


KERAS_MODEL_MODULES = (
    "models.bert.bert_backbone",
    "models.bert.bert_layers",
    "models.bert.bert_lm",
    "models.bert.checkpoint",
    "models.bert.mlm_head",
    "models.qa.seq2seq",
    "models.qa.export",
    "models.generation.lm",
    "models.generation.export",
)


@pytest.mark.parametrize(
    "module",
    [
        "models.bert.lm_reader",
        "models.qa.signatures",
        "models.generation.signatures",
        "service.runtimes.qa",
        "service.runtimes.generation",
    ],
)
def test_the_service_side_imports_no_keras_model_code(module: str) -> None:
    # Signature names are plain strings: their modules do not even import TensorFlow.
    forbidden = (*KERAS_MODEL_MODULES, *(["tensorflow"] if "signatures" in module else []))
    loaded = f"sorted(set(sys.modules) & {set(forbidden)!r})"
    code = f"import json, sys, {module}; print(json.dumps({loaded}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
