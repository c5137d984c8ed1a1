"""Train JoSE spherical text embeddings on plain text (one document per line) and export them.

    python -m training.jose --data corpus.txt --out model_store --name jose-zh \\
        --tokenizer jieba --dim 100 --window 5 --min-count 2 --epochs 10

Writes `<out>/<name>/<version>/` (SavedModel with "average" and "fold_in" signatures, plus
manifest.json). Progress (loss, words/s) goes to stderr, scalars to TensorBoard, checkpoints to
--checkpoint-dir; `--resume` continues from the latest checkpoint exactly where it stopped.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import tensorflow as tf

from models.data_errors import DataError
from models.jose.export import export_saved_model
from models.jose.jose_model import FoldInConfig, JoseConfig, JoseModel, learning_rate_at
from models.jose.pairs import (
    DEFAULT_TABLE_SIZE,
    ChunkedBatch,
    UnigramTable,
    keep_probabilities,
    make_training_tuples,
    pack_chunks,
)
from models.jose.tokenizer import Tokenizer, TokenizerKind, Vocabulary
from training.common.cli import non_negative_float, positive_float, positive_int
from training.common.data import (
    data_summary,
    epoch_permutation,
    parallel_map_ordered,
    read_lines,
)
from training.common.distribute import (
    make_sum_across_workers,
    share_of_batch,
    worker_count,
    worker_index,
)
from training.common.ema import ExponentialMovingAverage
from training.common.job import Batch, Fit, Job, Manifest, Plan, log

# Words read per training step (one call into the compiled loop over its minibatch chunks);
# about 35 chunks of ~450 words with the default chunk sizes.
DEFAULT_BATCH_WORDS = 16_000
# A training step here is a large batch, so the job's EMA averages over fewer steps than the
# common default: 0.99 ~ the last 100 steps (about 1.6M words).
DEFAULT_EMA_DECAY = 0.99
DEFAULT_CHECKPOINT_EVERY = 100
DEFAULT_EPOCHS = 10  # the C code's -iter
# Tokenising is Python (jieba); documents are handed to the workers in groups of this many.
TOKENIZE_GROUP = 512
LOG_EVERY_STEPS = 10


@dataclass
class _BatchSpec:
    step: int
    epoch: int
    index: int  # batch within the epoch
    docs: np.ndarray  # document rows of this batch
    words: int


def _epoch_batches(
    lengths: np.ndarray, seed: int, epoch: int, batch_words: int
) -> list[np.ndarray]:
    """Documents of one epoch in a fixed random order, cut into batches of ~batch_words words."""
    order = epoch_permutation(len(lengths), seed, epoch)
    ends = np.cumsum(lengths[order])
    group = np.maximum(ends - 1, 0) // batch_words
    cuts = np.flatnonzero(np.diff(group)) + 1
    return [b for b in np.split(order, cuts) if len(b)]


def _schedule(
    lengths: np.ndarray, seed: int, epochs: int, batch_words: int
) -> Iterator[_BatchSpec]:
    step = 0
    for epoch in range(epochs):
        for index, docs in enumerate(_epoch_batches(lengths, seed, epoch, batch_words)):
            yield _BatchSpec(step, epoch, index, docs, int(lengths[docs].sum()))
            step += 1


# What --tokenizer takes. "whitespace" is the name space-separated text was trained under before
# "basic" existed; it now trains "basic", so that the same command no longer gives a vocabulary
# of words with punctuation attached ("program,", "permitted."). The manifest records "basic".
TRAINING_TOKENIZERS: tuple[str, ...] = ("jieba", "char", "basic", "whitespace")
TRAINED_AS: dict[str, TokenizerKind] = {"whitespace": "basic"}


def training_tokenizer(args: argparse.Namespace) -> Tokenizer:
    """The tokenizer a new version is trained with (and its manifest records)."""
    kind = TRAINED_AS.get(args.tokenizer, cast(TokenizerKind, args.tokenizer))
    if kind != args.tokenizer:
        log(f"--tokenizer {args.tokenizer} trains the {kind!r} tokenizer (punctuation split off)")
    if args.strip_accents and kind != "basic":
        raise ValueError(f"--strip-accents applies to the basic tokenizer, not {kind!r}")
    return Tokenizer(kind, lowercase=not args.no_lowercase, strip_accents=args.strip_accents)


def _tokenize_all(lines: list[str], tokenizer: Tokenizer, workers: int) -> list[list[str]]:
    groups = [lines[i : i + TOKENIZE_GROUP] for i in range(0, len(lines), TOKENIZE_GROUP)]

    def run(group: list[str]) -> list[list[str]]:
        return [tokenizer.tokenize(line) for line in group]

    out: list[list[str]] = []
    for part in parallel_map_ordered(run, groups, workers=workers, prefetch=max(1, 2 * workers)):
        out.extend(part)
    return out


class JoseJob(Job):
    """JoSE's parts of the harness (`training.common.job`): a Riemannian SGD step of its own over
    batches of documents prepared by data threads, the word table averaged and exported."""

    prog = "python -m training.jose"
    description = "Train JoSE spherical word/document embeddings and export a SavedModel."
    task, family, label = "embedding", "jose", "jose"
    defaults = {
        "epochs": DEFAULT_EPOCHS,
        "ema_decay": DEFAULT_EMA_DECAY,
        "checkpoint_every": DEFAULT_CHECKPOINT_EVERY,
    }
    log_every = LOG_EVERY_STEPS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        defaults, fold = JoseConfig(), FoldInConfig()
        g = parser.add_argument_group("JoSE")
        g.add_argument(
            "--tokenizer",
            choices=TRAINING_TOKENIZERS,
            default="jieba",
            help="jieba: Chinese words; char: one token per character (ASCII words whole); "
            "basic: space-separated languages, punctuation split off (BERT's basic tokenizer); "
            "whitespace: trains as basic (str.split, which left punctuation on the words, stays "
            "only for serving the versions trained with it)",
        )
        g.add_argument("--no-lowercase", action="store_true", help="keep the case of the text")
        g.add_argument(
            "--strip-accents",
            action="store_true",
            help="basic tokenizer: also remove accents (café -> cafe), as BERT's uncased models do",
        )
        g.add_argument("--dim", type=positive_int, default=defaults.dim)
        g.add_argument("--window", type=positive_int, default=defaults.window)
        g.add_argument("--negative", type=positive_int, default=defaults.negative)
        g.add_argument("--margin", type=non_negative_float, default=defaults.margin)
        g.add_argument("--min-count", type=positive_int, default=defaults.min_count)
        g.add_argument(
            "--max-vocab", type=positive_int, default=None, help="keep the most frequent words"
        )
        g.add_argument(
            "--sample",
            type=non_negative_float,
            default=defaults.sample,
            help="subsampling threshold of frequent words (0: none)",
        )
        g.add_argument("--lr", type=positive_float, default=defaults.learning_rate)
        g.add_argument("--step-rule", choices=["c_code", "paper"], default=defaults.step_rule)
        g.add_argument(
            "--batch-size",
            type=positive_int,
            default=DEFAULT_BATCH_WORDS,
            help="words read per training step (each step runs minibatch chunks of --chunk-pairs)",
        )
        g.add_argument("--chunk-pairs", type=positive_int, default=defaults.wc_chunk)
        g.add_argument("--chunk-docs", type=positive_int, default=defaults.wd_chunk)
        g.add_argument("--table-size", type=positive_int, default=DEFAULT_TABLE_SIZE)
        g.add_argument("--no-jit", action="store_true", help="do not compile the step with XLA")
        g.add_argument("--fold-in-steps", type=positive_int, default=fold.steps)
        g.add_argument("--fold-in-lr", type=positive_float, default=fold.learning_rate)
        g.add_argument("--fold-in-negative", type=positive_int, default=fold.negative)
        g.add_argument(
            "--stop-after-steps",
            type=positive_int,
            default=None,
            help="stop after this many steps (in total) with a checkpoint and no export",
        )

    def setup(self, args: argparse.Namespace, strategy: Any) -> Plan:
        self.args = args
        self.workers, self.me = worker_count(strategy), worker_index(strategy)
        started = time.perf_counter()
        self.tokenizer = training_tokenizer(args)
        tokens = _tokenize_all(read_lines(args.data), self.tokenizer, args.workers)
        self.vocab = vocab = Vocabulary.build(
            tokens, min_count=args.min_count, max_size=args.max_vocab
        )
        if len(vocab) < 2:
            raise DataError(f"no word of {args.data} occurs {args.min_count} times or more")
        self.docs = [np.asarray(vocab.encode(t), dtype=np.int32) for t in tokens]
        del tokens
        lengths = np.array([len(d) for d in self.docs], dtype=np.int64)
        self.corpus_words = int(lengths.sum())
        log(
            f"{len(self.docs)} documents, {self.corpus_words} words in vocabulary, {len(vocab)} "
            f"words (tokenised in {time.perf_counter() - started:.1f}s)"
        )
        self.config = config = JoseConfig(
            dim=args.dim,
            window=args.window,
            negative=args.negative,
            margin=args.margin,
            learning_rate=args.lr,
            sample=args.sample,
            min_count=args.min_count,
            step_rule=args.step_rule,
            wc_chunk=args.chunk_pairs,
            wd_chunk=args.chunk_docs,
            jit_compile=not args.no_jit,
        )
        self.fold_in = FoldInConfig(
            steps=args.fold_in_steps,
            learning_rate=args.fold_in_lr,
            negative=args.fold_in_negative,
            margin=args.margin,
            step_rule=args.step_rule,
        )
        self.model = model = JoseModel(len(vocab), len(self.docs), config, seed=args.seed)
        self.sum_across_workers = make_sum_across_workers(strategy) if self.workers > 1 else None
        counts = np.asarray(vocab.counts, dtype=np.float64)
        self.table = UnigramTable(counts, table_size=args.table_size)
        self.keep = keep_probabilities(counts, config.sample)
        # Only the word table is exported, so only it is averaged (the others would triple the
        # cost).
        self.ema = ema = ExponentialMovingAverage([model.word], decay=args.ema_decay)
        self.total_words = self.corpus_words * args.epochs
        self.schedule = list(_schedule(lengths, args.seed, args.epochs, args.batch_size))
        self.sums = np.zeros(4)  # wc loss, wc terms, wd loss, wd terms since the last report
        self.epoch_sums = np.zeros(4)
        self.last_epoch_loss = (float("nan"), float("nan"))
        return Plan(len(self.schedule), ema, {"model": model, "ema": ema})

    def _prepare(self, spec: _BatchSpec) -> ChunkedBatch:
        # Seeded by (seed, epoch, batch) only, so a batch is the same whichever data thread
        # builds it and whether or not the run was resumed (and by the worker in a distributed
        # run, whose share of the documents differs).
        seeds = [self.args.seed, spec.epoch, spec.index] + ([self.me] if self.workers > 1 else [])
        rng = np.random.default_rng(seeds)
        # A distributed run's worker reads its share of the batch's documents.
        rows = share_of_batch(spec.docs, self.workers, self.me)
        config = self.config
        tuples = make_training_tuples(
            [self.docs[i] for i in rows], rows, self.keep, self.table, rng, config.window,
            config.negative,
        )  # fmt: skip
        return pack_chunks(tuples, config.wc_chunk, config.wd_chunk, self.model.pad_doc)

    def batches(self, start: int, stop: int) -> Iterator[Batch]:
        self.words_done = self.resumed_words = sum(s.words for s in self.schedule[:start])
        todo, workers = self.schedule[start:stop], self.args.workers
        prepared = parallel_map_ordered(self._prepare, todo, workers=workers, prefetch=2 + workers)
        for spec, chunks in zip(todo, prepared, strict=True):
            following = spec.step + 1
            ends_epoch = following == len(self.schedule) or (
                self.schedule[following].epoch != spec.epoch
            )
            yield Batch(spec.step, spec.epoch, ends_epoch, (spec, chunks))

    def train(self, batch: Batch, fit: Fit) -> dict[str, float]:
        spec, chunks = batch.rows
        model = self.model
        tables = (model.word, model.context, model.doc)
        # the learning rate decays linearly with the words read, chunk by chunk
        fractions = np.arange(chunks.num_chunks) / chunks.num_chunks
        self.lrs = np.array(
            [learning_rate_at(self.config, int(self.words_done + f * spec.words), self.total_words)
             for f in fractions],
            np.float32,
        )  # fmt: skip
        start = [tf.identity(t) for t in tables] if self.sum_across_workers else []
        out = model.train_step(
            chunks.wc_word, chunks.wc_context, chunks.wc_negative,
            chunks.wd_word, chunks.wd_doc, chunks.wd_negative, self.lrs,
        )  # fmt: skip
        stats = tf.stack([out[k] for k in ("wc_loss", "wc_terms", "wd_loss", "wd_terms")])
        if self.sum_across_workers is not None:
            # Synchronous data parallelism: every worker stepped on its share from the same
            # tables; the changes of all workers are summed (an all-reduce, the same on every
            # worker) and each row is put back onto the sphere.
            *changes, stats = self.sum_across_workers(
                [t - s for t, s in zip(tables, start, strict=True)] + [stats]
            )
            for t, s, change in zip(tables, start, changes, strict=True):
                t.assign(tf.math.l2_normalize(s + change, axis=1))
        self.ema.update()
        values = stats.numpy().astype(np.float64)
        self.sums += values
        self.epoch_sums += values
        self.words_done += spec.words
        self.epoch = spec.epoch
        self.words_per_s = (self.words_done - self.resumed_words) / fit.elapsed()
        return {
            "wc_loss": float(values[0] / max(values[1], 1)),
            "wd_loss": float(values[2] / max(values[3], 1)),
            "words_per_s": self.words_per_s,
        }

    def scalars(self, fit: Fit) -> dict[str, float]:
        sums = self.sums
        scalars = {
            "wc_loss": sums[0] / max(sums[1], 1),
            "wd_loss": sums[2] / max(sums[3], 1),
            "lr": float(self.lrs[-1]),
            "words_per_s": self.words_per_s,
            "epoch": self.epoch,
        }
        sums[:] = 0
        return scalars

    def end_epoch(self, epoch: int, fit: Fit) -> str:
        sums = self.epoch_sums
        self.last_epoch_loss = (sums[0] / max(sums[1], 1), sums[2] / max(sums[3], 1))
        sums[:] = 0
        return (
            f"epoch {epoch + 1}/{self.args.epochs}: word-context loss "
            f"{self.last_epoch_loss[0]:.4f}, word-document loss {self.last_epoch_loss[1]:.4f}, "
            f"{self.words_per_s:,.0f} words/s"
        )

    def manifest(self, args: argparse.Namespace, fit: Fit) -> Manifest:
        # The average of unit vectors is shorter than 1: back onto the sphere (export normalises).
        word_vectors = self.model.word.numpy()
        norms = np.linalg.norm(word_vectors, axis=1, keepdims=True)
        word_vectors = word_vectors / np.maximum(norms, 1e-12)
        trained_words = self.words_done - self.resumed_words
        train_time = fit.train_seconds
        config = self.config.to_dict()
        config.update(
            epochs=args.epochs,
            batch_words=args.batch_size,
            seed=args.seed,
            max_vocab=args.max_vocab,
            ema_decay=args.ema_decay,
            table_size=args.table_size,
            tokenizer=self.tokenizer.to_config(),
            fold_in=self.fold_in.to_dict(),
            default_signature="fold_in",
            strategy=args.strategy,
        )
        metrics: dict[str, Any] = {
            "final_word_context_loss": _finite(self.last_epoch_loss[0]),
            "final_word_document_loss": _finite(self.last_epoch_loss[1]),
            "train_words_per_second": round(trained_words / train_time, 1) if train_time else None,
            "train_seconds": round(train_time, 2),
            "steps": fit.total_steps,
        }
        data = data_summary(
            args.data,
            "text-lines",
            {
                "documents": len(self.docs),
                "tokens": self.corpus_words,
                "vocab_size": len(self.vocab),
            },
        )
        return Manifest(
            write_model=lambda folder: export_saved_model(
                folder, word_vectors, self.vocab, self.fold_in
            ),
            config=config,
            data=data,
            metrics=metrics,
            extra={"dim": self.config.dim, "tokenizer": self.tokenizer.to_config()},
        )


def build_parser() -> argparse.ArgumentParser:
    return JoseJob().build_parser()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return JoseJob().parse_args(argv)


def train_embedding(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process (`JoseJob.run`: used by `main`, tests and training/demo.py)."""
    return JoseJob().run(args)


def _finite(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


main = JoseJob.main


if __name__ == "__main__":
    main()
