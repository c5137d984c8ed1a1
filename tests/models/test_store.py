"""models.store: the store's typed contract, without TensorFlow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from models import store
from models.store import (
    MANIFEST_FILENAME,
    MANIFEST_TYPES,
    REQUIRED_MANIFEST_KEYS,
    BertEmbeddingManifest,
    DensityManifest,
    GenerationManifest,
    JoseEmbeddingManifest,
    Manifest,
    ModelName,
    QAManifest,
    TempFolderOwner,
    is_model_name,
    parse_manifest,
    read_manifest,
    temp_folder_name,
    temp_folder_owner,
    this_host,
    validate_model_name,
)

COMMON: dict[str, Any] = {
    "name": "m",
    "version": 3,
    "created_at": "2026-12-02T08:00:00+00:00",
    "config": {"lr": 0.001},
    "data": {"path": "/data/x", "sha256": "ab"},
    "metrics": {"loss": None},
    "signatures": ["serving_default"],
    "library_versions": {"python": "3.11.9"},
}
WORDPIECE = {"kind": "wordpiece", "lowercase": True, "vocab": "assets/vocab.txt"}
_DROP = object()  # a key left out of `_manifest`
# The smallest manifest each runtime loads.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("embedding", "jose"): {"dim": 16, "tokenizer": {"kind": "jieba", "lowercase": True}},
    ("embedding", "bert"): {"dim": 384, "max_seq_len": 128, "tokenizer": WORDPIECE},
    ("qa", "bert-unilm"): {
        "max_passage_tokens": 96,
        "max_question_tokens": 16,
        "max_answer_tokens": 6,
        "tokenizer": WORDPIECE,
    },
    ("generation", "cln-lm"): {"max_length": 24, "labels": ["neg", "pos"], "tokenizer": WORDPIECE},
    ("density", "iresnet"): {"input_dim": 64, "levels": 17, "preprocessing": {"logit": None}},
}


def _manifest(task: str, family: str, /, **changes: Any) -> dict[str, Any]:
    body = {**COMMON, "task": task, "family": family, **EXAMPLES[(task, family)], **changes}
    return {key: value for key, value in body.items() if value is not _DROP}


def _write(folder: Path, body: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILENAME).write_text(json.dumps(body), encoding="utf-8")
    return folder


def test_importing_the_contract_loads_no_tensorflow():
    # The service imports it before any model loads; training imports it with TensorFlow.
    code = (
        "import sys, models.store\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'numpy', 'service', 'training'})\n"
        "print(heavy)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_every_key_the_design_lists_is_required():
    assert REQUIRED_MANIFEST_KEYS == (
        "name",
        "version",
        "task",
        "family",
        "created_at",
        "config",
        "data",
        "metrics",
        "signatures",
        "library_versions",
    )
    for key in REQUIRED_MANIFEST_KEYS:
        body = _manifest("density", "iresnet", **{key: _DROP})
        with pytest.raises(ValueError, match=rf"missing keys \['{key}'\]"):
            parse_manifest(body, "x")


@pytest.mark.parametrize("pair", list(EXAMPLES))
def test_each_pair_parses_into_its_typed_manifest(tmp_path, pair):
    body = _manifest(*pair, extra_key={"kept": [1, 2]})
    typed = read_manifest(_write(tmp_path / "3", body))
    assert type(typed) is MANIFEST_TYPES[pair]
    assert (typed.task, typed.family, typed.version) == (*pair, 3)
    # Keys the contract does not know are kept: a newer export stays readable.
    assert typed.as_json() == body


def test_typed_attributes_carry_the_values_and_defaults():
    qa = parse_manifest(_manifest("qa", "bert-unilm"), "x", QAManifest)
    assert (qa.max_passage_tokens, qa.max_question_tokens, qa.max_answer_tokens) == (96, 16, 6)
    assert (qa.decoding.beam_size, qa.decoding.extractive) == (1, False)
    assert qa.tokenizer.vocab == "assets/vocab.txt" and qa.tokenizer.strip_accents is None
    assert "decoding" not in qa.as_json()  # defaults the file leaves out stay out
    generation = parse_manifest(_manifest("generation", "cln-lm"), "x", GenerationManifest)
    assert generation.labels == ["neg", "pos"] and generation.condition_dim is None
    assert (generation.sampling.temperature, generation.sampling.top_p) == (1.0, None)
    density = parse_manifest(_manifest("density", "iresnet", levels=None), "x", DensityManifest)
    assert density.levels is None and density.input_dim == 64
    bert = parse_manifest(_manifest("embedding", "bert"), "x", BertEmbeddingManifest)
    assert (bert.dim, bert.max_seq_len) == (384, 128)
    jose = parse_manifest(_manifest("embedding", "jose"), "x", JoseEmbeddingManifest)
    assert jose.tokenizer.kind == "jieba"


@pytest.mark.parametrize(
    "pair,changes,message",
    [
        (("qa", "bert-unilm"), {"max_question_tokens": _DROP}, r"missing keys \['max_question"),
        (("qa", "bert-unilm"), {"tokenizer": _DROP}, r"missing keys \['tokenizer'\]"),
        (("qa", "bert-unilm"), {"max_answer_tokens": 0}, "max_answer_tokens: .*greater than 0"),
        (("qa", "bert-unilm"), {"max_answer_tokens": True}, "max_answer_tokens: .*integer"),
        (("qa", "bert-unilm"), {"max_answer_tokens": "6"}, "max_answer_tokens: .*integer"),
        (("qa", "bert-unilm"), {"max_answer_tokens": 6.0}, "max_answer_tokens: .*integer"),
        (("qa", "bert-unilm"), {"decoding": {"beam_size": None}}, "decoding.beam_size"),
        (("qa", "bert-unilm"), {"tokenizer": {"vocab": "../../x"}}, "inside the version"),
        (("qa", "bert-unilm"), {"tokenizer": {"vocab": "/etc/passwd"}}, "inside the version"),
        (("generation", "cln-lm"), {"max_length": _DROP}, r"missing keys \['max_length'\]"),
        (("generation", "cln-lm"), {"labels": _DROP}, "needs `labels` or `condition_dim`"),
        (("generation", "cln-lm"), {"labels": []}, "labels: .*at least 1"),
        (("generation", "cln-lm"), {"labels": ["a", "a"]}, "repeats a name"),
        (("generation", "cln-lm"), {"sampling": {"top_p": 1.5}}, "sampling.top_p"),
        (("generation", "cln-lm"), {"sampling": {"top_k": 0}}, "sampling.top_k"),
        (("embedding", "bert"), {"max_seq_len": _DROP}, r"missing keys \['max_seq_len'\]"),
        (("embedding", "bert"), {"tokenizer": {"kind": "jieba"}}, "tokenizer.kind"),
        (("embedding", "jose"), {"tokenizer": {"kind": "bpe"}}, "tokenizer.kind"),
        (("embedding", "jose"), {"dim": -1}, "dim: .*greater than 0"),
        (("density", "iresnet"), {"levels": _DROP}, r"missing keys \['levels'\]"),
        (("density", "iresnet"), {"levels": 1}, "levels: .*greater than or equal to 2"),
        (("density", "iresnet"), {"input_dim": "64"}, "input_dim: .*integer"),
        (("density", "iresnet"), {"name": ".hidden"}, "name: .*pattern"),
        (("density", "iresnet"), {"version": 0}, "version: .*greater than 0"),
        (("density", "iresnet"), {"created_at": "yesterday"}, "created_at: not an ISO 8601"),
        (("density", "iresnet"), {"created_at": "2026-12-02T08:00:00"}, "no UTC offset"),
        (("density", "iresnet"), {"signatures": []}, "signatures: .*at least 1"),
        (("density", "iresnet"), {"config": None}, "config: .*dictionary"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_file_and_the_key(tmp_path, pair, changes, message):
    folder = _write(tmp_path / "m" / "3", _manifest(*pair, **changes))
    with pytest.raises(ValueError, match=message) as caught:
        read_manifest(folder)
    assert str(caught.value).startswith(f"{folder / MANIFEST_FILENAME}: ")


def test_every_bad_key_is_named_at_once():
    body = _manifest("qa", "bert-unilm", max_passage_tokens=_DROP, max_answer_tokens=0)
    with pytest.raises(ValueError) as caught:
        parse_manifest(body, "where")
    assert "missing keys ['max_passage_tokens']" in str(caught.value)
    assert "max_answer_tokens" in str(caught.value)


@pytest.mark.parametrize("text", ["{", "[1, 2]", '"manifest"', "null"])
def test_a_file_that_is_no_json_object_is_refused_naming_it(tmp_path, text):
    (tmp_path / MANIFEST_FILENAME).write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=str(tmp_path / MANIFEST_FILENAME)):
        read_manifest(tmp_path)


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path)


def test_a_pair_no_runtime_serves_reads_as_the_common_keys():
    body = {**COMMON, "task": "qa", "family": "t5", "max_answer_tokens": 4}
    typed = parse_manifest(body, "x")
    assert type(typed) is Manifest and typed.as_json() == body
    with pytest.raises(ValueError, match="family"):
        parse_manifest(body, "x", QAManifest)  # what the QA runtime asks for
    with pytest.raises(ValueError, match="no model of task 'qa' family 't5'"):
        store.manifest_type("qa", "t5")


# ------------------------------------------------------------------------------ model names
VALID_NAMES = ["jose", "bert-base_zh.v2", "A1", "x..", "-x", "_", "a" * 128]
INVALID_NAMES = ["", ".", "..", ".x", "...", "a/b", "a b", "模型", "x\n", "a\\b", "a" * 129]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(name):
    assert validate_model_name(name) == name and is_model_name(name)
    assert TypeAdapter(ModelName).validate_python(name) == name


@pytest.mark.parametrize("name", [*INVALID_NAMES, "a" * 200, None, 7])
def test_invalid_names(name):
    with pytest.raises(ValueError, match="invalid model name"):
        validate_model_name(name)
    assert not is_model_name(name)
    if isinstance(name, str):  # the pattern the service's schemas use says the same
        with pytest.raises(ValidationError):
            TypeAdapter(ModelName).validate_python(name)


# ------------------------------------------------------------------------ temporary folders
def test_a_temp_folder_name_records_its_owner():
    name = temp_folder_name(12)
    assert name.startswith(store.TEMP_PREFIX + "12-")
    assert temp_folder_owner(name) == TempFolderOwner(this_host(), os.getpid())
    assert store.parse_version(name) is None  # never taken for a version


def test_owner_parsing_takes_hosts_with_dashes_and_refuses_older_names():
    assert temp_folder_owner(".tmp-3-gpu-node-7-4242-0badc0de") == TempFolderOwner(
        "gpu-node-7", 4242
    )
    assert temp_folder_owner(".tmp-9-deadbeef") is None  # written before owners were recorded
    assert temp_folder_owner("3") is None


def test_the_host_name_is_one_safe_path_part(monkeypatch):
    monkeypatch.setattr(store.socket, "gethostname", lambda: "a/b c")
    assert re.fullmatch(r"a_b_c(_[0-9]+)?", this_host())
    monkeypatch.setattr(store.socket, "gethostname", lambda: "")
    assert re.fullmatch(r"localhost(_[0-9]+)?", this_host())


def test_the_host_says_which_process_ids_it_counts(monkeypatch):
    # Two containers with one host name and separate pid namespaces must not take each other's
    # live exports for dead ones.
    if not Path("/proc/self/ns/pid").exists():
        pytest.skip("no /proc pid namespaces here")
    inode = os.stat("/proc/self/ns/pid").st_ino
    assert this_host().endswith(f"_{inode}")
