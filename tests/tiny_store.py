"""Tiny exported models of every family, written into a model store in seconds.

The HTTP tests of each family copy the one they need (`tiny_version`); the client and fuzzing tests
serve one of each (the `tiny_store` fixture) from a real server process. Each tiny model is built
once per test session, shared by the xdist workers (`built_once`): exporting one takes 10-20 s of
CPU, and a dozen test files use them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np
import pytest
from filelock import FileLock, Timeout

from models.generation.export import export_generation_saved_model
from models.qa.export import export_qa_saved_model
from models.store import MANIFEST_FILENAME, MANIFEST_TYPES, read_manifest
from tests.models.test_generation import VOCAB_SIZE as LM_VOCAB_SIZE
from tests.models.test_generation import randomise, tiny_lm
from tests.models.test_qa_cache import tiny_model
from training.common import export_version

if TYPE_CHECKING:
    from models.qa.seq2seq import UniLMSeq2Seq
    from service.runtimes.base import Runtime

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SEP_ID = SPECIALS.index("[SEP]")
QA_WORDS = ["北", "京", "上", "海", "住", "在", "哪", "里", "张", "伟", "李", "娜", "。", "？"]
QA_VOCAB_SIZE = 40
LM_WORDS = ["好", "坏", "酒", "店", "房", "间", "很", "不", "错", "差", "。", "！"]
WORDPIECE = {"kind": "wordpiece", "lowercase": True, "vocab": "assets/vocab.txt"}


def write_vocab(path: Path, words: list[str], size: int) -> Path:
    """A WordPiece vocabulary: the specials, `words`, then fillers up to `size` entries."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fillers = [f"w{i}" for i in range(size - len(SPECIALS) - len(words))]
    path.write_text("\n".join(SPECIALS + words + fillers) + "\n", encoding="utf-8")
    return path


def export_tiny_qa(
    root: Path,
    name: str,
    max_passage: int,
    max_question: int,
    max_answer: int,
    model: UniLMSeq2Seq | None = None,
    words: list[str] = QA_WORDS,
    extra: dict | None = None,
) -> None:
    """A 1-layer random UniLM reader (answers are nonsense, the decoding machinery is real), or
    `model` (one of `tiny_model`'s, its weights changed by the test) exported the same way;
    `words` after the specials in its vocabulary, `extra` more manifest keys."""
    model = model if model is not None else tiny_model(seed=7)
    with tempfile.TemporaryDirectory() as scratch:  # the export copies the vocabulary
        vocab = write_vocab(Path(scratch) / "vocab.txt", words, QA_VOCAB_SIZE)
        export_version(
            root, name, task="qa", family="bert-unilm",
            write_model=lambda path: export_qa_saved_model(
                path, model, vocab, max_passage, max_question, max_answer
            ),
            config={}, data={}, metrics={},
            extra={
                "max_passage_tokens": max_passage, "max_question_tokens": max_question,
                "max_answer_tokens": max_answer, "tokenizer": WORDPIECE, **(extra or {}),
            },
        )  # fmt: skip


def export_tiny_generation(
    root: Path, name: str, labels: list[str] | None, max_length: int, never_stop: bool = False
) -> None:
    """A random conditional LM: label-conditioned, or vector-conditioned (size 4) without labels.

    never_stop: [SEP] never wins, so every sample runs to max_new_tokens unless cancelled.
    """
    if labels is None:
        model = tiny_lm(seed=3, labels=None, condition_size=4, max_length=max_length)
    else:
        model = tiny_lm(seed=3, labels=tuple(labels), max_length=max_length)
    randomise(model, seed=3)
    if never_stop:
        bias = model.mlm_head.output_bias
        bias.assign(np.where(np.arange(LM_VOCAB_SIZE) == SEP_ID, -1e4, bias.numpy()))
    extra: dict = {
        "max_length": max_length,
        "sampling": {"temperature": 1.0, "top_k": None, "top_p": 0.95},
        "tokenizer": WORDPIECE,
    }
    extra.update({"labels": labels} if labels else {"condition_dim": 4})
    with tempfile.TemporaryDirectory() as scratch:
        vocab = write_vocab(Path(scratch) / "vocab.txt", LM_WORDS, LM_VOCAB_SIZE)
        export_version(
            root, name, task="generation", family="cln-lm",
            write_model=lambda path: export_generation_saved_model(path, model, vocab, max_length),
            config={}, data={}, metrics={}, extra=extra,
        )  # fmt: skip


