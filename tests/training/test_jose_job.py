"""End to end: a tiny synthetic corpus -> training.jose -> version folder -> vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from models.jose.reader import load_word_vectors
from models.store import REQUIRED_MANIFEST_KEYS
from tests.tiny_store import load_in_runtime
from training.jose import train_embedding

TOPICS = {
    "sport": "ball goal team coach match score win league player field",
    "food": "rice soup bread salt cook taste spicy noodle dinner kitchen",
    "tech": "phone screen battery laptop chip code cloud data software app",
}
COMMON = "the a is and very".split()


def _write_corpus(path, docs_per_topic=30, length=20, seed=0):
    rng = np.random.default_rng(seed)
    lines = []
    for words in TOPICS.values():
        own = words.split()
        for _ in range(docs_per_topic):
            doc = [
                rng.choice(own) if rng.random() < 0.8 else rng.choice(COMMON) for _ in range(length)
            ]
            lines.append(" ".join(doc))
    order = rng.permutation(len(lines))
    path.write_text("\n".join(lines[i] for i in order) + "\n", encoding="utf-8")
    return path


def _args(tmp_path, corpus, name="tiny", *extra):
    return [
        "--data", str(corpus), "--out", str(tmp_path / "store"), "--name", name,
        "--tokenizer", "whitespace", "--dim", "16", "--window", "3", "--negative", "3",
        "--min-count", "1", "--sample", "0", "--epochs", "4", "--batch-size", "300",
        "--chunk-pairs", "256", "--chunk-docs", "64", "--table-size", "2000",
        "--checkpoint-dir", str(tmp_path / f"ckpt-{name}"), "--checkpoint-every", "3",
        "--log-dir", "", "--workers", "1", "--no-progress", "--fold-in-steps", "10",
        *extra,
    ]  # fmt: skip


def _encode(vocab, texts, length=24):
    ids = np.zeros((len(texts), length), np.int32)
    for i, text in enumerate(texts):
        row = vocab.encode(text.split())[:length]
        ids[i, : len(row)] = row
    return tf.constant(ids)


@pytest.mark.slow
def test_job_exports_a_servable_version_with_manifest(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus.txt")
    path = train_embedding(_args(tmp_path, corpus))
    assert path == tmp_path / "store" / "tiny" / "1"
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(REQUIRED_MANIFEST_KEYS) <= set(manifest)
    assert load_in_runtime(path).dim == 16  # the store's round trip
    assert manifest["task"] == "embedding" and manifest["family"] == "jose"
    assert manifest["dim"] == 16
    # --tokenizer whitespace trains the punctuation-aware splitter, under its own name
    assert manifest["tokenizer"] == {"kind": "basic", "lowercase": True, "strip_accents": False}
    assert manifest["config"]["fold_in"]["steps"] == 10
    assert manifest["data"]["documents"] == 90
    assert manifest["metrics"]["final_word_context_loss"] < 0.15  # margin: random start ~0.15
    assert set(manifest["signatures"]) == {"average", "fold_in", "serving_default"}
    assert not list((tmp_path / "store" / "tiny").glob(".tmp-*"))

    vectors, vocab = load_word_vectors(path)
    assert vectors.shape == (len(vocab), 16)
    loaded = tf.saved_model.load(str(path))
    texts = [
        "goal team match win player",
        "coach league score ball field",
        "soup rice cook spicy dinner",
        "bread salt taste noodle kitchen",
    ]
    emb = loaded.signatures["serving_default"](token_ids=_encode(vocab, texts))["embedding"]
    emb = emb.numpy()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[0, 3]
    assert sim[2, 3] > sim[2, 0] and sim[2, 3] > sim[2, 1]

    # a second run of the job is a new version beside the first
    again = train_embedding(_args(tmp_path, corpus, "tiny", "--epochs", "1"))
    assert again == tmp_path / "store" / "tiny" / "2"


@pytest.mark.slow
def test_resume_continues_deterministically(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus.txt")
    full = train_embedding(_args(tmp_path, corpus, "full"))
    assert full is not None
    stopped = train_embedding(_args(tmp_path, corpus, "split", "--stop-after-steps", "5"))
    assert stopped is None and not (tmp_path / "store" / "split").exists()
    assert (tmp_path / "ckpt-split" / "ckpt-5.index").is_file()
    resumed = train_embedding(_args(tmp_path, corpus, "split", "--resume"))
    assert resumed is not None
    a, vocab_a = load_word_vectors(full)
    b, vocab_b = load_word_vectors(resumed)
    assert vocab_a.words == vocab_b.words
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_words_of_text_with_punctuation_are_learnt_without_it(tmp_path):
    # English as users write it: commas and full stops on the words. The old `str.split` made
    # "program," and "permitted." words of their own, apart from "program" and "permitted".
    sentences = [
        "The program, as written, is permitted.",
        "No program is permitted without a licence.",
        "Is this program permitted? Yes, the program is permitted!",
    ]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sentences * 10) + "\n", encoding="utf-8")
    path = train_embedding(_args(tmp_path, corpus, "punct", "--epochs", "1"))
    _, vocab = load_word_vectors(path)
    assert {"program", "permitted", ",", ".", "?", "!"} <= set(vocab.words)
    assert not [w for w in vocab.words if w != "," and w.endswith(",")]
    assert "program," not in vocab and "permitted." not in vocab and "permitted?" not in vocab
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["tokenizer"]["kind"] == "basic"
    # The service splits as the job did: a text of its words embeds every one of them.
    runtime = load_in_runtime(path)
    encoded = runtime.prepare("The program, permitted.", None)
    assert encoded.ids.tolist() == vocab.encode(["the", "program", ",", "permitted", "."])
