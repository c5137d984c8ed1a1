import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from training.common.export import (
    MANIFEST_FILENAME,
    REQUIRED_MANIFEST_KEYS,
    export_version,
    library_versions,
    next_version,
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
    "name", ["", ".", "..", "a/b", "../x", "a b", "模型", "x\n", "a\\b", "/abs"]
)
def test_invalid_names_rejected(tmp_path, name):
    with pytest.raises(ValueError):
        validate_model_name(name)
    with pytest.raises(ValueError):
        _export(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["jose", "bert-base_zh.v2", "A1", "...", "-x"])
def test_valid_names_accepted(name):
    assert validate_model_name(name) == name


def test_extra_may_not_override_required_keys(tmp_path):
    with pytest.raises(ValueError, match="version"):
        _export(tmp_path, extra={"version": 9, "dim": 8, "tokenizer": {}})
    assert not (tmp_path / "jose-zh").exists()


@pytest.mark.parametrize(
    "task,extra",
    [
        ("embedding", {"dim": 8}),
        ("qa", {"max_passage_tokens": 256}),
        ("generation", {}),
        ("density", {"input_dim": 64, "levels": 17}),
        ("translation", {}),
    ],
)
def test_task_keys_are_checked_before_writing(tmp_path, task, extra):
    def must_not_run(folder: Path) -> list[str]:
        raise AssertionError("write_model ran")

    with pytest.raises(ValueError):
        _export(tmp_path, task=task, extra=extra, write_model=must_not_run)
    assert not (tmp_path / "jose-zh").exists()


@pytest.mark.parametrize(
    "task,extra",
    [
        ("qa", {"max_passage_tokens": 256, "max_answer_tokens": 32}),
        ("generation", {"labels": ["neg", "pos"]}),
        ("generation", {"condition_dim": 4}),
        ("density", {"input_dim": 64, "levels": None, "preprocessing": {}}),
    ],
)
def test_each_task_with_its_keys_exports(tmp_path, task, extra):
    path = _export(tmp_path, task=task, family="x", extra=extra)
    manifest = json.loads((path / MANIFEST_FILENAME).read_text())
    assert manifest["task"] == task
    assert {key: manifest[key] for key in extra} == extra


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
