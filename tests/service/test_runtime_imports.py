"""Serving a SavedModel needs the family's reader and signature names, not the code that wrote it.

Each family's version is loaded, warmed and run through the runtime the service picks for it in a
fresh interpreter, which then lists the modules of the family it imported: the Keras model code
and the writer (`export.py`) must not be among them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.models.test_bert_checkpoint import google_weights, to_hf, write_hf_folder
from tests.tiny_store import tiny_version
from training.bert import main as export_encoder

ROOT = Path(__file__).resolve().parents[2]
# Load, warm up and serve one batch, then print the project's model modules now imported.
LOAD_AND_LIST = """
import json, sys
from pathlib import Path

from models.store import read_manifest
from service.runtimes import runtime_class
from service.settings import Settings

version = Path(sys.argv[1])
spec = read_manifest(version)
settings = Settings(
    model_store=version.parent.parent, max_batch_size=2, length_buckets="8,16", warmup=True
)
runtime = runtime_class(spec.task, spec.family)(version.parent.name, 1, version, settings)
runtime.load()
runtime.warmup()
if spec.task == "embedding":
    runtime.run_batch([runtime.prepare("酒店 房间 hotel", None)])
else:
    runtime.run_batch([runtime.prepare([[0.5] * spec.input_dim], "series")])
print(json.dumps(sorted(name for name in sys.modules if name.startswith("models."))))
"""
# What loading each family may import of its own package: the contract, the reader, the
# tokenizer (the request side's).
ALLOWED = {
    "jose": {
        "models.jose", "models.jose.signatures", "models.jose.reader", "models.jose.tokenizer",
    },
    "bert": {
        "models.bert", "models.bert.encoder_signatures", "models.bert.encoder_reader",
        "models.bert.tokenizer",
    },
    "density": {"models.density", "models.density.signatures", "models.density.reader"},
}  # fmt: skip
# The model-building modules named in issue 17, checked by name as well.
MODEL_CODE = {
    "jose": "models.jose.jose_model",
    "bert": "models.bert.bert_backbone",
    "density": "models.density.iresnet_flow",
}


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime_imports")
    store = root / "store"
    tiny_version(tmp_path_factory, "embedding", store, "jose")
    tiny_version(tmp_path_factory, "density", store, "density")
    checkpoint = write_hf_folder(root / "hf", to_hf(google_weights(), prefix=""))
    export_encoder(["--checkpoint", str(checkpoint), "--out", str(store), "--name", "bert"])
    return {family: store / family / "1" for family in ALLOWED}


def family_modules_loaded(version: Path, family: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", LOAD_AND_LIST, str(version)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    return {name for name in modules if name.split(".")[:2] == ["models", family]}


@pytest.mark.parametrize("family", sorted(ALLOWED))
def test_serving_imports_the_reader_not_the_model_code(
    versions: dict[str, Path], family: str
) -> None:
    loaded = family_modules_loaded(versions[family], family)
    assert MODEL_CODE[family] not in loaded
    assert f"models.{family}.export" not in loaded
    assert loaded <= ALLOWED[family], sorted(loaded - ALLOWED[family])
    # The reader is what loaded the SavedModel.
    assert any(name.endswith("reader") for name in loaded)


@pytest.mark.skipif(
    importlib.util.find_spec("tf_keras") is not None,
    reason="with tf_keras installed the service leaves tf.keras as it is",
)
def test_the_service_process_imports_tensorflow_without_keras() -> None:
    # `python -m service`'s module, then TensorFlow as the runtimes import it when they load a
    # version: Keras and scikit-learn, which TensorFlow's import pulls in otherwise, stay out
    # (service/no_keras.py).
    code = (
        "import json, sys; import service.__main__; import tensorflow;"
        "print(json.dumps([m in sys.modules for m in ('tensorflow', 'keras', 'sklearn')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False, False]
