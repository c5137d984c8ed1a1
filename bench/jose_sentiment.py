"""JoSE sentence vectors + logistic regression on the Chinese sentiment set, next to TF-IDF.

Scores, by accuracy on valid.tsv of a logistic regression fitted on train.tsv:

- our model, through its exported SavedModel signatures "average" and "fold_in" (exactly what
  the service computes: manifest tokenizer -> ids from assets/vocab.txt -> signature);
- optionally a peer's vectors in word2vec text format (the authors' C code writes these with
  `-doc-output` and `-word-output`): its per-line document vectors, and the normalised average
  of its word vectors over each sentence's tokens;
- TF-IDF baselines on the tokenizer's words and on character 1-2-grams.

The corpus is train.tsv then valid.tsv (`text<TAB>label`), one document per line in that
order, so that row i of a peer's document vectors is document i. `--write-corpus` writes the
segmented corpus for a peer to train on. This script never builds or runs a peer.

Run from the repository root:

    # train our model (10 epochs, window 5, min-count 2, dim 100, 2 workers) and score it
    .venv/bin/python -m bench.jose_sentiment --train --store /tmp/jose_store --workers 2
    # score an existing store version, and a peer's vectors by the same code
    .venv/bin/python -m bench.jose_sentiment --model-dir /tmp/jose_store/jose-sentiment/1 \\
        --peer-doc-vectors jose_d.txt --peer-word-vectors jose_w.txt
    # TF-IDF baselines only; and the segmented corpus for a peer
    .venv/bin/python -m bench.jose_sentiment --write-corpus /tmp/corpus.txt

The peer in the issue's comparison is the authors' C code (github yumeng5/Spherical-Text-Embedding,
built with its own makefile), run on that corpus as
`jose -train corpus.txt -word-output jose_w.txt -doc-output jose_d.txt -size 100 -window 5
-min-count 2 -iter 10 -threads 2`. It counts words as in-vocabulary tokens plus one "</s>" per
line (`count_words_like_c`), so its words/s is 10 x that count / seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from models.jose.tokenizer import TOKENIZER_KINDS, Tokenizer

DEFAULT_DATA_DIR = Path("/work/shared/data/sentiment")
# training.jose is run as a module of this checkout.
REPO_ROOT = Path(__file__).resolve().parents[1]

# The training settings of the comparison with the authors' C code (issue: 10 iterations,
# window 5, min-count 2, dimension 100, 2 threads); the rest stay at each trainer's defaults.
DEFAULT_EPOCHS = 10
DEFAULT_WINDOW = 5
DEFAULT_MIN_COUNT = 2
DEFAULT_DIM = 100

# Sentences per signature call. Rows are sorted by length first so that a batch pads little.
EMBED_BATCH_SIZE = 64

# scikit-learn's default inverse regularisation strength; the reference figures
# (C code doc vectors 0.77, averaged word vectors 0.84-0.86, TF-IDF 0.91-0.93) used it.
DEFAULT_LR_C = 1.0
LR_MAX_ITER = 2000

# Character n-gram range of the character TF-IDF baseline (unigrams and bigrams).
CHAR_NGRAM_RANGE = (1, 2)


@dataclass
class Corpus:
    """The sentiment set: raw texts, tokens and labels, train rows first then valid rows."""

    texts: list[str]
    tokens: list[list[str]]
    labels: np.ndarray
    is_train: np.ndarray

    @property
    def train_idx(self) -> np.ndarray:
        return np.flatnonzero(self.is_train)

    @property
    def valid_idx(self) -> np.ndarray:
        return np.flatnonzero(~self.is_train)


@dataclass
class Row:
    """One line of the results table: valid accuracy per LR regularisation strength C."""

    features: str
    accuracy: dict[float, float]
    dim: int
    note: str = ""


@dataclass
class SpeedRow:
    """One line of the training speed table."""

    trainer: str
    words_per_s: float | None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """Reads `text<TAB>label` lines (no header); the label is after the last tab."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line:
                continue
            text, label = line.rsplit("\t", 1)
            texts.append(text)
            labels.append(int(label))
    return texts, labels


def load_corpus(data_dir: Path, tokenizer: Tokenizer) -> Corpus:
    """Loads train.tsv then valid.tsv and tokenises every text.

    Args:
        data_dir: folder with train.tsv and valid.tsv.
        tokenizer: splits the texts (the manifest's tokenizer when a model is scored).
    """
    train_texts, train_labels = read_tsv(data_dir / "train.tsv")
    valid_texts, valid_labels = read_tsv(data_dir / "valid.tsv")
    texts = train_texts + valid_texts
    return Corpus(
        texts=texts,
        tokens=[tokenizer.tokenize(t) for t in texts],
        labels=np.asarray(train_labels + valid_labels),
        is_train=np.arange(len(texts)) < len(train_texts),
    )


