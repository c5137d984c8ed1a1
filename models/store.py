"""The model store's contract, shared by the training jobs (which write it) and the service (which
reads it). TensorFlow-free: the service imports it before any model is loaded.

Layout (TensorFlow Serving's):

    <store>/<model-name>/<version>/     version: ASCII digits, a positive integer; highest wins
        saved_model.pb, variables/, assets/
        manifest.json

Training jobs build a version in `<store>/<model-name>/.tmp-<version>-<random>/` and rename it into
place when complete, so a reader never sees half a version.
"""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST_FILENAME = "manifest.json"
SAVED_MODEL_FILENAME = "saved_model.pb"
# Temporary version folders start with a dot so that no reader takes them for a version.
TEMP_PREFIX = ".tmp-"

# Letters, digits, '-', '_', '.'; no leading dot (so never '.', '..' or a hidden folder); at most
# 128 characters. The same rule for the service's URLs and request fields and for training's --name.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$"
MAX_MODEL_NAME_CHARS = 128
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}")
# ASCII digits only: str.isdigit() also takes '²' (int() then raises) and '١٢' (int() reads 12).
_VERSION_RE = re.compile(r"[0-9]+")


def is_model_name(name: object) -> bool:
    return isinstance(name, str) and _MODEL_NAME_RE.fullmatch(name) is not None


def validate_model_name(name: str) -> str:
    """Returns `name` if it is a valid model name, else raises ValueError."""
    if not is_model_name(name):
        raise ValueError(
            f"invalid model name {name!r}: 1 to {MAX_MODEL_NAME_CHARS} letters, digits, '-', "
            "'_' and '.', not starting with '.'"
        )
    return name


def parse_version(folder_name: str) -> int | None:
    """The version number a folder name stands for, or None if it is not a version folder."""
    if _VERSION_RE.fullmatch(folder_name) is None:
        return None
    number = int(folder_name)
    return number if number > 0 else None


def version_folders(model_dir: Path) -> tuple[dict[int, Path], list[str]]:
    """({version: folder}, [names skipped]) for the entries of one model's folder.

    Skipped: anything that is not a folder named by `parse_version`, other than a training job's
    temporary folders (expected, so not worth a warning). Two names for one number ('1', '01') keep
    the first in sorted order and skip the other.
    """
    versions: dict[int, Path] = {}
    skipped: list[str] = []
    for entry in sorted(model_dir.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(TEMP_PREFIX):
            continue
        number = parse_version(entry.name)
        if number is None or number in versions or not entry.is_dir():
            skipped.append(entry.name)
            continue
        versions[number] = entry
    return versions, skipped
