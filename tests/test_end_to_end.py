"""From the training job's command line to an HTTP answer of a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.live_server import ROOT, live_server
from training.demo import DEMO_TOPICS, demo_embedding_corpus

pytestmark = pytest.mark.slow


def topic_sentence(topic: str, k: int) -> str:
    words = DEMO_TOPICS[topic]
    return "".join(words[(k + i) % len(words)] for i in range(8))


def test_training_job_to_served_embeddings(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(demo_embedding_corpus(n_docs=1500, seed=1)) + "\n", encoding="utf-8"
    )
    store = tmp_path / "store"
    job = subprocess.run(
        [
            sys.executable, "-m", "training.jose",
            "--data", str(corpus), "--out", str(store), "--name", "topics",
            "--tokenizer", "jieba", "--dim", "32", "--min-count", "1", "--epochs", "4",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", str(tmp_path / "runs"),
            "--no-progress",
        ],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]
    version_dir = store / "topics" / "1"
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["task"] == "embedding" and manifest["family"] == "jose"
    assert manifest["dim"] == 32 and manifest["tokenizer"]["kind"] == "jieba"
    assert not any(p.name.startswith(".tmp") for p in (store / "topics").iterdir())

    topics = list(DEMO_TOPICS)
    texts = [topic_sentence(t, k) for t in topics for k in range(3)]
    with live_server(store) as url:
        models = httpx.get(f"{url}/v1/models").json()["data"]
        assert [(m["name"], m["serving_version"]) for m in models] == [("topics", 1)]
        vectors = {}
        for method in ("fold_in", "average"):
            r = httpx.post(
                f"{url}/v1/embeddings", json={"input": texts, "method": method}, timeout=60
            )
            assert r.status_code == 200, r.text
            vectors[method] = np.array([d["embedding"] for d in r.json()["data"]])
        # One text alone gives the vector it got inside the batch (batching changes nothing).
        alone = httpx.post(f"{url}/v1/embeddings", json={"input": texts[4]}, timeout=60).json()
        np.testing.assert_allclose(alone["data"][0]["embedding"], vectors["fold_in"][4], atol=1e-5)

    import tensorflow as tf

    from models.jose.tokenizer import Tokenizer, Vocabulary

    # The same SavedModel in process gives the vectors the server sent.
    tokenizer = Tokenizer.from_config(manifest["tokenizer"])
    vocab = Vocabulary.load(version_dir / "assets" / "vocab.txt")
    ids = [vocab.encode(tokenizer.tokenize(t)) for t in texts]
    padded = np.zeros((len(ids), max(map(len, ids))), dtype=np.int32)
    for row, seq in enumerate(ids):
        padded[row, : len(seq)] = seq
    loaded = tf.saved_model.load(str(version_dir))
    direct = loaded.signatures["fold_in"](token_ids=tf.constant(padded))["embedding"].numpy()
    np.testing.assert_allclose(direct, vectors["fold_in"], atol=1e-5)

    labels = np.repeat(np.arange(len(topics)), 3)
    for method, v in vectors.items():
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        sims = v @ v.T
        same = sims[(labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)]
        other = sims[labels[:, None] != labels[None, :]]
        assert same.mean() > other.mean() + 0.2, (method, same.mean(), other.mean())


def test_generation_job_to_streamed_samples_of_the_asked_topic(tmp_path: Path) -> None:
    from training.demo import demo_labelled_corpus

    data = tmp_path / "topics.tsv"
    pairs = demo_labelled_corpus(n_docs=2000, seed=2)
    data.write_text("".join(f"{text}。\t{topic}\n" for text, topic in pairs), encoding="utf-8")
    store = tmp_path / "store"
    job = subprocess.run(
        [
            sys.executable, "-m", "training.generation",
            "--data", str(data), "--out", str(store), "--name", "writer", "--epochs", "5",
            "--batch-size", "16", "--lr", "3e-3",
            "--max-length", "32", "--hidden-size", "64", "--num-layers", "2", "--num-heads", "2",
            "--intermediate-size", "128", "--label-embedding-size", "16", "--dropout", "0",
            "--min-char-count", "1", "--ema-decay", "0.9",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "", "--no-progress",
        ],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]
    manifest = json.loads((store / "writer" / "1" / "manifest.json").read_text())
    assert manifest["labels"] == sorted(DEMO_TOPICS)

    with live_server(store) as url:
        texts: dict[str, str] = {}
        for topic in ("hotel", "books"):
            body = {"condition": {"label": topic}, "num_samples": 8, "max_new_tokens": 24,
                    "seed": 1, "stream": True}  # fmt: skip
            chunks = []
            with httpx.stream("POST", f"{url}/v1/generate", json=body, timeout=60) as r:
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        chunks.append(json.loads(line.removeprefix("data: ")))
                    elif line:
                        assert line == "data: [DONE]"
            texts[topic] = "".join(c["text"] for c in chunks)
            assert sum(c["finish_reason"] is not None for c in chunks) == 8

    def hits(text: str, topic: str) -> int:
        return sum(text.count(word) for word in DEMO_TOPICS[topic])

    # The condition steers the text: each topic's samples use its own words far more.
    assert hits(texts["hotel"], "hotel") > 3 * hits(texts["hotel"], "books")
    assert hits(texts["books"], "books") > 3 * hits(texts["books"], "hotel")
