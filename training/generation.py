"""Train a conditional language model (a causal BERT LM whose every LayerNorm takes a label or a
vector, bert4keras' `task_conditional_language_model.py`) and export it into the model store.

    python -m training.generation --data train.tsv --valid valid.tsv --out model_store \\
        --name cln-zh [--init-checkpoint path/to/bert] [--max-length 128] --epochs 10

`--data` holds `text<TAB>label` lines, or JSON lines `{"text", "vector"}` for a vector-conditioned
model (`models.generation.data`). Texts are cut at sentence punctuation to `--max-length` tokens
([CLS] and [SEP] included). Without `--init-checkpoint` the LM is a small BERT from scratch over a
character vocabulary built from the training texts (written as the model's vocab.txt). The
exponential moving average of the weights is evaluated on `--valid` (per-label perplexity) and
exported with the label names in the manifest; `training.generation_eval` measures the samples.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.tokenizer import VOCAB_FILE, BertTokenizer
from models.data_errors import DataError
from models.generation.data import (
    ConditionalText,
    build_samples,
    label_names,
    pad_lm_samples,
    read_conditional_texts,
)
from models.generation.export import export_generation_saved_model
from models.generation.kv_cache import KerasGenerationStepModel
from models.generation.lm import (
    DEFAULT_LABEL_EMBEDDING_SIZE,
    SMALL_HIDDEN_SIZE,
    SMALL_INTERMEDIATE_SIZE,
    SMALL_NUM_HEADS,
    SMALL_NUM_LAYERS,
    ConditionalLM,
    build_generation_model,
    lm_loss,
    small_lm_config,
)
from models.generation.signatures import VOCAB_ASSET_PATH
from training.common.cli import positive_int
from training.common.data import data_summary
from training.common.job import Fit, Manifest, arguments_config, log
from training.common.loop import BertJob
from training.common.text import (
    build_char_vocab,
    init_positions_as_sinusoids,
    pad_width,
    write_vocab,
)
from training.generation_eval import perplexity_by_label

FAMILY = "cln-lm"
DEFAULT_MAX_LENGTH = 128
DEFAULT_BATCH_SIZE = 32
# bert4keras fine-tunes BERT at 1e-5 to 2e-5; a small LM trained from scratch takes a larger step.
DEFAULT_FINETUNE_LR = 2e-5
DEFAULT_SCRATCH_LR = 1e-3
# Defaults the service samples with when a request does not say (recorded in the manifest).
DEFAULT_SAMPLING = {"temperature": 1.0, "top_k": None, "top_p": 0.95}


def _max_length(value: str) -> int:
    """--max-length: [CLS], [SEP] and at least one token of text (below, cutting texts to fit
    looped for ever)."""
    number = int(value)
    if number < 3:
        raise argparse.ArgumentTypeError(f"must be at least 3 ([CLS], a token, [SEP]), got {value}")
    return number


class GenerationJob(BertJob):
    """The conditional LM's parts of the harness (`training.common.job`)."""

    prog = "python -m training.generation"
    description = "Train a conditional LM (Conditional Layer Normalization) and export it."
    task, family, label = "generation", FAMILY, "generation"
    defaults = {"epochs": 10}
    batch_size = DEFAULT_BATCH_SIZE
    finetune_lr, scratch_lr = DEFAULT_FINETUNE_LR, DEFAULT_SCRATCH_LR
    hidden_size, num_layers, num_heads = SMALL_HIDDEN_SIZE, SMALL_NUM_LAYERS, SMALL_NUM_HEADS
    intermediate_size, min_char_count = SMALL_INTERMEDIATE_SIZE, 2

    model: ConditionalLM

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("generation")
        g.add_argument("--valid", type=Path, default=None, help="held-out file for perplexity")
        g.add_argument(
            "--max-length",
            type=_max_length,
            default=DEFAULT_MAX_LENGTH,
            help="longest sample in tokens, [CLS] and [SEP] included (also the serving cache)",
        )
        g.add_argument(
            "--label-embedding-size",
            type=positive_int,
            default=DEFAULT_LABEL_EMBEDDING_SIZE,
            help="width of the label embeddings (the condition of a labelled model)",
        )
        g.add_argument(
            "--condition-hidden-units",
            type=positive_int,
            default=None,
            help="hidden projection of the condition in every conditional LayerNorm (default none)",
        )

    def prepare(self, args: argparse.Namespace, strategy: Any) -> np.ndarray:
        self.texts = read_conditional_texts(args.data)
        if not self.texts:
            raise DataError(f"{args.data} holds no text")
        self.labels = label_names(self.texts) if self.texts[0].label is not None else None
        with strategy.scope():
            self.model, self.tokenizer, self.vocab_path, self.model_info = _load_model(
                args, self.texts, self.labels
            )
        self.samples = build_samples(self.tokenizer, self.texts, args.max_length, self.labels)
        # Read and checked now, not after the training run that the manifest's evaluation ends.
        self.valid = None
        if args.valid is not None and self.labels is not None:
            self.valid = build_samples(
                self.tokenizer, read_conditional_texts(args.valid), args.max_length, self.labels
            )
        lengths = np.array([len(s.token_ids) for s in self.samples])
        log(
            f"{len(self.texts)} texts, {len(self.samples)} samples, labels {self.labels or '-'}, "
            f"vocabulary {self.tokenizer.vocab_size}, mean length {lengths.mean():.0f} tokens"
        )
        return lengths

    def signature(self) -> dict[str, Any]:
        ids = tf.TensorSpec([None, None], tf.int32)
        signature = {"token_ids": ids, "padding_mask": ids, "loss_mask": ids}
        if self.labels is None:
            signature["condition"] = tf.TensorSpec([None, self.model.condition_size], tf.float32)
        else:
            signature["label_ids"] = tf.TensorSpec([None], tf.int32)
        return signature

    def loss(self, inputs: dict[str, Any]) -> Any:
        return lm_loss(self.model(inputs, training=True), inputs["token_ids"], inputs["loss_mask"])

    def pad(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        rows = [self.samples[i] for i in indices]
        width = pad_width(len(r.token_ids) for r in rows)
        return pad_lm_samples(rows, self.tokenizer.pad_id, width, self.labels is None)

    def manifest(self, args: argparse.Namespace, fit: Fit) -> Manifest:
        model, tokenizer, labels = self.model, self.tokenizer, self.labels
        metrics = self.fit_metrics(fit)
        if self.valid is not None and labels is not None:
            perplexity = perplexity_by_label(
                KerasGenerationStepModel(model, args.max_length),
                self.valid,
                labels,
                tokenizer.pad_id,
            )
            metrics["valid_perplexity"] = {k: round(v, 3) for k, v in perplexity.items()}
            metrics["valid_data"] = str(Path(args.valid).resolve())
            log(f"valid perplexity by label: {metrics['valid_perplexity']}")
        config = arguments_config(args)
        config.update(self.model_info, peak_lr=self.peak_lr)
        extra: dict[str, Any] = {
            "condition_dim": model.condition_size,
            "max_length": args.max_length,
            "sampling": DEFAULT_SAMPLING,
            "tokenizer": {
                "kind": "wordpiece",
                "lowercase": tokenizer.lowercase,
                "strip_accents": tokenizer.strip_accents,
                "vocab": VOCAB_ASSET_PATH,
            },
        }
        if labels is not None:
            extra["labels"] = labels
            # A labelled model's condition is its own label embedding: callers name labels and
            # give no vectors, so no condition_dim is advertised.
            del extra["condition_dim"]
        return Manifest(
            write_model=lambda folder: export_generation_saved_model(
                folder, model, self.vocab_path, args.max_length
            ),
            config=config,
            data=data_summary(
                args.data,
                "tsv-label" if labels is not None else "jsonl-vector",
                {"texts": len(self.texts), "samples": len(self.samples)},
            ),
            metrics=metrics,
            extra=extra,
        )


def build_parser() -> argparse.ArgumentParser:
    return GenerationJob().build_parser()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return GenerationJob().parse_args(argv)


def _load_model(
    args: argparse.Namespace, texts: Sequence[ConditionalText], labels: list[str] | None
) -> tuple[ConditionalLM, BertTokenizer, Path, dict[str, Any]]:
    """The model, its tokenizer, its vocab.txt and what describes the model in the manifest."""
    vector_size = None if labels is not None else len(texts[0].vector or ())
    condition_size = args.label_embedding_size if labels is not None else vector_size
    if args.init_checkpoint is not None:
        model = build_generation_model(
            labels=labels,
            condition_size=condition_size,
            condition_hidden_units=args.condition_hidden_units,
            init_checkpoint=args.init_checkpoint,
        )
        tokenizer = BertTokenizer.from_folder(args.init_checkpoint)
        vocab_path = Path(args.init_checkpoint) / VOCAB_FILE
        info: dict[str, Any] = {"init_checkpoint": str(Path(args.init_checkpoint).resolve())}
    else:
        if args.vocab is not None:
            vocab_path = Path(args.vocab)
        else:
            # Kept beside the checkpoints, so that a resumed run tokenises the same way.
            vocab_path = Path(args.checkpoint_dir) / VOCAB_FILE
            if not (args.resume and vocab_path.exists()):
                vocab = build_char_vocab((t.text for t in texts), args.min_char_count)
                write_vocab(vocab_path, vocab)
        tokenizer = BertTokenizer(vocab_path, lowercase=True)
        config = small_lm_config(
            tokenizer.vocab_size,
            args.max_length,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            num_heads=args.num_heads,
            intermediate_size=args.intermediate_size,
            dropout=args.dropout,
        )
        model = build_generation_model(
            config,
            labels=labels,
            condition_size=condition_size,
            condition_hidden_units=args.condition_hidden_units,
        )
        init_positions_as_sinusoids(model.backbone)
        info = {}
    if args.max_length > model.config.max_position:
        raise ValueError(
            f"--max-length {args.max_length} exceeds the position table {model.config.max_position}"
        )
    info["bert"] = model.config.__dict__
    info["condition_size"] = model.condition_size
    return model, tokenizer, vocab_path, info


def train_generation(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process (`GenerationJob.run`: used by `main`, tests and the demo)."""
    return GenerationJob().run(args)


main = GenerationJob.main


if __name__ == "__main__":
    main()
