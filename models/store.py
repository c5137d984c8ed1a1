"""The model store's contract, shared by the training jobs (which write it) and the service (which
reads it). TensorFlow-free: the service imports it before any model is loaded.

Layout (TensorFlow Serving's):

    <store>/<model-name>/<version>/     version: ASCII digits, a positive integer; highest wins
        saved_model.pb, variables/, assets/
        manifest.json                   one of the typed manifests below, by (task, family)
    <store>/<model-name>/labels.json    optional: {"stable": 1, "canary": 2}, names of versions

Training jobs build a version in `<store>/<model-name>/.tmp-<version>-<host>-<pid>-<random>/` and
rename it into place when complete, so a reader never sees half a version; the host and process id
say whose it is, so that a later job can tell a killed job's leftovers from a live export.

A manifest has the keys of `Manifest` and those of its (task, family)'s subclass: exactly what the
runtime that serves it reads, typed and checked. The exporter validates a manifest before its
version is renamed into place and the service parses it when loading, so a version that exports
is a version that loads. Keys beyond the contract are kept (a newer export stays readable).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

MANIFEST_FILENAME = "manifest.json"
SAVED_MODEL_FILENAME = "saved_model.pb"
# Version labels of a model (TensorFlow Serving's `version_labels`), beside its version folders.
LABELS_FILENAME = "labels.json"
# Temporary version folders start with a dot so that no reader takes them for a version.
TEMP_PREFIX = ".tmp-"

# Letters, digits, '-', '_', '.'; no leading dot (so never '.', '..' or a hidden folder); at most
# 128 characters. The same rule for the service's URLs and request fields and for training's --name.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$"
MAX_MODEL_NAME_CHARS = 128
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}")
# ASCII digits only: str.isdigit() also takes '²' (int() then raises) and '١٢' (int() reads 12).
_VERSION_RE = re.compile(r"[0-9]+")
# The largest version number: the largest integer a JSON number keeps exactly in every client
# (2**53 - 1, JavaScript's Number.MAX_SAFE_INTEGER), so that a request can name every version the
# store serves and a client reads the `version` of an answer as it is. Timestamps in seconds or
# milliseconds are far below it; a folder past it (nanoseconds) is no version.
MAX_VERSION = 2**53 - 1
# A version label: starts with a letter (so it is never read as a version number), then letters,
# digits, '-', '_', '.'; at most 64 characters.
LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$"
_LABEL_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")


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
    """The version number a folder name stands for (1 to MAX_VERSION), or None if it is not a
    version folder."""
    if _VERSION_RE.fullmatch(folder_name) is None or len(folder_name.lstrip("0")) > 16:
        return None
    number = int(folder_name)
    return number if 0 < number <= MAX_VERSION else None


def version_folders(model_dir: Path) -> tuple[dict[int, Path], list[str]]:
    """({version: folder}, [names skipped]) for the entries of one model's folder.

    Skipped: anything that is not a folder named by `parse_version`, other than a training job's
    temporary folders (expected, so not worth a warning). Two names for one number ('1', '01') keep
    the first in sorted order and skip the other.
    """
    versions: dict[int, Path] = {}
    skipped: list[str] = []
    for entry in sorted(model_dir.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(TEMP_PREFIX) or entry.name == LABELS_FILENAME:
            continue
        number = parse_version(entry.name)
        if number is None or number in versions or not entry.is_dir():
            skipped.append(entry.name)
            continue
        versions[number] = entry
    return versions, skipped


def is_label(name: object) -> bool:
    return isinstance(name, str) and _LABEL_RE.fullmatch(name) is not None


def parse_labels(text: str) -> dict[str, int]:
    """The labels of a `labels.json` text: a JSON object of label -> version number.

    Raises ValueError naming what is wrong: not JSON, not an object, a key that is not a label
    (LABEL_PATTERN), a value that is not a positive integer (`true`, `1.0` and `"1"` included: a
    label names one version, exactly).
    """
    duplicated: list[str] = []

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        duplicated.extend(sorted({key for key in keys if keys.count(key) > 1}))
        return dict(pairs)

    try:
        body = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from None
    if duplicated:  # json.loads would keep the last silently
        raise ValueError(f"labels given twice: {', '.join(map(repr, duplicated))}")
    if not isinstance(body, dict):
        raise ValueError(f"a JSON object of label -> version is wanted, not {type(body).__name__}")
    problems = []
    for label, version in body.items():
        if not is_label(label):
            problems.append(
                f"{label!r:.80} is not a label (a letter, then up to 63 letters, digits, '-', "
                "'_' or '.')"
            )
        elif type(version) is not int or not 0 < version <= MAX_VERSION:
            problems.append(
                f"{label}: {version!r:.40} is not a version number (an integer from 1 to "
                f"{MAX_VERSION})"
            )
    if problems:
        raise ValueError("; ".join(problems))
    return dict(body)


# ------------------------------------------------------------ temporary folders of training jobs
# `.tmp-<version>-<host>-<pid>-<random>`: the host may itself hold '-', the pid and random part not.
_TEMP_RE = re.compile(
    r"\.tmp-(?P<version>[0-9]+)-(?P<host>.+)-(?P<pid>[0-9]+)-(?P<token>[0-9a-f]+)"
)


@dataclass(frozen=True)
class TempFolderOwner:
    """The process that is building a temporary version folder."""

    host: str  # `this_host()` of the machine it ran on
    pid: int


def this_host() -> str:
    """Where a process id names one process: the host name and, where /proc shows it, the
    process-id namespace (containers sharing a host name and a store count their pids apart).
    Spelled for a folder name: no '/', nothing odd."""
    name = re.sub(r"[^A-Za-z0-9.\-]", "_", socket.gethostname())[:64] or "localhost"
    try:
        return f"{name}_{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return name


def temp_folder_name(version: int) -> str:
    """A fresh temporary folder name for building `version` in this process."""
    return f"{TEMP_PREFIX}{version}-{this_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def temp_folder_owner(folder_name: str) -> TempFolderOwner | None:
    """Whose temporary folder this is, or None for a name without an owner (older jobs wrote
    `.tmp-<version>-<random>`)."""
    match = _TEMP_RE.fullmatch(folder_name)
    if match is None:
        return None
    return TempFolderOwner(host=match["host"], pid=int(match["pid"]))


# ------------------------------------------------------------------------------ typed manifests
# Counts in a manifest are JSON integers above zero: strict, so that `true`, `"32"` and `32.0` are
# refused rather than read as 1, 32 and 32.
PositiveCount = Annotated[int, Field(strict=True, gt=0)]
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


def _aware_timestamp(value: str) -> str:
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
    if stamp.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return value


def _relative_inside(value: str) -> str:
    # The service reads nothing outside the store; the runtime also checks the resolved path
    # (symbolic links), this refuses the obvious cases when the manifest is written.
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"must be a path inside the version folder, got {value!r}")
    return value


class _Entry(BaseModel):
    """A manifest entry: typed where a runtime reads it, open to keys the contract does not know."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Manifest(_Entry):
    """`manifest.json`: the keys every version has (DESIGN.md, "The model store").

    A subclass per (task, family) adds what its runtime reads; `read_manifest` picks it.
    """

    name: ModelName
    version: PositiveCount
    task: NonEmpty
    family: NonEmpty
    created_at: Annotated[str, AfterValidator(_aware_timestamp)]
    config: dict[str, Any]  # what built it: hyperparameters, command-line options
    data: dict[str, Any]  # what it was trained on: path, format, counts, a hash
    metrics: dict[str, Any]  # its evaluation
    signatures: Annotated[list[NonEmpty], Field(min_length=1)]
    library_versions: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        """The manifest as written (extra keys included, defaults the file leaves out left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


class WordPieceTokenizer(_Entry):
    """A BERT WordPiece tokenizer whose vocabulary ships in the version folder."""

    kind: Literal["wordpiece"] = "wordpiece"
    vocab: Annotated[str, AfterValidator(_relative_inside)] = "assets/vocab.txt"
    lowercase: bool = True
    strip_accents: bool | None = None  # None: strip when lower-casing, as BERT's tokenizer does


class JoseTokenizer(_Entry):
    """How a JoSE model splits text into words (`models.jose.tokenizer.Tokenizer.to_config`).
    "whitespace" is `str.split` for the versions trained with it; "basic" splits punctuation off."""

    kind: Literal["jieba", "char", "basic", "whitespace"]
    lowercase: bool = True
    strip_accents: bool = False  # "basic" only


class EmbeddingManifest(Manifest):
    task: Literal["embedding"]
    dim: PositiveCount  # length of the vectors


class JoseEmbeddingManifest(EmbeddingManifest):
    family: Literal["jose"]
    tokenizer: JoseTokenizer


class BertEmbeddingManifest(EmbeddingManifest):
    family: Literal["bert"]
    tokenizer: WordPieceTokenizer
    # Tokens per text, [CLS] and [SEP] included (at most the position table).
    max_seq_len: Annotated[int, Field(strict=True, gt=2)]


class QADecoding(_Entry):
    """How the model answers when a request does not say."""

    beam_size: PositiveCount = 1
    extractive: Annotated[bool, Field(strict=True)] = False
    # "input": the model was trained with each answer token's softmax over the tokens of its
    # input only, and decodes renormalised the same way (`models.qa.input_softmax`).
    answer_softmax: Literal["vocabulary", "input"] = "vocabulary"
    # "next": each answer slot reads the passage token after the span written so far, not the
    # token written last (`models.qa.samples.ANSWER_INPUTS`); such a model decodes extractively.
    answer_input: Literal["previous", "next"] = "previous"
    # "sentence": each passage is read as its sentences, each a row that votes
    # (`models.qa.sentences`); every version before it reads passages whole.
    read_by: Literal["passage", "sentence"] = "passage"


class QAPlaceholders(_Entry):
    """The model was trained with placeholders for text its vocabulary lacks
    (`models.qa.placeholders`): each distinct unknown word of a question and its passages is
    read as one of `[unused1]` .. `[unused{count}]`, and an answer's placeholders are written
    back as that text."""

    count: PositiveCount


class QAManifest(Manifest):
    task: Literal["qa"]
    family: Literal["bert-unilm"]
    tokenizer: WordPieceTokenizer
    max_passage_tokens: PositiveCount
    max_question_tokens: PositiveCount
    max_answer_tokens: PositiveCount
    decoding: QADecoding = QADecoding()
    # None: unknown text is [UNK] (every version before issue 18's placeholders).
    placeholders: QAPlaceholders | None = None

    @property
    def placeholder_count(self) -> int:
        """K of `placeholders`, 0 without them (`models.qa.decoding.answer_questions`)."""
        return self.placeholders.count if self.placeholders is not None else 0


class SamplingDefaults(_Entry):
    """The sampling a generation request gets where it says nothing (`SamplingParams`' rules)."""

    temperature: Annotated[float, Field(ge=0)] = 1.0
    top_k: PositiveCount | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None


class GenerationManifest(Manifest):
    task: Literal["generation"]
    family: Literal["cln-lm"]
    tokenizer: WordPieceTokenizer
    max_length: PositiveCount  # tokens a sample holds in all, [CLS] and the prompt included
    # Label names in condition order (a label-conditioned model), and/or the length of the
    # condition vectors callers give (a vector-conditioned one).
    labels: Annotated[list[NonEmpty], Field(min_length=1)] | None = None
    condition_dim: PositiveCount | None = None
    sampling: SamplingDefaults = SamplingDefaults()

    @model_validator(mode="after")
    def _conditioned(self) -> GenerationManifest:
        if self.labels is None and self.condition_dim is None:
            raise ValueError("a generation manifest needs `labels` or `condition_dim`")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"`labels` repeats a name: {self.labels}")
        return self


