"""The store's contract from both sides: what the exporters write is what the runtimes read.

Every family the demo trains (tiny versions of the same jobs and exports, from `tests.tiny_store`)
parses with `models.store` and loads in the runtime the service picks; a manifest that lacks what
a runtime reads fails with a message naming the file and the key; no runtime reads a manifest key
the contract does not declare.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import get_args

import pytest

from models.jose.tokenizer import TOKENIZER_KINDS
from models.store import MANIFEST_FILENAME, MANIFEST_TYPES, JoseTokenizer, QAManifest
from service.registry import default_runtime_factory
from service.runtimes import _RUNTIMES, runtime_class
from service.runtimes.base import read_manifest
from service.settings import Settings
from tests.tiny_store import TINY_MODELS, load_in_runtime

ROOT = Path(__file__).resolve().parents[1]
# Code that reads manifests: the runtimes and the evaluation scripts of the training jobs.
READERS = [*sorted((ROOT / "service" / "runtimes").glob("*.py")), *(
    ROOT / "training" / name for name in ("qa_eval.py", "generation_eval.py")
)]  # fmt: skip


def test_every_served_pair_has_its_typed_manifest():
    assert set(_RUNTIMES) == set(MANIFEST_TYPES)
    for (task, family), kind in MANIFEST_TYPES.items():
        runtime = runtime_class(task, family)
        assert (runtime.task, runtime.family, runtime.manifest_type) == (task, family, kind)


def test_the_contract_knows_every_jose_tokenizer():
    # models.store spells the kinds itself to stay free of the model code.
    kinds = JoseTokenizer.model_fields["kind"].annotation
    assert set(get_args(kinds)) == set(TOKENIZER_KINDS)


def _reads_by_key(node: ast.AST) -> bool:
    """`manifest[...]` or `manifest.get(...)`, on a name or an attribute called manifest."""

    def is_manifest(value: ast.AST) -> bool:
        return (isinstance(value, ast.Name) and value.id == "manifest") or (
            isinstance(value, ast.Attribute) and value.attr == "manifest"
        )

    if isinstance(node, ast.Subscript):
        return is_manifest(node.value)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and is_manifest(node.func.value)
    )


@pytest.mark.parametrize("path", READERS, ids=lambda path: path.name)
def test_no_reader_looks_a_manifest_key_up_by_name(path):
    # They read the typed manifest's attributes instead, which mypy checks against the contract.
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lookups = [
        f"{path.name}:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if _reads_by_key(node)
    ]
    assert lookups == []


def _qa_manifest_without(folder: Path, key: str) -> Path:
    body = {
        "name": "reader",
        "version": 1,
        "task": "qa",
        "family": "bert-unilm",
        "created_at": "2026-12-02T08:00:00+00:00",
        "config": {},
        "data": {},
        "metrics": {},
        "signatures": ["prefill", "step"],
        "library_versions": {},
        "max_passage_tokens": 12,
        "max_question_tokens": 6,
        "max_answer_tokens": 4,
        "tokenizer": {"kind": "wordpiece", "vocab": "assets/vocab.txt"},
    }
    assert QAManifest.model_validate(body)  # complete, until `key` goes
    del body[key]
    folder.mkdir(parents=True)
    (folder / MANIFEST_FILENAME).write_text(json.dumps(body), encoding="utf-8")
    return folder


@pytest.mark.parametrize("key", ["max_question_tokens", "tokenizer", "signatures"])
def test_a_version_lacking_a_key_its_runtime_reads_fails_naming_the_file_and_key(tmp_path, key):
    version = _qa_manifest_without(tmp_path / "reader" / "1", key)
    # Before the contract: a KeyError from inside the runtime, naming neither file nor model.
    message = rf"^{version / MANIFEST_FILENAME}: missing keys \['{key}'\]"
    with pytest.raises(ValueError, match=message):
        default_runtime_factory("reader", 1, version, Settings(model_store=tmp_path))
    with pytest.raises(ValueError, match=message):
        read_manifest(version)  # what the registry reads before it picks a runtime


@pytest.mark.slow
@pytest.mark.parametrize("model", list(TINY_MODELS))
def test_every_demo_family_round_trips_through_the_store(tiny_store, model):
    runtime = load_in_runtime(tiny_store / TINY_MODELS[model] / "1")
    assert runtime.name == TINY_MODELS[model]
