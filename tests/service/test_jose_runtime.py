"""The JoSE embedding runtime: the tokenizer a version was trained with, and `truncate`."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from models.jose.reader import load_word_vectors
from models.store import MANIFEST_FILENAME, read_manifest
from service.errors import NotReady, PayloadTooLarge
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.runtimes.jose import JoseEmbeddingRuntime
from service.settings import Settings
from tests.tiny_store import export_tiny_jose, poison_version

# Both splittings' words: what a store of old and new versions holds between them.
WORDS = ["program,", "permitted.", "program", "permitted", ",", ".", "the"]
WHITESPACE = {"kind": "whitespace", "lowercase": True}  # as versions trained before "basic" say
BASIC = {"kind": "basic", "lowercase": True, "strip_accents": False}
COUNTED = [f"w{i}" for i in range(12)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jose_runtime") / "store"
    export_tiny_jose(root, "old", WORDS, WHITESPACE)
    export_tiny_jose(root, "new", WORDS, BASIC)
    export_tiny_jose(root, "counted", COUNTED, BASIC)
    return root


def runtime(store: Path, name: str, buckets: str = "4,8") -> JoseEmbeddingRuntime:
    settings = Settings(model_store=store, length_buckets=buckets, max_batch_size=2)
    return JoseEmbeddingRuntime(name, 1, store / name / "1", settings)


def average(vectors: np.ndarray, ids: list[int]) -> np.ndarray:
    mean = vectors[ids].mean(0)
    return mean / np.linalg.norm(mean)


def test_a_version_trained_with_whitespace_splitting_keeps_it(store: Path) -> None:
    # Its manifest, as written before the "basic" kind, still reads (and round-trips unchanged).
    written = json.loads((store / "old" / "1" / MANIFEST_FILENAME).read_text())
    assert written["tokenizer"] == WHITESPACE
    assert read_manifest(store / "old" / "1").as_json() == written
    old = runtime(store, "old")
    old.load()
    vectors, vocab = load_word_vectors(store / "old" / "1")
    encoded = old.prepare("The program, permitted.", "average")
    # Its own words, "program," and "permitted.", not the new splitting's: the served vector
    # means what it meant when the version was trained.
    assert encoded.ids.tolist() == [vocab["the"], vocab["program,"], vocab["permitted."]]
    (served,) = old.run_batch([encoded])
    expected = average(vectors, [vocab["the"], vocab["program,"], vocab["permitted."]])
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_a_version_trained_with_basic_splitting_splits_punctuation_off(store: Path) -> None:
    new = runtime(store, "new")
    vocab = new.vocab
    encoded = new.prepare("The program, permitted.", None)
    assert encoded.ids.tolist() == [
        vocab[w] for w in ("the", "program", ",", "permitted", ".")
    ]  # fmt: skip


def test_an_over_long_text_is_413_unless_truncate_says_which_end_to_keep(store: Path) -> None:
    counted = runtime(store, "counted")
    vocab = counted.vocab
    words = [f"w{i}" for i in range(11)]
    text = " ".join(words[:5] + ["unknown"] * 20 + words[5:])  # 11 known words, 20 unknown
    with pytest.raises(PayloadTooLarge, match="11 known tokens; the most is 8"):
        counted.prepare(text, None)
    ids = [vocab[w] for w in words]
    assert counted.prepare(text, None, "right").ids.tolist() == ids[:8]
    assert counted.prepare(text, None, "left").ids.tolist() == ids[-8:]
    # What fits is never cut; unknown words do not count.
    fits = " ".join(words[:8] + ["unknown"] * 20)
    for truncate in (None, "right", "left"):
        assert counted.prepare(fits, "average", truncate).ids.tolist() == ids[:8]  # type: ignore[arg-type]


def test_a_truncated_text_embeds_as_the_text_cut_by_hand(store: Path) -> None:
    counted = runtime(store, "counted")
    counted.load()
    words = [f"w{i}" for i in range(11)]
    for method in ("average", "fold_in"):
        cut = counted.prepare(" ".join(words), method, "right")
        by_hand = counted.prepare(" ".join(words[:8]), method)
        np.testing.assert_allclose(*counted.run_batch([cut, by_hand]), atol=1e-6)


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_a_version_whose_weights_hold_nan_is_refused_at_load(
    tmp_path: Path, poison: float, caplog: pytest.LogCaptureFixture
) -> None:
    # A version with NaN weights, copied into the store by hand (the jobs refuse to export one),
    # loaded and served: every vector came back as nulls.
    store = tmp_path / "store"
    export_tiny_jose(store, "words", COUNTED, BASIC)
    poison_version(export_tiny_jose(store, "words", COUNTED, BASIC), poison)
    poison_version(export_tiny_jose(store, "only", COUNTED, BASIC), poison)
    settings = Settings(model_store=store, poll_interval_s=0, length_buckets="4", warmup=False)

    async def run() -> None:
        reg = ModelRegistry(settings, Metrics())
        with caplog.at_level(logging.ERROR, logger="service.registry"):
            await reg.start()
        words = reg.get("words")
        assert words.serving is not None and words.serving.version == 1  # the good one serves on
        versions = {v.version: v for v in words.status().versions}
        assert versions[2].state.value == "FAILED"
        assert (
            "its weights hold NaN or infinity (1 of its 1 floating-point variables: "
            "word_vectors)" in (versions[2].error or "")
        )
        # A model with no other version: not served, 503 not_ready, the reason in /readyz.
        with pytest.raises(NotReady):
            reg.resolve("embedding", "only")
        (why,) = [u.reason for u in reg.unavailable() if u.model == "only"]
        assert "NaN or infinity" in why
        assert "Traceback" not in caplog.text
        assert caplog.text.count("not loaded: its weights hold NaN or infinity") == 2
        await reg.stop()

    asyncio.run(run())
