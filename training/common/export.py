"""Atomic export of a trained model as a new version in the model store, with its manifest.

Layout and manifest: `models.store`, the contract the service reads with. A version is built in a
hidden temporary folder beside the final one, its manifest is checked against the contract, and
only then is it renamed into place, so a reader of the store never sees half a version nor one its
runtime cannot load. Temporary folders that killed jobs left behind are removed by the next export
of the same model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from models.data_errors import DataError
from models.store import (
    MANIFEST_FILENAME,
    REQUIRED_MANIFEST_KEYS,
    SAVED_MODEL_FILENAME,
    TEMP_PREFIX,
    manifest_type,
    parse_manifest,
    temp_folder_name,
    temp_folder_owner,
    this_host,
    validate_model_name,
    version_folders,
)

log = logging.getLogger(__name__)

# Attempts at renaming into place when other jobs keep taking the version number first.
MAX_RENAME_ATTEMPTS = 100
# A temporary folder whose owner cannot be checked (another host, or a name from before owners
# were recorded) is taken for a killed job's once untouched this long: an export writes its
# folder in minutes, so a day leaves a wide margin for slow disks.
STALE_TEMP_AGE_S = 24 * 3600
# /proc gives a process's start to a clock tick and the boot time to the second.
_START_TIME_SLACK_S = 2.0
# Stand-ins while checking a manifest before `write_model` runs: only it knows its signatures.
_PENDING_SIGNATURES = ["pending"]


def _existing_versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return list(version_folders(model_dir)[0])


def next_version(store: str | os.PathLike[str], name: str) -> int:
    """The number for a new version of model `name`: the highest existing version + 1, or 1.

    Args:
        store: the model store folder.
        name: the model's name.
    """
    versions = _existing_versions(Path(store) / validate_model_name(name))
    return max(versions, default=0) + 1


def check_store(store: str | os.PathLike[str], name: str, task: str) -> None:
    """Refuses, before any training, an `--out` that is not a model store a `task` model named
    `name` can be added to: a file; a model's folder or a version folder (a user who gives
    `model_store/my-flow` meant the store, and the version would land where the service skips it,
    or inside a served version); a model `name` whose versions are of another task (the new
    version would replace a model its callers reach by another endpoint). The model's task is its
    oldest version's that reads, as the service has it at start-up (service.registry): a version
    of another task copied in by hand beside it is refused there, and does not change it here.

    Raises:
        DataError: saying which, and what to give instead.
    """
    store = Path(store)
    if store.exists() and not store.is_dir():
        raise DataError(f"--out {store}: a file; --out is the model store, a folder")
    if (store / MANIFEST_FILENAME).is_file():
        raise DataError(
            f"--out {store}: a version folder (it holds {MANIFEST_FILENAME}); --out is the "
            f"model store, the folder of models ({store.parent.parent}?)"
        )
    if store.is_dir():
        versions = version_folders(store)[0]
        if any((path / MANIFEST_FILENAME).is_file() for path in versions.values()):
            raise DataError(
                f"--out {store}: a model's folder (it holds versions "
                f"{', '.join(map(str, sorted(versions)))}); --out is the model store, the folder "
                f"of models ({store.parent}?), and --name the model"
            )
    model_dir = store / validate_model_name(name)
    versions = version_folders(model_dir)[0] if model_dir.is_dir() else {}
    for number in sorted(versions):
        try:  # only its task: a manifest of an older release may miss today's keys
            theirs = json.loads((versions[number] / MANIFEST_FILENAME).read_text("utf-8"))
            their_task, their_family = str(theirs["task"]), str(theirs.get("family"))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # a version that does not read says nothing of the model
        if their_task != task:
            raise DataError(
                f"--name {name}: {model_dir} holds {their_task} versions ({their_family}, "
                f"version {number}); {'an' if task[0] in 'aeiou' else 'a'} {task} model needs "
                "a name of its own"
            )
        return


def _process_started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), where /proc says; else None."""
    try:
        # Field 22 counts clock ticks since boot; the name in field 2 may hold spaces, so
        # count from its closing parenthesis.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _owner_alive(folder: Path, modified: float) -> bool | None:
    """Whether the job that made temporary `folder` still runs: None when it cannot be told."""
    owner = temp_folder_owner(folder.name)
    if owner is None or owner.host != this_host():
        return None
    if owner.pid == os.getpid():
        return True
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, as another user
    # The owner made the folder, so it started before the folder last changed; a process that
    # started later only reuses the dead owner's number.
    started = _process_started_at(owner.pid)
    return started is None or started <= modified + _START_TIME_SLACK_S


