"""Atomic export of a trained model as a new version in the model store, with its manifest.

Layout (TensorFlow Serving's): `<store>/<name>/<version>/` holding a SavedModel and
`manifest.json`. A version is built in a hidden temporary folder beside the final one and
renamed into place only when complete, so a reader of the store never sees half a version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_FILENAME = "manifest.json"
SAVED_MODEL_FILENAME = "saved_model.pb"
# Keys every manifest has (DESIGN.md, "The model store"); per-task keys come in `extra`.
REQUIRED_MANIFEST_KEYS = (
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
# Manifest keys each task adds (DESIGN.md, "The model store"). For generation, at least one of
# `labels` (names in condition order) and `condition_dim`.
TASK_MANIFEST_KEYS: dict[str, tuple[str, ...]] = {
    "embedding": ("dim", "tokenizer"),
    "qa": ("max_passage_tokens", "max_answer_tokens"),
    "generation": (),
    "density": ("input_dim", "levels", "preprocessing"),
}
GENERATION_CONDITION_KEYS = ("labels", "condition_dim")
# Temporary version folders start with a dot so that no reader takes them for a version.
TEMP_PREFIX = ".tmp-"
# Attempts at renaming into place when other jobs keep taking the version number first.
MAX_RENAME_ATTEMPTS = 100
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")


def validate_model_name(name: str) -> str:
    """Returns `name` if it is a valid model name, else raises ValueError.

    Valid: letters, digits, `-`, `_` and `.`, and not `.` or `..`, so a name is always one
    folder inside the store and never a path out of it.
    """
    if not isinstance(name, str) or not _MODEL_NAME_RE.fullmatch(name) or name in {".", ".."}:
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '-', '_' and '.' "
            "(and not '.' or '..')"
        )
    return name


def _check_task_keys(task: str, extra: Mapping[str, Any]) -> None:
    """Raises ValueError if `task` is unknown or `extra` lacks a key its manifest must have."""
    if task not in TASK_MANIFEST_KEYS:
        raise ValueError(f"unknown task {task!r}; one of {sorted(TASK_MANIFEST_KEYS)}")
    missing = [key for key in TASK_MANIFEST_KEYS[task] if key not in extra]
    if missing:
        raise ValueError(f"a {task} manifest needs the extra keys {missing}")
    if task == "generation" and not any(key in extra for key in GENERATION_CONDITION_KEYS):
        raise ValueError(f"a generation manifest needs one of {list(GENERATION_CONDITION_KEYS)}")


def _existing_versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    versions = []
    for entry in model_dir.iterdir():
        if entry.is_dir() and entry.name.isascii() and entry.name.isdigit():
            number = int(entry.name)
            if number > 0:
                versions.append(number)
    return versions


def next_version(store: str | os.PathLike[str], name: str) -> int:
    """The number for a new version of model `name`: the highest existing version + 1, or 1.

    Args:
        store: the model store folder.
        name: the model's name.
    """
    versions = _existing_versions(Path(store) / validate_model_name(name))
    return max(versions, default=0) + 1


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that a SavedModel's behaviour depends on."""
    import keras
    import tensorflow as tf

    try:
        project = metadata.version("kexue-serve")
    except metadata.PackageNotFoundError:
        project = "unknown"
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "kexue-serve": project,
    }


