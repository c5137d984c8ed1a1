"""Pretrain a small BERT with the masked-language-model objective on any text, and write a BERT
checkpoint folder that `--init-checkpoint` takes (`training.qa`, `training.generation`).

    python -m training.pretrain --data corpus.txt --more-data drcd_simplified.json \\
        --name zh-char-bert --out pretrained
    python -m training.qa --init-checkpoint pretrained/zh-char-bert --data ...

For users without a pretrained checkpoint in their language (issue 18: no Chinese BERT is
reachable here). Text in: plain text files (one document a line), `.tsv` files (the first column,
as the sentiment sets have it) and SQuAD / WebQA-format `.json` QA files (their passages and
questions); a folder is read file by file. The vocabulary is the characters of the text
(`build_char_vocab`, as a from-scratch `training.qa` builds it), or `--vocab`.

The objective is BERT's (Devlin et al. 2019, Sec. 3.1): documents are tokenised, joined with
[SEP] and cut into sequences of `--seq-length` tokens ([CLS] ... [SEP]); 15% of the tokens of each
sequence are predicted, of which 80% are replaced by [MASK], 10% by a random token and 10% kept.
Masks are drawn anew for every batch (RoBERTa's dynamic masking, Liu et al. 2019), from (seed,
step), so a resumed run masks as the uninterrupted one. Chinese characters are words of their
own, so whole-word masking does not apply. No next-sentence prediction (RoBERTa found it does not
help).

Out: `<out>/<name>/` with config.json, model.safetensors (BertForMaskedLM's names, MLM head
included), vocab.txt, tokenizer_config.json, and pretrain.json (options, data, held-out masked
accuracy). The weights are the exponential moving average, as every job here exports.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from models.bert.bert_backbone import BertBackbone, BertConfig
from models.bert.bert_lm import BertLM
from models.bert.checkpoint import save_hf_folder
from models.bert.tokenizer import VOCAB_FILE, BertTokenizer
from models.data_errors import DataError, text_lines
from models.qa.readers import read_qa_file
from models.qa.seq2seq import (
    SMALL_HIDDEN_SIZE,
    SMALL_INTERMEDIATE_SIZE,
    SMALL_NUM_HEADS,
    SMALL_NUM_LAYERS,
)
from training.common.cli import fraction, positive_int
from training.common.export import library_versions
from training.common.job import Batch, Fit, Manifest, arguments_config, log
from training.common.loop import BertJob
from training.common.text import build_char_vocab, init_positions_as_sinusoids, write_vocab

# BERT's masking: this share of the tokens is predicted; of those, these shares are replaced by
# [MASK], by a random token, or kept.
MASK_RATE = 0.15
MASK_TOKEN_SHARE = 0.8
RANDOM_TOKEN_SHARE = 0.1
# Tokens per sequence: [CLS], text and [SEP]. A QA sample at the default limits is 356 long.
DEFAULT_SEQ_LENGTH = 256
# The position table: BERT's 512, so that fine-tuning may read longer samples than pretraining
# (positions beyond --seq-length keep their sinusoid start).
DEFAULT_MAX_POSITION = 512
DEFAULT_BATCH_SIZE = 32
# BERT-small-sized models from scratch take a larger step than BERT-base's 1e-4.
DEFAULT_LR = 5e-4
# Sequences held out for the masked-token accuracy in pretrain.json (at most this share).
DEFAULT_VALID_FRACTION = 0.02
MAX_VALID_SEQUENCES = 512
PRETRAIN_FILE = "pretrain.json"
DEFAULT_OUT = Path("pretrained")
TEXT_SUFFIXES = (".txt", ".tsv", ".json", ".jsonl")


@keras.saving.register_keras_serializable(package="kexue_bert")
class MaskedLM(BertLM):
    """BERT (bidirectional) + tied MLM head: inputs -> token logits [B, L, V]."""

    attention_mode = "bidirectional"
    model_inputs = ("token_ids", "segment_ids", "padding_mask")


# Text.
def _qa_texts(path: Path) -> Iterator[str]:
    seen: set[str] = set()
    for example in read_qa_file(path):
        for passage in example.passages:
            if passage.text and passage.text not in seen:
                seen.add(passage.text)
                yield passage.text
        yield example.question


def read_documents(path: Path) -> Iterator[str]:
    """The documents of a file (by suffix, see the module's docstring) or of a folder's files."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix in TEXT_SUFFIXES:
                yield from read_documents(child)
        return
    if path.suffix == ".json":
        yield from _qa_texts(path)
    elif path.suffix == ".tsv":
        for row in csv.reader(text_lines(path), delimiter="\t", quoting=csv.QUOTE_NONE):
            if row and row[0].strip():
                yield row[0].strip()
    else:
        for line in text_lines(path):
            if line.strip():
                yield line.strip()


def pack_sequences(
    documents: Iterable[list[int]], seq_length: int, cls_id: int, sep_id: int
) -> list[np.ndarray]:
    """Token ids of the documents, one after another with [SEP] between them, cut into
    `[CLS] ... [SEP]` sequences of `seq_length` tokens (the last may be shorter)."""
    body = seq_length - 2
    stream: list[int] = []
    sequences: list[np.ndarray] = []
    for ids in documents:
        if not ids:
            continue
        if stream:
            stream.append(sep_id)
        stream.extend(ids)
        while len(stream) >= body:
            sequences.append(np.array([cls_id, *stream[:body], sep_id], dtype=np.int32))
            stream = stream[body:]
            if stream and stream[0] == sep_id:
                stream = stream[1:]
    if stream:
        sequences.append(np.array([cls_id, *stream, sep_id], dtype=np.int32))
    return sequences


def mask_tokens(
    rows: Sequence[np.ndarray],
    rng: np.random.Generator,
    vocab_size: int,
    mask_id: int,
    special_ids: Sequence[int],
    pad_id: int,
    width: int,
    predictions: int,
) -> dict[str, np.ndarray]:
    """BERT's masking of a batch of sequences, padded to `width`.

    Returns:
        token_ids, segment_ids, padding_mask [B, width]; mlm_positions, mlm_ids, mlm_weights
        [B, predictions]: where the predicted tokens are, what they were, and 1 for real
        predictions (rows with fewer than `predictions` of them are padded with weight 0).
    """
    batch = len(rows)
    token_ids = np.full((batch, width), pad_id, np.int32)
    padding = np.zeros((batch, width), np.int32)
    positions = np.zeros((batch, predictions), np.int32)
    targets = np.zeros((batch, predictions), np.int32)
    weights = np.zeros((batch, predictions), np.float32)
    specials = np.array(list(special_ids), np.int32)
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = row
        padding[i, : len(row)] = 1
        candidates = np.flatnonzero(~np.isin(row, specials))
        count = min(predictions, len(candidates), max(1, round(len(candidates) * MASK_RATE)))
        if count == 0:
            continue
        chosen = np.sort(rng.choice(candidates, size=count, replace=False))
        positions[i, :count] = chosen
        targets[i, :count] = row[chosen]
        weights[i, :count] = 1.0
        draw = rng.random(count)
        replaced = chosen[draw < MASK_TOKEN_SHARE]
        randomised = chosen[
            (draw >= MASK_TOKEN_SHARE) & (draw < MASK_TOKEN_SHARE + RANDOM_TOKEN_SHARE)
        ]
        token_ids[i, replaced] = mask_id
        token_ids[i, randomised] = rng.integers(len(specials), vocab_size, size=len(randomised))
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": padding,
        "mlm_positions": positions,
        "mlm_ids": targets,
        "mlm_weights": weights,
    }


