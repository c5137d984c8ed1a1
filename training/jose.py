"""Train JoSE spherical text embeddings on plain text (one document per line) and export them.

    python -m training.jose --data corpus.txt --out model_store --name jose-zh \\
        --tokenizer jieba --dim 100 --window 5 --min-count 2 --epochs 10

Writes `<out>/<name>/<version>/` (SavedModel with "average" and "fold_in" signatures, plus
manifest.json). Progress (loss, words/s) goes to stderr, scalars to TensorBoard, checkpoints to
--checkpoint-dir; `--resume` continues from the latest checkpoint exactly where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

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
from models.jose.tokenizer import TOKENIZER_KINDS, Tokenizer, Vocabulary
from training.common import (
    CheckpointKeeper,
    ExponentialMovingAverage,
    Progress,
    TensorBoardLogger,
    add_common_args,
    data_summary,
    epoch_permutation,
    export_version,
    parallel_map_ordered,
    read_lines,
    set_seed,
)
from training.common.cli import add_distribution_args
from training.common.distribute import (
    is_chief,
    make_strategy,
    make_sum_across_workers,
    share_of_batch,
    worker_count,
    worker_index,
)

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


def build_parser() -> argparse.ArgumentParser:
    defaults, fold = JoseConfig(), FoldInConfig()
    p = argparse.ArgumentParser(
        prog="python -m training.jose",
        description="Train JoSE spherical word/document embeddings and export a SavedModel.",
    )
    add_common_args(p)
    p.set_defaults(
        epochs=DEFAULT_EPOCHS,
        ema_decay=DEFAULT_EMA_DECAY,
        checkpoint_every=DEFAULT_CHECKPOINT_EVERY,
    )
    add_distribution_args(p)
    g = p.add_argument_group("JoSE")
    g.add_argument("--tokenizer", choices=TOKENIZER_KINDS, default="jieba")
    g.add_argument("--no-lowercase", action="store_true", help="keep the case of the text")
    g.add_argument("--dim", type=int, default=defaults.dim)
    g.add_argument("--window", type=int, default=defaults.window)
    g.add_argument("--negative", type=int, default=defaults.negative)
    g.add_argument("--margin", type=float, default=defaults.margin)
    g.add_argument("--min-count", type=int, default=defaults.min_count)
    g.add_argument("--max-vocab", type=int, default=None, help="keep the most frequent words")
    g.add_argument("--sample", type=float, default=defaults.sample)
    g.add_argument("--lr", type=float, default=defaults.learning_rate)
    g.add_argument("--step-rule", choices=["c_code", "paper"], default=defaults.step_rule)
    g.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_WORDS,
        help="words read per training step (each step runs minibatch chunks of --chunk-pairs)",
    )
    g.add_argument("--chunk-pairs", type=int, default=defaults.wc_chunk)
    g.add_argument("--chunk-docs", type=int, default=defaults.wd_chunk)
    g.add_argument("--table-size", type=int, default=DEFAULT_TABLE_SIZE)
    g.add_argument("--no-jit", action="store_true", help="do not compile the step with XLA")
    g.add_argument("--fold-in-steps", type=int, default=fold.steps)
    g.add_argument("--fold-in-lr", type=float, default=fold.learning_rate)
    g.add_argument("--fold-in-negative", type=int, default=fold.negative)
    g.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="stop after this many steps (in total) with a checkpoint and no export",
    )
    return p


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


def _tokenize_all(lines: list[str], tokenizer: Tokenizer, workers: int) -> list[list[str]]:
    groups = [lines[i : i + TOKENIZE_GROUP] for i in range(0, len(lines), TOKENIZE_GROUP)]

    def run(group: list[str]) -> list[list[str]]:
        return [tokenizer.tokenize(line) for line in group]

    out: list[list[str]] = []
    for part in parallel_map_ordered(run, groups, workers=workers, prefetch=max(1, 2 * workers)):
        out.extend(part)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def train_embedding(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process (used by `main`, tests and training/demo.py).

    Args:
        args: parsed options (`parse_args`) or a command line without the program name.

    Returns:
        The exported version folder, or None when `--stop-after-steps` stopped the run early
        (a checkpoint holds the state; rerun with `--resume` to finish).
    """
    if not isinstance(args, argparse.Namespace):
        args = parse_args(list(args))
    set_seed(args.seed)
    log = _stderr
    started = time.perf_counter()
    # Before any TensorFlow op: a multi-worker strategy configures the collectives at start-up.
    strategy = make_strategy(args.strategy)
    chief, workers, me = is_chief(strategy), worker_count(strategy), worker_index(strategy)

    tokenizer = Tokenizer(args.tokenizer, lowercase=not args.no_lowercase)
    lines = read_lines(args.data)
    tokens = _tokenize_all(lines, tokenizer, args.workers)
    vocab = Vocabulary.build(tokens, min_count=args.min_count, max_size=args.max_vocab)
    if len(vocab) < 2:
        raise ValueError(f"no word of {args.data} occurs {args.min_count} times or more")
    docs = [np.asarray(vocab.encode(t), dtype=np.int32) for t in tokens]
    del tokens
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    corpus_words = int(lengths.sum())
    log(
        f"{len(docs)} documents, {corpus_words} words in vocabulary, {len(vocab)} words "
        f"(tokenised in {time.perf_counter() - started:.1f}s)"
    )

    config = JoseConfig(
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
    fold_in = FoldInConfig(
        steps=args.fold_in_steps,
        learning_rate=args.fold_in_lr,
        negative=args.fold_in_negative,
        margin=args.margin,
        step_rule=args.step_rule,
    )
    model = JoseModel(len(vocab), len(docs), config, seed=args.seed)
    sum_across_workers = make_sum_across_workers(strategy) if workers > 1 else None
    counts = np.asarray(vocab.counts, dtype=np.float64)
    table = UnigramTable(counts, table_size=args.table_size)
    keep = keep_probabilities(counts, config.sample)
    # Only the word table is exported, so only it is averaged (the others would triple the cost).
    ema = ExponentialMovingAverage([model.word], decay=args.ema_decay)
    keeper = CheckpointKeeper(args.checkpoint_dir, read_only=not chief, model=model, ema=ema)
    start_step = (keeper.restore_latest() or 0) if args.resume else 0
    if start_step:
        log(f"resumed from {keeper.latest} at step {start_step}")

    total_words = corpus_words * args.epochs
    schedule = list(_schedule(lengths, args.seed, args.epochs, args.batch_size))
    total_steps = len(schedule)
    stop = total_steps if args.stop_after_steps is None else min(total_steps, args.stop_after_steps)
    words_done = resumed_words = sum(spec.words for spec in schedule[:start_step])

    def prepare(spec: _BatchSpec) -> ChunkedBatch:
        # Seeded by (seed, epoch, batch) only, so a batch is the same whichever data thread
        # builds it and whether or not the run was resumed (and by the worker in a distributed
        # run, whose share of the documents differs).
        seeds = [args.seed, spec.epoch, spec.index] + ([me] if workers > 1 else [])
        rng = np.random.default_rng(seeds)
        # A distributed run's worker reads its share of the batch's documents.
        rows = share_of_batch(spec.docs, workers, me)
        tuples = make_training_tuples(
            [docs[i] for i in rows], rows, keep, table, rng, config.window, config.negative
        )
        return pack_chunks(tuples, config.wc_chunk, config.wd_chunk, model.pad_doc)

    board = TensorBoardLogger(args.log_dir if chief else None)
    tables = (model.word, model.context, model.doc)
    sums = np.zeros(4)  # wc loss, wc terms, wd loss, wd terms since the last report
    epoch_sums = np.zeros(4)
    last_epoch_loss = (float("nan"), float("nan"))
    train_time, step = 0.0, start_step
    todo = schedule[start_step:stop]
    with Progress(
        total=stop - start_step, desc="jose", unit="step", disable=args.no_progress or not chief
    ) as bar:
        t0 = time.perf_counter()
        for spec, batch in zip(
            todo,
            parallel_map_ordered(prepare, todo, workers=args.workers, prefetch=2 + args.workers),
            strict=True,
        ):
            # the learning rate decays linearly with the words read, chunk by chunk
            fractions = np.arange(batch.num_chunks) / batch.num_chunks
            lrs = np.array(
                [learning_rate_at(config, int(words_done + f * spec.words), total_words)
                 for f in fractions],
                np.float32,
            )  # fmt: skip
            start = [tf.identity(t) for t in tables] if sum_across_workers else []
            out = model.train_step(
                batch.wc_word, batch.wc_context, batch.wc_negative,
                batch.wd_word, batch.wd_doc, batch.wd_negative, lrs,
            )  # fmt: skip
            stats = tf.stack([out[k] for k in ("wc_loss", "wc_terms", "wd_loss", "wd_terms")])
            if sum_across_workers is not None:
                # Synchronous data parallelism: every worker stepped on its share from the same
                # tables; the changes of all workers are summed (an all-reduce, the same on every
                # worker) and each row is put back onto the sphere.
                *changes, stats = sum_across_workers(
                    [t - s for t, s in zip(tables, start, strict=True)] + [stats]
                )
                for t, s, change in zip(tables, start, changes, strict=True):
                    t.assign(tf.math.l2_normalize(s + change, axis=1))
            ema.update()
            values = stats.numpy().astype(np.float64)
            sums += values
            epoch_sums += values
            words_done += spec.words
            step = spec.step + 1
            train_time = time.perf_counter() - t0
            words_per_s = (words_done - resumed_words) / train_time
            if step % LOG_EVERY_STEPS == 0 or step == stop:
                wc_loss, wd_loss = sums[0] / max(sums[1], 1), sums[2] / max(sums[3], 1)
                board.scalars(
                    step, wc_loss=wc_loss, wd_loss=wd_loss, lr=float(lrs[-1]),
                    words_per_s=words_per_s, epoch=spec.epoch,
                )  # fmt: skip
                sums[:] = 0
            bar.update(
                1,
                wc_loss=float(values[0] / max(values[1], 1)),
                wd_loss=float(values[2] / max(values[3], 1)),
                words_per_s=words_per_s,
                epoch=spec.epoch + 1,
            )
            epoch_done = step == total_steps or schedule[step].epoch != spec.epoch
            if epoch_done:
                last_epoch_loss = (
                    epoch_sums[0] / max(epoch_sums[1], 1),
                    epoch_sums[2] / max(epoch_sums[3], 1),
                )
                epoch_sums[:] = 0
                log(
                    f"epoch {spec.epoch + 1}/{args.epochs}: word-context loss "
                    f"{last_epoch_loss[0]:.4f}, word-document loss {last_epoch_loss[1]:.4f}, "
                    f"{words_per_s:,.0f} words/s"
                )
            if args.checkpoint_every and step % args.checkpoint_every == 0:
                keeper.save(step)
    board.close()
    saved_in_loop = bool(args.checkpoint_every) and step % args.checkpoint_every == 0
    if keeper.latest is None or (step > start_step and not saved_in_loop):
        keeper.save(step)
    trained_words = words_done - resumed_words
    if step < total_steps:
        log(f"stopped after step {step}/{total_steps}; checkpoint {keeper.latest}")
        return None
    if not chief:
        log(f"worker {me} done; the chief exports")
        return None

    with ema.averaged():
        word_vectors = model.word.numpy()
    # The average of unit vectors is shorter than 1: back onto the sphere (export normalises).
    norms = np.linalg.norm(word_vectors, axis=1, keepdims=True)
    word_vectors = word_vectors / np.maximum(norms, 1e-12)

    hyper = config.to_dict()
    hyper.update(
        epochs=args.epochs,
        batch_words=args.batch_size,
        seed=args.seed,
        max_vocab=args.max_vocab,
        ema_decay=args.ema_decay,
        table_size=args.table_size,
        tokenizer=tokenizer.to_config(),
        fold_in=fold_in.to_dict(),
        default_signature="fold_in",
        strategy=args.strategy,
    )
    metrics: dict[str, Any] = {
        "final_word_context_loss": _finite(last_epoch_loss[0]),
        "final_word_document_loss": _finite(last_epoch_loss[1]),
        "train_words_per_second": round(trained_words / train_time, 1) if train_time else None,
        "train_seconds": round(train_time, 2),
        "steps": total_steps,
    }
    data = data_summary(
        args.data,
        "text-lines",
        {"documents": len(docs), "tokens": corpus_words, "vocab_size": len(vocab)},
    )
    path = export_version(
        args.out,
        args.name,
        task="embedding",
        family="jose",
        write_model=lambda folder: export_saved_model(folder, word_vectors, vocab, fold_in),
        config=hyper,
        data=data,
        metrics=metrics,
        extra={"dim": config.dim, "tokenizer": tokenizer.to_config()},
    )
    log(f"exported {path} in {time.perf_counter() - started:.1f}s total")
    return path


def _finite(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    path = train_embedding(parse_args(argv))
    if path is not None:
        print(path)


if __name__ == "__main__":
    main()