def train_tiny_density(root: Path, name: str, work: Path) -> None:
    """An i-ResNet trained for one epoch on two moons (2-D, continuous)."""
    from training.density import train_density

    train_density(
        [
            "--data", "builtin:moons", "--out", str(root), "--name", name,
            "--epochs", "1", "--batch-size", "64", "--blocks", "2", "--hidden", "8",
            "--checkpoint-dir", str(work / "ckpt-density"), "--log-dir", "", "--no-progress",
            "--warmup-steps", "2", "--score-terms", "4", "--score-probes", "1",
            "--export-power-iterations", "20", "--inverse-max-iterations", "30",
            "--toy-samples", "256",
        ]
    )  # fmt: skip


def export_tiny_jose(
    root: Path, name: str, words: list[str], tokenizer: dict, dim: int = 8, seed: int = 0
) -> Path:
    """A JoSE version of random unit word vectors over `words`, its manifest's `tokenizer` entry
    as given (`{"kind": "whitespace", "lowercase": True}` is what versions trained before the
    "basic" kind carry); no training, so the vocabulary is exactly `words`."""
    from models.jose.export import export_saved_model
    from models.jose.jose_model import FoldInConfig, random_unit_rows
    from models.jose.tokenizer import PAD_TOKEN, Vocabulary

    vocab = Vocabulary([PAD_TOKEN, *words], [0, *range(len(words) + 10, 10, -1)])
    vectors = random_unit_rows(len(vocab), dim, np.random.default_rng(seed))
    fold_in = FoldInConfig(steps=5, negative=2, negative_positions=8)
    return export_version(
        root, name, task="embedding", family="jose",
        write_model=lambda path: export_saved_model(path, vectors, vocab, fold_in),
        config={}, data={}, metrics={}, extra={"dim": dim, "tokenizer": tokenizer},
    )  # fmt: skip


def train_tiny_jose(root: Path, name: str, work: Path) -> None:
    """JoSE embeddings, 16-dimensional, one epoch over a small topical corpus."""
    from training.demo import demo_embedding_corpus
    from training.jose import train_embedding

    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(demo_embedding_corpus(n_docs=200, seed=1)) + "\n", "utf-8")
    train_embedding(
        [
            "--data", str(corpus), "--out", str(root), "--name", name,
            "--tokenizer", "jieba", "--dim", "16", "--min-count", "1", "--epochs", "1",
            "--checkpoint-dir", str(work / "ckpt-jose"), "--log-dir", "", "--no-progress",
        ]
    )  # fmt: skip


# Model names of `build_tiny_store`, by task.
TINY_MODELS = {
    "embedding": "tiny-jose",
    "qa": "tiny-reader",
    "generation": "tiny-writer",
    "generation-vector": "tiny-vector-writer",
    "density": "tiny-moons",
}


def build_tiny_store(root: Path, work: Path) -> Path:
    """One tiny model of every task in `root` (a model store); `work` holds scratch files."""
    train_tiny_jose(root, TINY_MODELS["embedding"], work)
    export_tiny_qa(root, TINY_MODELS["qa"], max_passage=12, max_question=6, max_answer=4)
    export_tiny_generation(root, TINY_MODELS["generation"], ["neg", "pos"], max_length=24)
    export_tiny_generation(root, TINY_MODELS["generation-vector"], None, max_length=24)
    train_tiny_density(root, TINY_MODELS["density"], work)
    return root


# How each tiny model is made: `build(store, name, work)` writes version 1 of `name` into `store`
# (`work`: scratch files). TINY_MODELS' kinds, and the long writer of the reliability and
# generation tests (never writes [SEP], so every request decodes max_new_tokens steps).
TINY_BUILDERS: dict[str, Callable[[Path, str, Path], None]] = {
    "embedding": train_tiny_jose,
    "qa": lambda store, name, _: export_tiny_qa(
        store, name, max_passage=12, max_question=6, max_answer=4
    ),
    "generation": lambda store, name, _: export_tiny_generation(
        store, name, ["neg", "pos"], max_length=24
    ),
    "generation-vector": lambda store, name, _: export_tiny_generation(
        store, name, None, max_length=24
    ),
    "density": train_tiny_density,
    "generation-long": lambda store, name, _: export_tiny_generation(
        store, name, ["neg", "pos"], max_length=200, never_stop=True
    ),
}