def remove_stale_temp_folders(model_dir: Path, now: float | None = None) -> list[Path]:
    """Removes the temporary folders in `model_dir` that no running job will finish.

    A folder whose owner (recorded in its name) ran on this host and has exited is removed at
    once; a folder whose owner cannot be checked, once untouched for `STALE_TEMP_AGE_S`. A live
    job's folder is never removed.

    Returns:
        The folders removed.
    """
    now = time.time() if now is None else now
    removed = []
    for entry in sorted(model_dir.iterdir()) if model_dir.is_dir() else []:
        if not entry.name.startswith(TEMP_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            modified = entry.stat().st_mtime
        except FileNotFoundError:  # its owner renamed it into place meanwhile
            continue
        alive = _owner_alive(entry, modified)
        if alive is False or (alive is None and now - modified > STALE_TEMP_AGE_S):
            shutil.rmtree(entry, ignore_errors=True)
            why = (
                "its job has exited" if alive is False else f"untouched for {now - modified:.0f} s"
            )
            log.warning("removed the temporary folder %s: %s", entry, why)
            removed.append(entry)
    return removed


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

    Removes this model's temporary folders that killed jobs left (`remove_stale_temp_folders`),
    builds `<store>/<name>/.tmp-<version>-<host>-<pid>-<random>/`, calls `write_model` on it,
    checks the manifest against `models.store`'s contract, writes `manifest.json`, flushes
    everything to disk and renames the folder to `<store>/<name>/<version>/`. If anything fails,
    the temporary folder is removed and the store is as before. If another job takes the version
    number first (and no number was asked for), the next free number is used.

    Args:
        store: the model store folder (created if missing).
        name: the model's name (see `models.store.validate_model_name`).
        task: `embedding`, `qa`, `generation` or `density`.
        family: the model family: a pair in `models.store.MANIFEST_TYPES`, e.g. `qa`/`bert-unilm`.
        write_model: writes the SavedModel into the folder it is given (e.g. with
            `tf.saved_model.save(module, folder, signatures=...)`) and returns the names of the
            signatures it exported.
        config: what built the model (hyperparameters, command-line options).
        data: what it was trained on (see `training.common.data.data_summary`).
        metrics: its evaluation.
        extra: the (task, family)'s own manifest keys, typed by its `models.store` manifest
            (e.g. `{"dim": 100, "tokenizer": {...}}` for JoSE); may not reuse a required key.
        version: the version number to write; default `next_version(store, name)`.

    Returns:
        The final version folder.

    Raises:
        ValueError: bad name, task, family, version or `extra` keys (all checked before
            `write_model` runs), or `write_model` wrote no SavedModel or no signature names.
        FileExistsError: the explicitly requested `version` exists already.
    """
    name = validate_model_name(name)
    extra = _jsonable(dict(extra or {}))
    clash = set(extra) & set(REQUIRED_MANIFEST_KEYS)
    if clash:
        raise ValueError(f"extra may not override the manifest keys {sorted(clash)}")
    kind = manifest_type(task, family)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(f"version must be a positive integer, got {version!r}")
    manifest: dict[str, Any] = {
        "name": name,
        "version": version or 1,
        "task": task,
        "family": family,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": _jsonable(config),
        "data": _jsonable(data),
        "metrics": _jsonable(metrics),
        "signatures": _PENDING_SIGNATURES,
        "library_versions": {},
        **extra,
    }
    # Everything but what write_model returns is known now: refuse a bad manifest before the
    # SavedModel is written.
    parse_manifest(manifest, f"the manifest of {name}", kind)
    model_dir = Path(store) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_folders(model_dir)
    number = version if version is not None else next_version(store, name)
    if version is not None and (model_dir / str(number)).exists():
        raise FileExistsError(f"{model_dir / str(number)} exists already")

    tmp_dir = model_dir / temp_folder_name(number)
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
        manifest.update(
            version=number,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            # Read again: write_model may add to them (training.bert records the SavedModel's
            # error against the Keras model in `metrics`).
            config=_jsonable(config),
            data=_jsonable(data),
            metrics=_jsonable(metrics),
            signatures=list(signatures),
            library_versions=library_versions(),
        )
        parse_manifest(manifest, str(tmp_dir / MANIFEST_FILENAME), kind)
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
