"""A fake embedding family for testing the service core without TensorFlow.

A store folder holds manifests only; the fake runtime embeds a text as the normalised
bag of its whitespace tokens' hashed one-hot vectors, so results are checkable by hand.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import BadInput
from service.runtimes.base import Runtime
from service.runtimes.jose import EmbeddingRuntime, EncodedText, Truncation
from service.settings import Settings

DIM = 8


def token_id(token: str) -> int:
    return zlib.crc32(token.encode()) % DIM


def expected_vector(text: str) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for t in text.split():
        v[token_id(t)] += 1.0
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def write_version(store: Path, name: str, version: int, **manifest: Any) -> Path:
    path = store / name / str(version)
    path.mkdir(parents=True)
    body = {
        "name": name,
        "version": version,
        "task": "embedding",
        "family": "fake",
        "created_at": "2026-01-01T00:00:00+00:00",
        "config": {},
        "data": {},
        "metrics": {},
        "signatures": ["average"],
        "library_versions": {},
        "dim": DIM,
    }
    body.update(manifest)
    (path / "manifest.json").write_text(json.dumps(body))
    (path / "saved_model.pb").write_bytes(b"")  # the registry tries only complete-looking versions
    return path


class FakeEmbeddingRuntime(EmbeddingRuntime):
    family = "fake"
    # Every batch any fake runtime ran, as (name, version, batch size): tests read it.
    batches: list[tuple[str, int, int]] = []
    lock = threading.Lock()
    # By model name: its loads, or its model calls, wait until the test sets the event.
    held_loads: dict[str, threading.Event] = {}
    held_batches: dict[str, threading.Event] = {}

    def load(self) -> None:
        if self.manifest.get("fail_load"):
            raise RuntimeError("corrupt SavedModel")
        _wait_if_held(self.held_loads, self.name)

    def warmup(self) -> None:
        pass

    def prepare(
        self, text: str, method: str | None, truncate: Truncation | None = None
    ) -> EncodedText:
        if method not in (None, "average"):
            raise BadInput(f"unknown method {method!r}")
        ids = np.array([token_id(t) for t in text.split()], dtype=np.int32)
        return EncodedText(ids=ids, method="average")

    def run_batch(self, items: Sequence[Any]) -> list[np.ndarray]:
        with self.lock:
            self.batches.append((self.name, self.version, len(items)))
        _wait_if_held(self.held_batches, self.name)
        if self.manifest.get("fail_batch"):
            raise RuntimeError("model call failed")
        out = []
        for item in items:
            v = np.bincount(item.ids, minlength=DIM).astype(np.float32)
            out.append(v)
        return out


def _wait_if_held(held: dict[str, threading.Event], name: str) -> None:
    release = held.get(name)
    if release is not None and not release.wait(timeout=60):
        raise RuntimeError(f"{name}: held and never released")


def fake_factory(name: str, version: int, path: Path, settings: Settings) -> Runtime:
    return FakeEmbeddingRuntime(name, version, path, settings)


# A fake generation step model for the decode loop (service/generation.py), without TensorFlow.
CLS_ID, SEP_ID = 1, 2
BANNED_IDS = (0, CLS_ID, 3)  # [PAD], [CLS], [MASK]
FIRST_WORD = 10  # the fake writes FIRST_WORD + position % 10: "a" to "j" by `render_letters`
VOCAB = 32


def step_condition(tag: int, stop_at: int, not_finite: bool = False) -> np.ndarray:
    """A condition vector telling `FakeStepModel` how to write a row: `tag` names the row in the
    model's log (>= 1; 0 is a free place), [SEP] comes when position `stop_at` is fed (a row
    without a prompt writes `stop_at` tokens), and `not_finite` makes its log-probabilities NaN."""
    return np.array([tag, stop_at, float(not_finite)], np.float32)


def render_letters(text: str, new_ids: Sequence[int]) -> str:
    return text + "".join(chr(ord("a") + token - FIRST_WORD) for token in new_ids)


class FakeStepModel:
    """`models.generation.decoding.GenerationStepModel` over a cache of token ids.

    Cache entry (row, position) holds `tag * 1000 + token` of what was fed there, or -1, or NaN
    once the row's step was not finite: a row that reads a NaN entry (a place that held a failed
    row, reused) gets NaN log-probabilities, as the real model does. Each step checks that the
    entries before a row's position are its own (`violations`) and logs the tags of its cache rows
    (`steps`). With `hold()`, each step waits for a `release`, so a test orders what the decode
    thread does between two steps without sleeping.
    """

    def __init__(self, cache_length: int = 64) -> None:
        self.cache_length = cache_length
        self.steps: list[list[int]] = []  # per step, each cache row's tag (0: a free place)
        self.prefills: list[list[int]] = []  # per prefill call, the tags of its rows
        self.violations: list[str] = []
        self.fail_tags: set[int] = set()  # a step with a row of these tags raises
        self.started = 0  # steps begun (a held step counts)
        self._allowed: int | None = None  # steps that may still run while held; None: all
        self._changed = threading.Condition()

    def hold(self) -> None:
        with self._changed:
            self._allowed = 0

    def release(self, steps: int = 1) -> None:
        with self._changed:
            assert self._allowed is not None, "not held"
            self._allowed += steps
            self._changed.notify_all()

    def run_freely(self) -> None:
        with self._changed:
            self._allowed = None
            self._changed.notify_all()

    def tags(self, since: int = 0) -> set[int]:
        """The rows stepped (from step `since` on, counting from 0)."""
        return {tag for step in self.steps[since:] for tag in step if tag}

    def prefill(self, token_ids: Any, lengths: Any, condition: Any) -> tuple[np.ndarray, Any]:
        tags = [int(c[0]) for c in condition]
        self.prefills.append(tags)
        cache = np.full((len(tags), self.cache_length), -1.0)
        for i, (tag, length) in enumerate(zip(tags, lengths, strict=True)):
            cache[i, :length] = tag * 1000 + np.asarray(token_ids[i, :length])
        return np.zeros((len(tags), VOCAB), np.float32), cache

    def step(self, token_ids: Any, positions: Any, cache: Any, condition: Any) -> tuple[Any, Any]:
        with self._changed:
            self.started += 1
            self._changed.notify_all()
            while self._allowed == 0:
                if not self._changed.wait(timeout=60):
                    raise RuntimeError("a held step was never released")
            if self._allowed is not None:
                self._allowed -= 1
        tags = [int(c[0]) for c in condition]
        if self.fail_tags & set(tags):
            self.steps.append(tags)
            raise RuntimeError("model call failed")
        cache = np.array(cache)
        log_probs = np.full((len(tags), VOCAB), -20.0, np.float32)
        for i, (tag, position) in enumerate(zip(tags, positions.tolist(), strict=True)):
            seen = cache[i, :position]
            if tag and not (seen // 1000 == tag).all():
                self.violations.append(f"row {tag} at {position} reads {seen.tolist()}")
            if condition[i][2] or np.isnan(cache[i]).any():
                log_probs[i], cache[i, position] = np.nan, np.nan
                continue
            cache[i, position] = tag * 1000 + token_ids[i]
            stop_at = int(condition[i][1])
            log_probs[i, SEP_ID if position >= stop_at else FIRST_WORD + position % 10] = 0.0
        self.steps.append(tags)
        with self._changed:
            self._changed.notify_all()
        return log_probs, cache

    def select_rows(self, cache: Any, rows: Any) -> Any:
        return np.asarray(cache)[rows]

    def concat_rows(self, first: Any, second: Any) -> Any:
        return np.concatenate([first, second])

    def empty_rows(self, count: int) -> Any:
        return np.full((count, self.cache_length), -1.0)
