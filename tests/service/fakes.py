"""A fake embedding family for testing the service core without TensorFlow.

A store folder holds manifests only; the fake runtime embeds a text as the normalised
bag of its whitespace tokens' hashed one-hot vectors, so results are checkable by hand.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import BadInput
from service.runtimes.base import Runtime
from service.runtimes.jose import EmbeddingRuntime, EncodedText
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

    def load(self) -> None:
        if self.manifest.get("fail_load"):
            raise RuntimeError("corrupt SavedModel")
        time.sleep(float(self.manifest.get("load_s", 0.0)))

    def warmup(self) -> None:
        pass

    def prepare(self, text: str, method: str | None) -> EncodedText:
        if method not in (None, "average"):
            raise BadInput(f"unknown method {method!r}")
        ids = np.array([token_id(t) for t in text.split()], dtype=np.int32)
        return EncodedText(ids=ids, method="average")

    def run_batch(self, items: Sequence[Any]) -> list[np.ndarray]:
        with self.lock:
            self.batches.append((self.name, self.version, len(items)))
        time.sleep(float(self.manifest.get("compute_s", 0.0)))
        if self.manifest.get("fail_batch"):
            raise RuntimeError("model call failed")
        out = []
        for item in items:
            v = np.bincount(item.ids, minlength=DIM).astype(np.float32)
            out.append(v)
        return out


def fake_factory(name: str, version: int, path: Path, settings: Settings) -> Runtime:
    return FakeEmbeddingRuntime(name, version, path, settings)