class DensityManifest(Manifest):
    task: Literal["density"]
    family: Literal["iresnet"]
    input_dim: PositiveCount
    # Values per dimension when the training data were discrete (at least 2), null if continuous.
    levels: Annotated[int, Field(strict=True, ge=2)] | None
    preprocessing: dict[str, Any]


# The (task, family) pairs the service serves (service.runtimes has a runtime for each).
MANIFEST_TYPES: dict[tuple[str, str], type[Manifest]] = {
    ("embedding", "jose"): JoseEmbeddingManifest,
    ("embedding", "bert"): BertEmbeddingManifest,
    ("qa", "bert-unilm"): QAManifest,
    ("generation", "cln-lm"): GenerationManifest,
    ("density", "iresnet"): DensityManifest,
}
REQUIRED_MANIFEST_KEYS: tuple[str, ...] = tuple(Manifest.model_fields)

M = TypeVar("M", bound=Manifest)


def manifest_type(task: str, family: str) -> type[Manifest]:
    """The manifest type of a (task, family) pair, or ValueError for a pair nothing serves."""
    try:
        return MANIFEST_TYPES[(task, family)]
    except KeyError:
        known = ", ".join(f"{t}/{f}" for t, f in MANIFEST_TYPES)
        raise ValueError(f"no model of task {task!r} family {family!r} (known: {known})") from None