def session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that every xdist worker of this test session sees: the parent of the workers'
    base temporary folders (pytest-xdist's documented pattern), or the base folder without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@overload
def built_once(
    tmp_path_factory: pytest.TempPathFactory, key: str, build: Callable[[Path], object]
) -> Path: ...
@overload
def built_once(
    tmp_path_factory: pytest.TempPathFactory,
    key: str,
    build: Callable[[Path], object],
    wait: bool,
) -> Path | None: ...
def built_once(
    tmp_path_factory: pytest.TempPathFactory,
    key: str,
    build: Callable[[Path], object],
    wait: bool = True,
) -> Path | None:
    """The folder `build(folder)` filled, run once per test session: the first worker to ask
    builds it under a file lock while the others wait for it (or, with `wait=False`, get None at
    once). A failed build leaves nothing, so the next one to ask tries again."""
    shared = session_folder(tmp_path_factory) / "built-once"
    shared.mkdir(exist_ok=True)
    folder = shared / key
    try:
        lock = FileLock(shared / f"{key}.lock", timeout=-1 if wait else 0).acquire()
    except Timeout:
        return None
    with lock:
        if not folder.is_dir():
            scratch = shared / f".tmp-{key}"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            build(scratch)
            scratch.rename(folder)
    return folder


@overload
def tiny_version(
    tmp_path_factory: pytest.TempPathFactory, kind: str, store: Path, name: str | None = None
) -> Path: ...
@overload
def tiny_version(
    tmp_path_factory: pytest.TempPathFactory, kind: str, store: Path, name: str | None, wait: bool
) -> Path | None: ...
def tiny_version(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    store: Path,
    name: str | None = None,
    wait: bool = True,
) -> Path | None:
    """Version 1 of the tiny model of `kind` (TINY_BUILDERS) as model `name` of `store` (by
    default its TINY_MODELS name): a copy of the one built once per test session, its manifest
    naming it `name`. Returns the version folder (None if `wait` is False and another worker is
    building it now)."""
    built_name = TINY_MODELS.get(kind, f"tiny-{kind}")
    built = built_once(
        tmp_path_factory,
        f"tiny-{kind}",
        lambda folder: TINY_BUILDERS[kind](folder / "store", built_name, folder),
        wait,
    )
    if built is None:
        return None
    name = name or built_name
    version = store / name / "1"
    shutil.copytree(built / "store" / built_name / "1", version)
    manifest_path = version / MANIFEST_FILENAME
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["name"] = name
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return version


def tiny_versions(tmp_path_factory: pytest.TempPathFactory, kinds: list[str], store: Path) -> Path:
    """`tiny_version` of each of `kinds` in `store` under its TINY_MODELS name; returns `store`.
    Builds first what no other worker is building, then waits for the rest, so that two workers
    asking for the same models at once build them side by side rather than one after the other."""
    pending = [
        kind for kind in kinds if tiny_version(tmp_path_factory, kind, store, None, False) is None
    ]
    for kind in pending:
        tiny_version(tmp_path_factory, kind, store)
    return store


def load_in_runtime(version: Path) -> Runtime:
    """The store's round trip for one exported version: its manifest parses into the typed
    manifest of its (task, family), the runtime the service picks for it is made from it, loads
    the SavedModel and warms up (over small buckets, so that this stays quick)."""
    from service.registry import default_runtime_factory
    from service.settings import Settings

    typed = read_manifest(version)
    assert type(typed) is MANIFEST_TYPES[(typed.task, typed.family)]
    as_written = json.loads((version / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    assert typed.as_json() == as_written
    settings = Settings(
        model_store=version.parent.parent, max_batch_size=2, length_buckets="16,32", warmup=True
    )
    runtime = default_runtime_factory(version.parent.name, int(version.name), version, settings)
    assert (runtime.task, runtime.family) == (typed.task, typed.family)
    assert runtime.spec == typed and runtime.manifest == as_written
    runtime.load()
    runtime.warmup()
    return runtime


def extractive_answer(
    runtime: Runtime, question: str, passages: list[str]
) -> tuple[str | None, int | None]:
    """(answer, passage index) of a QA runtime's extractive answer to one question, read as the
    service reads it (`prepare`, then a batch of one); its first candidate is the answer."""
    from service.runtimes.qa import QARuntime

    assert isinstance(runtime, QARuntime)
    item = runtime.prepare(
        question, passages, max_answer_tokens=None, beam_size=None, extractive=True
    )
    (result,) = runtime.run_batch([item])
    assert [text for text, _, _ in result.candidates][:1] == (
        [result.answer] if result.answer else []
    )
    return result.answer, result.passage_index


def poison_version(version: Path, value: float) -> None:
    """Puts `value` (NaN, inf) into the first number of the first floating-point variable of the
    exported `version`, as weights copied in by hand may hold (the jobs refuse to export such
    weights, and the JoSE export zeroes a word vector that is not finite): the SavedModel loaded
    and saved again in place, its signatures kept."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version))
    variable = next(
        v
        for v in tf.train.TrackableView(loaded).descendants()
        if isinstance(v, tf.Variable) and v.dtype.is_floating
    )
    values = variable.numpy()
    values.flat[0] = value
    variable.assign(values)
    tf.saved_model.save(loaded, str(version), signatures=dict(loaded.signatures))
