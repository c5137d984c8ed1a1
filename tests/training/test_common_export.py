import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import training.common.export as export_module
from models.store import (
    MANIFEST_FILENAME,
    REQUIRED_MANIFEST_KEYS,
    TempFolderOwner,
    read_manifest,
    temp_folder_owner,
    this_host,
)
from training.common.export import (
    STALE_TEMP_AGE_S,
    export_version,
    library_versions,
    next_version,
    remove_stale_temp_folders,
    validate_model_name,
)


def _fake_saved_model(folder: Path) -> list[str]:
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    (folder / "variables").mkdir()
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return ["serving_default", "embed"]


def _export(store, name="jose-zh", **kwargs):
    args: dict[str, Any] = {
        "task": "embedding",
        "family": "jose",
        "write_model": _fake_saved_model,
        "config": {"dim": 8},
        "data": {"path": "/data/x.txt", "documents": 3},
        "metrics": {"loss": 0.5},
        "extra": {"dim": 8, "tokenizer": {"kind": "jieba"}},
    }
    args.update(kwargs)
    return export_version(store, name, **args)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_manifest_has_every_required_key(tmp_path):
    path = _export(
        tmp_path,
        config={"dim": 8, "data": Path("/x"), "lr": np.float32(0.5), "shape": np.arange(2)},
        metrics={"loss": float("nan"), "steps": np.int64(7)},
    )
    assert path == tmp_path / "jose-zh" / "1"
    assert _listing(path) == ["manifest.json", "saved_model.pb", "variables"]
    manifest = json.loads((path / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    assert set(REQUIRED_MANIFEST_KEYS) <= set(manifest)
    assert manifest["name"] == "jose-zh"
    assert manifest["version"] == 1
    assert manifest["task"] == "embedding"
    assert manifest["family"] == "jose"
    assert manifest["signatures"] == ["serving_default", "embed"]
    assert manifest["dim"] == 8 and manifest["tokenizer"] == {"kind": "jieba"}
    # NumPy and paths become plain JSON; NaN (not JSON) becomes null.
    assert manifest["config"] == {"dim": 8, "data": "/x", "lr": 0.5, "shape": [0, 1]}
    assert manifest["metrics"] == {"loss": None, "steps": 7}
    created = dt.datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=5)
    assert set(manifest["library_versions"]) == {
        "python",
        "tensorflow",
        "keras",
        "numpy",
        "kexue-serve",
    }


def test_versions_increment(tmp_path):
    assert next_version(tmp_path, "m") == 1
    assert [_export(tmp_path, "m").name for _ in range(3)] == ["1", "2", "3"]
    assert next_version(tmp_path, "m") == 4
    # Stray folders and files are not versions.
    for stray in ("10abc", ".tmp-9-deadbeef", "0"):
        (tmp_path / "m" / stray).mkdir()
    (tmp_path / "m" / "99").write_text("a file, not a version")
    assert next_version(tmp_path, "m") == 4
    (tmp_path / "m" / "7").mkdir()
    assert _export(tmp_path, "m").name == "8"


def test_explicit_version(tmp_path):
    assert _export(tmp_path, version=5).name == "5"
    with pytest.raises(FileExistsError):
        _export(tmp_path, version=5)
    assert _export(tmp_path).name == "6"
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            _export(tmp_path, version=bad)


def test_failing_write_model_leaves_nothing(tmp_path):
    _export(tmp_path)  # version 1 exists and must survive

    def half_written(folder: Path) -> list[str]:
        (folder / "saved_model.pb").write_bytes(b"partial")
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError, match="out of disk"):
        _export(tmp_path, write_model=half_written)
    assert _listing(tmp_path / "jose-zh") == ["1"]
    assert next_version(tmp_path, "jose-zh") == 2


def test_what_write_model_adds_to_the_metrics_is_recorded(tmp_path):
    metrics: dict[str, Any] = {"loss": 0.5}

    def write(folder: Path) -> list[str]:
        metrics["saved_model_max_abs_error"] = 1e-6  # as training.bert checks its export
        return _fake_saved_model(folder)

    path = _export(tmp_path, write_model=write, metrics=metrics)
    manifest = json.loads((path / MANIFEST_FILENAME).read_text())
    assert manifest["metrics"] == {"loss": 0.5, "saved_model_max_abs_error": 1e-6}