def write_segmented(tokens: Sequence[Sequence[str]], path: Path) -> None:
    """Writes one document per line, tokens joined by single spaces (the C code's input)."""
    with open(path, "w", encoding="utf-8") as f:
        for doc in tokens:
            f.write(" ".join(doc) + "\n")


def logistic_accuracy(features: Any, corpus: Corpus, cs: Sequence[float]) -> dict[float, float]:
    """Fits a logistic regression on the train rows; its accuracy on the valid rows, per C.

    Args:
        features: [N, F] dense array or sparse matrix, one row per document.
        corpus: gives the labels and the train/valid split.
        cs: inverse regularisation strengths to try (each reported, none selected).
    """
    x_train, y_train = features[corpus.train_idx], corpus.labels[corpus.train_idx]
    x_valid, y_valid = features[corpus.valid_idx], corpus.labels[corpus.valid_idx]
    scores = {}
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=LR_MAX_ITER)
        clf.fit(x_train, y_train)
        scores[c] = float(clf.score(x_valid, y_valid))
    return scores


def tfidf_rows(corpus: Corpus, cs: Sequence[float], tokenizer_kind: str) -> list[Row]:
    """TF-IDF + LR baselines on the tokenizer's words and on character 1-2-grams.

    The vocabulary and idf are fitted on all rows (train and valid), as the embeddings
    themselves are trained on all rows without labels.
    """
    rows = []
    words = TfidfVectorizer(analyzer=lambda doc: doc)  # tokens are given, not re-split
    x_words = words.fit_transform(corpus.tokens)
    rows.append(
        Row(
            f"TF-IDF {tokenizer_kind} words",
            logistic_accuracy(x_words, corpus, cs),
            x_words.shape[1],
            "sparse",
        )
    )
    chars = TfidfVectorizer(analyzer="char", ngram_range=CHAR_NGRAM_RANGE, lowercase=True)
    x_chars = chars.fit_transform(corpus.texts)
    rows.append(
        Row(
            "TF-IDF char 1-2-grams",
            logistic_accuracy(x_chars, corpus, cs),
            x_chars.shape[1],
            "sparse",
        )
    )
    return rows


def read_word2vec_text(path: Path) -> tuple[list[str], np.ndarray]:
    """Reads the word2vec text format: a `count dim` header, then `key v1 ... vdim` per line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        count, dim = (int(v) for v in f.readline().split())
        keys: list[str] = []
        vectors = np.empty((count, dim), dtype=np.float32)
        for i, line in enumerate(f):
            parts = line.rstrip().split(" ")
            keys.append(parts[0])
            vectors[i] = np.asarray(parts[1 : dim + 1], dtype=np.float32)
    if len(keys) != count:
        raise ValueError(f"{path}: header says {count} rows, found {len(keys)}")
    return keys, vectors


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Unit-length rows; an all-zero row (no known token) stays zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def average_word_vectors(
    tokens: Sequence[Sequence[str]], words: list[str], vectors: np.ndarray
) -> np.ndarray:
    """Normalised mean of the known tokens' vectors per document (zero if none is known)."""
    index = {w: i for i, w in enumerate(words)}
    out = np.zeros((len(tokens), vectors.shape[1]), dtype=np.float32)
    for row, doc in enumerate(tokens):
        ids = [index[t] for t in doc if t in index]
        if ids:
            out[row] = vectors[ids].mean(axis=0)
    return normalise_rows(out)


def peer_rows(
    corpus: Corpus, doc_path: Path | None, word_path: Path | None, cs: Sequence[float], name: str
) -> list[Row]:
    """Scores a peer's document vectors (row i = line i) and its averaged word vectors."""
    rows = []
    if doc_path is not None:
        keys, docs = read_word2vec_text(doc_path)
        if len(keys) != len(corpus.texts):
            raise ValueError(
                f"{doc_path} has {len(keys)} document vectors, the corpus {len(corpus.texts)} "
                "lines; train the peer on the corpus written by --write-corpus"
            )
        order = np.argsort(np.asarray(keys, dtype=np.int64))  # keys are the line numbers
        docs = normalise_rows(docs[order])
        rows.append(
            Row(
                f"{name} document vectors",
                logistic_accuracy(docs, corpus, cs),
                docs.shape[1],
                "trained on train+valid lines, no labels",
            )
        )
    if word_path is not None:
        words, vectors = read_word2vec_text(word_path)
        feats = average_word_vectors(corpus.tokens, words, vectors)
        known = float(np.mean(np.any(feats != 0, axis=1)))
        rows.append(
            Row(
                f"{name} averaged word vectors",
                logistic_accuracy(feats, corpus, cs),
                feats.shape[1],
                f"{known:.1%} rows with a known word",
            )
        )
    return rows