@overload
def parse_manifest(body: object, where: str, kind: type[M]) -> M: ...
@overload
def parse_manifest(body: object, where: str, kind: None = None) -> Manifest: ...
def parse_manifest(body: object, where: str, kind: type[Manifest] | None = None) -> Manifest:
    """Checks a manifest's keys and values; ValueError naming `where` and every bad key.

    Args:
        body: the manifest as read from JSON.
        where: what to call it in the error (the file's path).
        kind: the type to check against; default the one for its (task, family), or the keys
            every manifest has for a pair the contract does not know (no runtime loads it, and
            the service says so).
    """
    if not isinstance(body, dict):
        raise ValueError(f"{where}: a manifest is a JSON object, not {type(body).__name__}")
    if kind is None:
        kind = MANIFEST_TYPES.get((body.get("task"), body.get("family")), Manifest)  # type: ignore[arg-type]
    try:
        return kind.model_validate(body)
    except ValidationError as error:
        raise ValueError(f"{where}: {_describe(error)}") from None


@overload
def read_manifest(version_dir: Path, kind: type[M]) -> M: ...
@overload
def read_manifest(version_dir: Path, kind: None = None) -> Manifest: ...
def read_manifest(version_dir: Path, kind: type[Manifest] | None = None) -> Manifest:
    """The typed manifest of a version folder (see `parse_manifest`).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON, or a key is missing or invalid (the message names the file).
    """
    path = Path(version_dir) / MANIFEST_FILENAME
    text = path.read_text(encoding="utf-8")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    return parse_manifest(body, str(path), kind)


def _describe(error: ValidationError) -> str:
    missing: list[str] = []
    invalid: list[str] = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"]) or "manifest"
        if item["type"] == "missing":
            missing.append(key)
        elif item["type"] == "value_error":  # a validator's own message, which names the value
            invalid.append(f"{key}: {item['msg'].removeprefix('Value error, ')}")
        else:
            invalid.append(f"{key}: {item['msg']} (got {item['input']!r:.80})")
    parts = []
    if missing:
        parts.append(f"missing keys {missing}")
    if invalid:
        parts.append("invalid " + "; ".join(invalid))
    return "; ".join(parts)