def test_write_model_without_saved_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="saved_model.pb"):
        _export(tmp_path, write_model=lambda folder: ["serving_default"])
    assert _listing(tmp_path / "jose-zh") == []


def test_interrupt_during_write_leaves_nothing(tmp_path):
    def interrupted(folder: Path) -> list[str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _export(tmp_path, write_model=interrupted)
    assert _listing(tmp_path / "jose-zh") == []


def test_version_taken_meanwhile_moves_to_the_next(tmp_path):
    def racing(folder: Path) -> list[str]:
        # Another job publishes version 1 while this one is writing.
        other = folder.parent / "1"
        other.mkdir()
        (other / "saved_model.pb").write_bytes(b"other job")
        return _fake_saved_model(folder)

    path = _export(tmp_path, write_model=racing)
    assert path.name == "2"
    assert json.loads((path / MANIFEST_FILENAME).read_text())["version"] == 2
    assert (tmp_path / "jose-zh" / "1" / "saved_model.pb").read_bytes() == b"other job"
    assert _listing(tmp_path / "jose-zh") == ["1", "2"]


def test_explicit_version_taken_meanwhile_is_an_error(tmp_path):
    def racing(folder: Path) -> list[str]:
        (folder.parent / "3").mkdir()
        return _fake_saved_model(folder)

    with pytest.raises(FileExistsError):
        _export(tmp_path, write_model=racing, version=3)
    assert _listing(tmp_path / "jose-zh") == ["3"]


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b",
        "../x",
        "a b",
        "模型",
        "x\n",
        "a\\b",
        "/abs",
        ".x",
        "...",
        "a" * 129,
        "a" * 200,
    ],
)
def test_invalid_names_rejected(tmp_path, name):
    with pytest.raises(ValueError):
        validate_model_name(name)
    with pytest.raises(ValueError):
        _export(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["jose", "bert-base_zh.v2", "A1", "x..", "-x", "a" * 128])
def test_valid_names_accepted(name):
    assert validate_model_name(name) == name


def test_extra_may_not_override_required_keys(tmp_path):
    with pytest.raises(ValueError, match="version"):
        _export(tmp_path, extra={"version": 9, "dim": 8, "tokenizer": {}})
    assert not (tmp_path / "jose-zh").exists()


WORDPIECE = {"kind": "wordpiece", "lowercase": True, "vocab": "assets/vocab.txt"}
QA = {
    "max_passage_tokens": 256,
    "max_question_tokens": 32,
    "max_answer_tokens": 32,
    "tokenizer": WORDPIECE,
}
GENERATION = {"max_length": 64, "tokenizer": WORDPIECE}
BERT = {"dim": 8, "max_seq_len": 128, "tokenizer": WORDPIECE}
DENSITY = {"input_dim": 64, "levels": 17, "preprocessing": {}}


def _without(extra: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k != key}


# Each a manifest some runtime cannot load: a key it reads is missing or has a value it cannot use.
@pytest.mark.parametrize(
    "task,family,extra",
    [
        ("embedding", "jose", {"dim": 8}),
        ("embedding", "jose", {"dim": 0, "tokenizer": {"kind": "jieba"}}),
        ("embedding", "jose", {"dim": 8, "tokenizer": {"kind": "sentencepiece"}}),
        ("embedding", "bert", _without(BERT, "max_seq_len")),
        ("embedding", "bert", {**BERT, "tokenizer": {"kind": "jieba"}}),
        ("qa", "bert-unilm", {"max_passage_tokens": 256, "max_answer_tokens": 32}),
        ("qa", "bert-unilm", _without(QA, "max_question_tokens")),
        ("qa", "bert-unilm", _without(QA, "tokenizer")),
        ("qa", "bert-unilm", {**QA, "max_answer_tokens": 0}),
        ("qa", "bert-unilm", {**QA, "max_answer_tokens": "32"}),
        ("qa", "bert-unilm", {**QA, "max_answer_tokens": True}),
        ("qa", "bert-unilm", {**QA, "decoding": {"beam_size": None}}),
        ("qa", "bert-unilm", {**QA, "tokenizer": {**WORDPIECE, "vocab": "/etc/passwd"}}),
        ("generation", "cln-lm", {}),
        ("generation", "cln-lm", GENERATION),
        ("generation", "cln-lm", {"labels": ["neg", "pos"], "tokenizer": WORDPIECE}),
        ("generation", "cln-lm", {**GENERATION, "labels": []}),
        ("generation", "cln-lm", {**GENERATION, "labels": ["pos", "pos"]}),
        ("generation", "cln-lm", {**GENERATION, "condition_dim": -4}),
        ("generation", "cln-lm", {**GENERATION, "labels": ["a"], "sampling": {"top_p": 2.0}}),
        ("density", "iresnet", {"input_dim": 64, "levels": 17}),
        ("density", "iresnet", {**DENSITY, "input_dim": 64.0}),
        ("density", "iresnet", {**DENSITY, "levels": 1}),
        ("qa", "x", QA),  # no runtime serves this family
        ("translation", "jose", {}),
    ],
)
def test_task_keys_are_checked_before_writing(tmp_path, task, family, extra):
    def must_not_run(folder: Path) -> list[str]:
        raise AssertionError("write_model ran")

    with pytest.raises(ValueError):
        _export(tmp_path, task=task, family=family, extra=extra, write_model=must_not_run)
    assert not (tmp_path / "jose-zh").exists()