def masked_lm_loss_and_hits(
    model: MaskedLM, inputs: dict[str, Any], training: bool
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(mean cross-entropy, correct predictions, predictions) over the masked positions; the
    head runs on those positions only (its [B, L, V] logits would be most of the step)."""
    features = {key: inputs[key] for key in MaskedLM.model_inputs}
    states = model.backbone(features, training=training)["sequence_output"]
    positions = tf.cast(inputs["mlm_positions"], tf.int32)
    logits = model.mlm_head(tf.gather(states, positions, batch_dims=1))
    targets = tf.cast(inputs["mlm_ids"], tf.int32)
    weights = tf.cast(inputs["mlm_weights"], tf.float32)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    count = tf.reduce_sum(weights)
    hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), targets), tf.float32)
    loss = tf.reduce_sum(cross_entropy * weights) / tf.maximum(count, 1.0)
    return loss, tf.reduce_sum(hits * weights), count


class PretrainJob(BertJob):
    """The MLM pretraining job's parts of the harness (`training.common.job`)."""

    prog = "python -m training.pretrain"
    description = (
        "Pretrain a BERT with the masked-LM objective on text and write a checkpoint folder "
        "(config.json, model.safetensors, vocab.txt) for --init-checkpoint."
    )
    task, family, label = "pretrain", "bert", "mlm"
    # No dropout by default: short pretraining on a CPU underfits rather than overfits (Geiping &
    # Goldstein 2022, "Cramming", drop it for short budgets too), and the random masks of
    # dropout were a fifth of a step's CPU time (a third with --jit, whose XLA random numbers
    # are slow on CPU): bench/pretrain_step.py.
    defaults = {"epochs": 10, "out": DEFAULT_OUT, "dropout": 0.0}
    batch_size = DEFAULT_BATCH_SIZE
    finetune_lr = scratch_lr = DEFAULT_LR
    hidden_size, num_layers, num_heads = SMALL_HIDDEN_SIZE, SMALL_NUM_LAYERS, SMALL_NUM_HEADS
    intermediate_size = SMALL_INTERMEDIATE_SIZE

    model: MaskedLM

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("pretraining")
        g.add_argument(
            "--more-data",
            type=Path,
            nargs="*",
            default=[],
            help="more text files or folders (.txt one document a line, .tsv first column, "
            ".json QA passages and questions)",
        )
        g.add_argument("--seq-length", type=positive_int, default=DEFAULT_SEQ_LENGTH)
        g.add_argument(
            "--max-position",
            type=positive_int,
            default=DEFAULT_MAX_POSITION,
            help="position table length (the longest input a fine-tuned model may read)",
        )
        g.add_argument(
            "--valid-fraction",
            type=fraction,
            default=DEFAULT_VALID_FRACTION,
            help=f"share of sequences held out for the masked accuracy (at most "
            f"{MAX_VALID_SEQUENCES})",
        )

    def check_arguments(self, args: argparse.Namespace) -> None:
        if args.seq_length < 8 or args.seq_length > args.max_position:
            raise SystemExit("--seq-length must be in 8 .. --max-position")
        if args.init_checkpoint is not None:
            # Continued pretraining of a checkpoint is not what this job is for (yet).
            raise SystemExit("training.pretrain starts from scratch: drop --init-checkpoint")

    def prepare(self, args: argparse.Namespace, strategy: Any) -> np.ndarray:
        sources = [Path(args.data), *args.more_data]
        documents = [d for source in sources for d in read_documents(source)]
        if not documents:
            raise DataError(f"no text in {', '.join(map(str, sources))}")
        work_dir = Path(args.checkpoint_dir)
        if args.vocab is not None:
            self.vocab_path = Path(args.vocab)
        else:
            # Kept beside the checkpoints, so that a resumed run tokenises the same way.
            self.vocab_path = work_dir / VOCAB_FILE
            if not (args.resume and self.vocab_path.exists()):
                write_vocab(self.vocab_path, build_char_vocab(documents, args.min_char_count))
        self.tokenizer = BertTokenizer(self.vocab_path, lowercase=True)
        tok = self.tokenizer
        sequences = pack_sequences(
            (tok.piece_ids(d) for d in documents), args.seq_length, tok.cls_id, tok.sep_id
        )
        # A fixed held-out share (seeded), never trained on.
        order = np.random.default_rng([args.seed, 7]).permutation(len(sequences))
        held = min(MAX_VALID_SEQUENCES, int(len(sequences) * args.valid_fraction))
        self.valid = [sequences[i] for i in order[:held]]
        self.sequences = [sequences[i] for i in sorted(order[held:])]
        self.characters = sum(len(d) for d in documents)
        self.documents = len(documents)
        self.sources = [str(s.resolve()) for s in sources]
        self.special_ids = sorted({tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id})
        self.predictions = math.ceil(args.seq_length * MASK_RATE) + 1
        config = BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            num_heads=args.num_heads,
            intermediate_size=args.intermediate_size,
            max_position=args.max_position,
            dropout=args.dropout,
        )
        with strategy.scope():
            backbone = BertBackbone.from_bert_config(config, attention_mode="bidirectional")
            init_positions_as_sinusoids(backbone)
            self.model = MaskedLM(backbone, name="masked_lm")
        lengths = np.array([len(s) for s in self.sequences])
        log(
            f"{self.documents} documents, {self.characters} characters -> "
            f"{len(self.sequences)} sequences of <= {args.seq_length} tokens "
            f"({len(self.valid)} held out), vocabulary {tok.vocab_size}"
        )
        return lengths

    def signature(self) -> dict[str, Any]:
        ids = tf.TensorSpec([None, None], tf.int32)
        picks = tf.TensorSpec([None, None], tf.int32)
        return {
            "token_ids": ids,
            "segment_ids": ids,
            "padding_mask": ids,
            "mlm_positions": picks,
            "mlm_ids": picks,
            "mlm_weights": tf.TensorSpec([None, None], tf.float32),
        }

    def train(self, batch: Batch, fit: Fit) -> dict[str, float]:
        # The masks of a step depend on (seed, step) only: a resumed run draws the same ones.
        self.rng = np.random.default_rng([self.args.seed, batch.step, 3])
        return super().train(batch, fit)

    def pad(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self._mask([self.sequences[i] for i in indices], self.rng)

    def _mask(self, rows: Sequence[np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return mask_tokens(
            rows,
            rng,
            self.tokenizer.vocab_size,
            self.tokenizer.mask_id,
            self.special_ids,
            self.tokenizer.pad_id,
            # One width for every batch: one compiled shape.
            self.args.seq_length,
            self.predictions,
        )

    def loss(self, inputs: dict[str, Any]) -> Any:
        return masked_lm_loss_and_hits(self.model, inputs, training=True)[0]

    def evaluate(self) -> dict[str, float]:
        """Masked-token loss and accuracy on the held-out sequences (fixed masks)."""
        rng = np.random.default_rng([self.args.seed, 11])
        loss_sum = hits = count = 0.0
        size = self.args.batch_size
        for start in range(0, len(self.valid), size):
            inputs = self._mask(self.valid[start : start + size], rng)
            loss, batch_hits, batch_count = masked_lm_loss_and_hits(
                self.model, inputs, training=False
            )
            loss_sum += float(loss) * float(batch_count)
            hits += float(batch_hits)
            count += float(batch_count)
        if not count:
            return {}
        return {"valid_mlm_loss": loss_sum / count, "valid_mlm_accuracy": hits / count}

    def end_epoch(self, epoch: int, fit: Fit) -> str:
        line = super().end_epoch(epoch, fit)
        scores = self.evaluate()
        if scores:
            fit.board.scalars(fit.step, **scores)
            line += (
                f", held-out masked loss {scores['valid_mlm_loss']:.4f}, "
                f"accuracy {scores['valid_mlm_accuracy']:.4f}"
            )
        return line

    def manifest(self, args: argparse.Namespace, fit: Fit) -> Manifest:
        metrics: dict[str, Any] = {**self.fit_metrics(fit), **self.evaluate()}
        config = arguments_config(args)
        config.update(bert=self.model.config.__dict__, peak_lr=self.peak_lr)
        return Manifest(
            write_model=lambda folder: save_hf_folder(
                folder, self.model.backbone, self.model.mlm_head, self.vocab_path
            ),
            config=config,
            data={
                "sources": self.sources,
                "documents": self.documents,
                "characters": self.characters,
                "sequences": len(self.sequences),
                "held_out_sequences": len(self.valid),
            },
            metrics=metrics,
            extra={},
        )

    def check_out(self, args: argparse.Namespace) -> None:
        """`<out>/<name>/` may be replaced only by this job's own output (a pretrain.json in it):
        `--out model_store --name reader` would otherwise delete a served model's versions."""
        target = Path(args.out) / args.name
        if target.exists() and not (target / PRETRAIN_FILE).is_file():
            raise DataError(
                f"{target} exists and is not a training.pretrain folder (no {PRETRAIN_FILE}): "
                "it is not replaced; give another --out or --name"
            )

    def export(self, args: argparse.Namespace, manifest: Manifest) -> Path:
        """Writes `<out>/<name>/` (a checkpoint folder, not a store version): beside it first,
        then renamed into place, replacing an earlier one of the same name."""
        self.check_out(args)  # again: the folder may have appeared while training
        target = Path(args.out) / args.name
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        files = manifest.write_model(partial)
        record = {
            "task": self.task,
            "files": files,
            "config": manifest.config,
            "data": manifest.data,
            "metrics": manifest.metrics,
            "libraries": library_versions(),
        }
        (partial / PRETRAIN_FILE).write_text(
            json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
        metrics = manifest.metrics
        if "valid_mlm_accuracy" in metrics:
            log(
                f"held-out masked accuracy {metrics['valid_mlm_accuracy']:.4f}, "
                f"loss {metrics['valid_mlm_loss']:.4f}"
            )
        return target


def train_pretrain(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process; returns the checkpoint folder (None if stopped early)."""
    return PretrainJob().run(args)


main = PretrainJob.main


if __name__ == "__main__":
    main()