def _jsonable(value: Any) -> Any:
    """Turns config and metric values into plain JSON: paths to strings, NumPy to Python,
    dataclasses to dicts, and NaN/inf to null (they are not JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot write {type(value).__name__} to the manifest: {value!r}")


def _fsync_tree(root: Path) -> None:
    """Flushes every file and folder under `root` to disk, so a rename publishes whole files."""
    for folder, _, files in os.walk(root):
        for file in files:
            fd = os.open(os.path.join(folder, file), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, ensure_ascii=False, indent=2, allow_nan=False)
    with open(folder / MANIFEST_FILENAME, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def export_version(
    store: str | os.PathLike[str],
    name: str,
    *,
    task: str,
    family: str,
    write_model: Callable[[Path], list[str]],
    config: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
    version: int | None = None,
) -> Path:
    """Writes a new version of model `name` into the store, atomically.

    Builds `<store>/<name>/.tmp-<version>-<random>/`, calls `write_model` on it, writes
    `manifest.json`, flushes everything to disk and renames the folder to
    `<store>/<name>/<version>/`. If anything fails, the temporary folder is removed and the
    store is as before. If another job takes the version number first (and no number was
    asked for), the next free number is used.

    Args:
        store: the model store folder (created if missing).
        name: the model's name (see `validate_model_name`).
        task: `embedding`, `qa`, `generation` or `density`.
        family: the model family, e.g. `jose`, `bert-unilm`, `cln-lm`, `iresnet`.
        write_model: writes the SavedModel into the folder it is given (e.g. with
            `tf.saved_model.save(module, folder, signatures=...)`) and returns the names of the
            signatures it exported.
        config: what built the model (hyperparameters, command-line options).
        data: what it was trained on (see `training.common.data.data_summary`).
        metrics: its evaluation.
        extra: the task's own manifest keys, checked against `TASK_MANIFEST_KEYS` (e.g.
            `{"dim": 100, "tokenizer": {...}}` for embedding); may not reuse a required key.
        version: the version number to write; default `next_version(store, name)`.

    Returns:
        The final version folder.

    Raises:
        ValueError: bad name, task, version or `extra` keys (all checked before
            `write_model` runs), or `write_model` wrote no SavedModel or no signature names.
        FileExistsError: the explicitly requested `version` exists already.
    """
    name = validate_model_name(name)
    extra = dict(extra or {})
    clash = set(extra) & set(REQUIRED_MANIFEST_KEYS)
    if clash:
        raise ValueError(f"extra may not override the manifest keys {sorted(clash)}")
    _check_task_keys(task, extra)
    if not family or not isinstance(family, str):
        raise ValueError(f"family must be a non-empty string, got {family!r}")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(f"version must be a positive integer, got {version!r}")
    model_dir = Path(store) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    number = version if version is not None else next_version(store, name)
    if version is not None and (model_dir / str(number)).exists():
        raise FileExistsError(f"{model_dir / str(number)} exists already")

    tmp_dir = model_dir / f"{TEMP_PREFIX}{number}-{secrets.token_hex(4)}"
    tmp_dir.mkdir()
    try:
        signatures = write_model(tmp_dir)
        if not (tmp_dir / SAVED_MODEL_FILENAME).is_file():
            raise ValueError(f"write_model wrote no {SAVED_MODEL_FILENAME} into {tmp_dir}")
        if (
            isinstance(signatures, str)
            or not signatures
            or not all(isinstance(s, str) for s in signatures)
        ):
            raise ValueError(
                f"write_model must return the exported signature names, got {signatures!r}"
            )
        manifest: dict[str, Any] = {
            "name": name,
            "version": number,
            "task": task,
            "family": family,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": _jsonable(config),
            "data": _jsonable(data),
            "metrics": _jsonable(metrics),
            "signatures": list(signatures),
            "library_versions": library_versions(),
            **_jsonable(extra),
        }
        _write_manifest(tmp_dir, manifest)
        _fsync_tree(tmp_dir)
        final_dir = _rename_into_place(tmp_dir, model_dir, manifest, fixed=version is not None)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    # Make the rename itself durable.
    _fsync_dir(model_dir)
    return final_dir


def _rename_into_place(
    tmp_dir: Path, model_dir: Path, manifest: dict[str, Any], *, fixed: bool
) -> Path:
    """Renames `tmp_dir` to its version folder; on a collision takes the next free number."""
    for _ in range(MAX_RENAME_ATTEMPTS):
        final_dir = model_dir / str(manifest["version"])
        # rename(2) would silently replace an empty folder of that name, so check first;
        # a folder made between the check and the rename makes the rename fail instead.
        if not final_dir.exists():
            try:
                os.rename(tmp_dir, final_dir)
                return final_dir
            except OSError:
                if not final_dir.exists():
                    raise
        if fixed:
            raise FileExistsError(f"{final_dir} exists already")
        manifest["version"] = max(_existing_versions(model_dir), default=0) + 1
        _write_manifest(tmp_dir, manifest)
    raise RuntimeError(f"no free version number in {model_dir} after {MAX_RENAME_ATTEMPTS} tries")