def encode_ids(tokens: Sequence[Sequence[str]], vocab_path: Path) -> list[list[int]]:
    """Token ids as the service computes them: line i of assets/vocab.txt is id i, OOV dropped."""
    with open(vocab_path, encoding="utf-8") as f:
        index = {line.rstrip("\n"): i for i, line in enumerate(f)}
    pad_id = 0
    return [[i for i in (index.get(t, pad_id) for t in doc) if i != pad_id] for doc in tokens]


def embed_with_signature(
    fn: Callable[..., dict], ids: list[list[int]], batch_size: int
) -> tuple[np.ndarray, float]:
    """Runs a signature over all rows in length-sorted padded batches.

    Returns:
        the embeddings in the original row order, and the mean milliseconds per batch.
    """
    import tensorflow as tf

    order = np.argsort([len(r) for r in ids], kind="stable")
    out: np.ndarray | None = None
    seconds, batches = 0.0, 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(1, max(len(ids[r]) for r in rows))
        batch = np.zeros((len(rows), width), dtype=np.int32)
        for j, r in enumerate(rows):
            batch[j, : len(ids[r])] = ids[r]
        t0 = time.perf_counter()
        emb = fn(token_ids=tf.constant(batch))["embedding"].numpy()
        seconds += time.perf_counter() - t0
        batches += 1
        if out is None:
            out = np.zeros((len(ids), emb.shape[1]), dtype=np.float32)
        out[rows] = emb
    assert out is not None
    return out, 1000.0 * seconds / max(batches, 1)


def model_rows(
    corpus: Corpus, model_dir: Path, cs: Sequence[float], signatures: Sequence[str], batch_size: int
) -> list[Row]:
    """Scores the exported signatures of one store version (tokenised per its manifest)."""
    import tensorflow as tf

    manifest = json.loads((model_dir / "manifest.json").read_text())
    label = (
        f"{manifest.get('name', model_dir.parent.name)} v{manifest.get('version', model_dir.name)}"
    )
    ids = encode_ids(corpus.tokens, model_dir / "assets" / "vocab.txt")
    loaded = tf.saved_model.load(str(model_dir))
    rows = []
    for name in signatures:
        feats, ms = embed_with_signature(loaded.signatures[name], ids, batch_size)
        if not np.all(np.isfinite(feats)):
            raise ValueError(f"signature {name!r} returned non-finite values")
        rows.append(
            Row(
                f"{label}: {name}",
                logistic_accuracy(feats, corpus, cs),
                feats.shape[1],
                f"{ms:.1f} ms per batch of {batch_size} (length-sorted)",
            )
        )
    known = float(np.mean([len(r) > 0 for r in ids]))
    rows[-1].note += f"; {known:.1%} rows with a known word"
    return rows