def test_a_manifest_the_runtime_cannot_load_never_reaches_the_store(tmp_path):
    # Before the typed contract, this exported fine and the service failed with KeyError.
    first = _export(tmp_path, task="qa", family="bert-unilm", extra=QA)
    with pytest.raises(ValueError, match="max_question_tokens"):
        _export(tmp_path, task="qa", family="bert-unilm", extra=_without(QA, "max_question_tokens"))
    assert _listing(tmp_path / "jose-zh") == ["1"]
    assert json.loads((first / MANIFEST_FILENAME).read_text())["max_question_tokens"] == 32


@pytest.mark.parametrize(
    "task,family,extra",
    [
        ("embedding", "jose", {"dim": 8, "tokenizer": {"kind": "jieba", "lowercase": True}}),
        ("embedding", "bert", {**BERT, "pooling": "mean"}),
        ("qa", "bert-unilm", {**QA, "decoding": {"beam_size": 4, "extractive": True}}),
        ("generation", "cln-lm", {**GENERATION, "labels": ["neg", "pos"]}),
        ("generation", "cln-lm", {**GENERATION, "condition_dim": 4}),
        ("density", "iresnet", DENSITY),
        ("density", "iresnet", {**DENSITY, "levels": None, "score": {"n_terms": 4}}),
    ],
)
def test_each_task_with_its_keys_exports(tmp_path, task, family, extra):
    path = _export(tmp_path, task=task, family=family, extra=extra)
    manifest = json.loads((path / MANIFEST_FILENAME).read_text())
    assert (manifest["task"], manifest["family"]) == (task, family)
    assert {key: manifest[key] for key in extra} == extra
    typed = read_manifest(path)
    assert (typed.task, typed.family, typed.version) == (task, family, 1)


@pytest.mark.parametrize("signatures", [[], "serving_default", [1]])
def test_write_model_must_name_its_signatures(tmp_path, signatures):
    def write(folder: Path):
        _fake_saved_model(folder)
        return signatures

    with pytest.raises(ValueError, match="signature"):
        _export(tmp_path, write_model=write)
    assert _listing(tmp_path / "jose-zh") == []


def test_library_versions_are_the_running_ones():
    versions = library_versions()
    assert versions["tensorflow"] == tf.__version__
    assert versions["numpy"] == np.__version__
    assert all(isinstance(v, str) and v for v in versions.values())


def test_real_saved_model_round_trip(tmp_path):
    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def double(self, x):
            return {"y": 2.0 * x}

    module = Doubler()

    def write(folder: Path) -> list[str]:
        tf.saved_model.save(module, str(folder), signatures={"double": module.double})
        return ["double"]

    path = _export(tmp_path, write_model=write)
    loaded = tf.saved_model.load(str(path))
    manifest = json.loads((path / MANIFEST_FILENAME).read_text())
    assert sorted(loaded.signatures) == manifest["signatures"] == ["double"]
    out = loaded.signatures["double"](tf.constant([1.0, 3.0]))["y"]
    np.testing.assert_allclose(out.numpy(), [2.0, 6.0])


# ------------------------------------------------------ temporary folders left by killed jobs
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp_folder(model_dir: Path, name: str, age_s: float = 0.0) -> Path:
    folder = model_dir / name
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"half")
    if age_s:
        stamp = time.time() - age_s
        os.utime(folder, (stamp, stamp))
    return folder