def manifest_speed(model_dir: Path) -> SpeedRow:
    """Training speed as the job recorded it in the manifest's metrics."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    metrics = manifest.get("metrics", {})
    speed = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and ("word" in k or "second" in k or "time" in k)
    }
    wps = next((v for k, v in speed.items() if "per_s" in k or "/s" in k), None)
    return SpeedRow(f"{model_dir} (manifest metrics)", wps, "the job's own count", speed)


def count_words_like_c(tokens: Sequence[Sequence[str]], min_count: int) -> int:
    """Words of one pass as the C code counts them: in-vocabulary tokens plus one per line.

    The C code keeps words seen at least `min_count` times and counts each line end as the
    word "</s>"; its throughput is iterations x this count / time.
    """
    from collections import Counter

    counts = Counter(t for doc in tokens for t in doc)
    return sum(c for c in counts.values() if c >= min_count) + len(tokens)


def train_ours(args: argparse.Namespace, corpus: Corpus) -> tuple[Path, float]:
    """Runs `python -m training.jose` on the raw texts; returns the new version and wall s."""
    args.store.mkdir(parents=True, exist_ok=True)
    # Checkpoints go to a temporary folder (not the job's default ./checkpoints, which would be
    # inside the repository); TensorBoard logs are off.
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sentiment.txt"
        data.write_text(
            "".join(t.replace("\n", " ") + "\n" for t in corpus.texts), encoding="utf-8"
        )
        cmd = [
            sys.executable,
            "-m",
            "training.jose",
            "--data",
            str(data),
            "--out",
            str(args.store),
            "--name",
            args.name,
            "--tokenizer",
            args.tokenizer,
            "--dim",
            str(args.dim),
            "--window",
            str(args.window),
            "--min-count",
            str(args.min_count),
            "--epochs",
            str(args.epochs),
            "--workers",
            str(args.workers),
            "--checkpoint-dir",
            str(Path(tmp) / "checkpoints"),
            "--log-dir",
            "",
            *shlex.split(args.train_extra),
        ]
        print("$", shlex.join(cmd), flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(
            cmd,
            check=True,
            stdout=subprocess.PIPE,  # the job prints the exported folder; progress is on stderr
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        wall = time.perf_counter() - t0
    printed = [line for line in done.stdout.splitlines() if line.strip()]
    return Path(printed[-1].strip()), wall


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument(
        "--tokenizer",
        choices=TOKENIZER_KINDS,
        default="jieba",
        help="for training, TF-IDF words and peer vectors (a model uses its manifest's)",
    )
    p.add_argument("--model-dir", type=Path, help="an existing store version to score")
    p.add_argument("--train", action="store_true", help="train our model first")
    p.add_argument("--store", type=Path, default=Path("/tmp/jose_store"))
    p.add_argument("--name", default="jose-sentiment")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    p.add_argument("--min-count", type=int, default=DEFAULT_MIN_COUNT)
    p.add_argument("--dim", type=int, default=DEFAULT_DIM)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--train-extra", default="", help="more training.jose options, quoted")
    p.add_argument("--signatures", nargs="+", default=["average", "fold_in"])
    p.add_argument("--batch-size", type=int, default=EMBED_BATCH_SIZE)
    p.add_argument("--peer-doc-vectors", type=Path)
    p.add_argument("--peer-word-vectors", type=Path)
    p.add_argument("--peer-name", default="peer (C code)")
    p.add_argument("--peer-words-per-s", type=float, help="the peer's measured throughput")
    p.add_argument("--write-corpus", type=Path, help="write the segmented corpus here")
    p.add_argument("--no-tfidf", action="store_true")
    p.add_argument(
        "--lr-c",
        type=float,
        nargs="+",
        default=[DEFAULT_LR_C],
        help="LR inverse regularisation strengths; one column each",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    tokenizer = Tokenizer(args.tokenizer)
    t0 = time.perf_counter()
    corpus = load_corpus(args.data_dir, tokenizer)
    print(
        f"{len(corpus.texts)} documents ({corpus.is_train.sum()} train), "
        f"{sum(map(len, corpus.tokens))} {args.tokenizer} tokens, "
        f"tokenised in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    if args.write_corpus:
        write_segmented(corpus.tokens, args.write_corpus)
        print(f"wrote {args.write_corpus}")

    rows: list[Row] = []
    speed: list[SpeedRow] = []
    words_per_pass = count_words_like_c(corpus.tokens, args.min_count)
    model_dir = args.model_dir
    if args.train:
        model_dir, wall = train_ours(args, corpus)
        speed.append(
            SpeedRow(
                "ours, wall time of the whole job",
                args.epochs * words_per_pass / wall,
                f"{args.epochs} x {words_per_pass} words / {wall:.1f} s",
            )
        )
    if model_dir is not None:
        model_tok = json.loads((model_dir / "manifest.json").read_text())["tokenizer"]
        model_tokens = Tokenizer.from_config(model_tok)
        model_corpus = corpus
        if model_tokens.to_config() != tokenizer.to_config():
            model_corpus = load_corpus(args.data_dir, model_tokens)
        rows += model_rows(model_corpus, model_dir, args.lr_c, args.signatures, args.batch_size)
        speed.insert(0, manifest_speed(model_dir))
    rows += peer_rows(
        corpus, args.peer_doc_vectors, args.peer_word_vectors, args.lr_c, args.peer_name
    )
    if args.peer_words_per_s:
        speed.append(SpeedRow(args.peer_name, args.peer_words_per_s, "as measured by the caller"))
    if not args.no_tfidf:
        rows += tfidf_rows(corpus, args.lr_c, args.tokenizer)

    print()
    print(
        markdown_table(
            ["features", "dim", *(f"valid acc. (LR C={c:g})" for c in args.lr_c), "note"],
            [
                [r.features, str(r.dim), *(f"{r.accuracy[c]:.4f}" for c in args.lr_c), r.note]
                for r in rows
            ],
        )
    )
    if speed:
        print()
        print(
            markdown_table(
                ["trainer", "words/s", "detail"],
                [
                    [
                        s.trainer,
                        "-" if s.words_per_s is None else f"{s.words_per_s:,.0f}",
                        "; ".join([s.note] + [f"{k}={v:g}" for k, v in s.extra.items()]).strip(
                            "; "
                        ),
                    ]
                    for s in speed
                ],
            )
        )
        print(
            f"\nC-code word count of one pass (min-count {args.min_count}, '</s>' per line): "
            f"{words_per_pass}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "accuracy": [r.__dict__ for r in rows],
                    "speed": [s.__dict__ for s in speed],
                    "words_per_pass": words_per_pass,
                },
                indent=2,
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