def test_a_killed_jobs_temp_folder_is_removed_by_the_next_export(tmp_path):
    model_dir = tmp_path / "jose-zh"
    dead = _temp_folder(model_dir, f".tmp-1-{this_host()}-{_dead_pid()}-0badc0de")
    assert temp_folder_owner(dead.name) is not None
    path = _export(tmp_path)
    assert _listing(model_dir) == ["1"] and path == model_dir / "1"


def test_temp_folders_whose_owner_cannot_be_checked_wait_a_day(tmp_path):
    model_dir = tmp_path / "jose-zh"
    day = STALE_TEMP_AGE_S
    kept = [
        _temp_folder(model_dir, ".tmp-1-other-host-4242-0badc0de", age_s=day - 60),
        _temp_folder(model_dir, ".tmp-2-0badc0de", age_s=60),  # named before owners were
        # This process's own (another thread's export): alive, whatever its age.
        _temp_folder(model_dir, f".tmp-3-{this_host()}-{os.getpid()}-0badc0de", age_s=2 * day),
    ]
    _temp_folder(model_dir, ".tmp-4-other-host-4242-0badc0de", age_s=day + 60)
    _temp_folder(model_dir, ".tmp-5-0badc0de", age_s=day + 60)
    assert remove_stale_temp_folders(model_dir) == [
        model_dir / ".tmp-4-other-host-4242-0badc0de",
        model_dir / ".tmp-5-0badc0de",
    ]
    assert _listing(model_dir) == sorted(folder.name for folder in kept)


def test_a_reused_pid_does_not_keep_a_dead_jobs_folder(tmp_path):
    # A process that started after the folder last changed cannot be the one that made it.
    model_dir = tmp_path / "jose-zh"
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        name = f".tmp-1-{this_host()}-{stranger.pid}-0badc0de"
        _temp_folder(model_dir, name, age_s=3600)
        assert remove_stale_temp_folders(model_dir) == [model_dir / name]
        fresh = _temp_folder(model_dir, f".tmp-2-{this_host()}-{stranger.pid}-0badc0de")
        assert remove_stale_temp_folders(model_dir) == [] and fresh.is_dir()
    finally:
        stranger.kill()
        stranger.wait()


# Another process exporting the same model, paused inside write_model until told to go on. It
# loads the exporter's file alone: the same code, without importing TensorFlow for the package.
_CONCURRENT_EXPORT = """
import importlib.util, json, sys, time
from pathlib import Path

spec = importlib.util.spec_from_file_location("exporter", sys.argv[1])
exporter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exporter)
exporter.library_versions = lambda: {"python": sys.version.split()[0]}
store, signal = Path(sys.argv[2]), Path(sys.argv[3])

def write_model(folder):
    (folder / "saved_model.pb").write_bytes(b"from the other job")
    (signal / "writing").write_text(str(folder))
    while not (signal / "go").exists():
        time.sleep(0.05)
    return ["embed"]

path = exporter.export_version(
    store, "jose-zh", task="embedding", family="jose", write_model=write_model,
    config={}, data={}, metrics={}, extra={"dim": 8, "tokenizer": {"kind": "jieba"}},
)
print(path.name)
"""


def test_a_live_concurrent_exports_temp_folder_survives(tmp_path):
    signal = tmp_path / "signal"
    signal.mkdir()
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CONCURRENT_EXPORT,
            str(Path(export_module.__file__)),
            str(tmp_path / "store"),
            str(signal),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (signal / "writing").exists():
            assert other.poll() is None, "the other export ended early"
            assert time.monotonic() < deadline, "the other export never started writing"
            time.sleep(0.05)
        others = Path((signal / "writing").read_text())
        assert temp_folder_owner(others.name) == TempFolderOwner(this_host(), other.pid)

        mine = _export(tmp_path / "store")  # removes stale folders of this model first
        assert others.is_dir() and (others / "saved_model.pb").read_bytes() == b"from the other job"
        assert remove_stale_temp_folders(others.parent) == [] and others.is_dir()
    finally:
        (signal / "go").write_text("")
        out, _ = other.communicate(timeout=120)
    assert other.returncode == 0
    # The other job took the next number, as when two jobs race.
    assert (mine.name, out.strip()) == ("1", "2")
    assert _listing(tmp_path / "store" / "jose-zh") == ["1", "2"]
    assert (tmp_path / "store" / "jose-zh" / "2" / "saved_model.pb").read_bytes() == (
        b"from the other job"
    )
