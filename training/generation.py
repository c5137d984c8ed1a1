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
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.tokenizer import VOCAB_FILE, BertTokenizer
from models.generation.data import (
    ConditionalText,
    build_samples,
    label_names,
    pad_lm_samples,
    read_conditional_texts,
)
from models.generation.export import VOCAB_ASSET_PATH, export_generation_saved_model
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
from training.common import (
    CheckpointKeeper,
    ExponentialMovingAverage,
    TensorBoardLogger,
    add_common_args,
    data_summary,
    export_version,
    set_seed,
)
from training.common.cli import add_bert_model_args, add_distribution_args
from training.common.distribute import is_chief, local_share, make_strategy, worker_index
from training.common.loop import bert_adamw, make_train_step, run_steps
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.generation",
        description="Train a conditional LM (Conditional Layer Normalization) and export it.",
    )
    add_common_args(p)
    p.set_defaults(epochs=10)
    add_bert_model_args(
        p,
        batch_size=DEFAULT_BATCH_SIZE,
        hidden_size=SMALL_HIDDEN_SIZE,
        num_layers=SMALL_NUM_LAYERS,
        num_heads=SMALL_NUM_HEADS,
        intermediate_size=SMALL_INTERMEDIATE_SIZE,
        min_char_count=2,
    )
    add_distribution_args(p)
    g = p.add_argument_group("generation")
    g.add_argument("--valid", type=Path, default=None, help="held-out file for perplexity")
    g.add_argument(
        "--max-length",
        type=int,
        default=DEFAULT_MAX_LENGTH,
        help="longest sample in tokens, [CLS] and [SEP] included (also the serving cache)",
    )
    g.add_argument(
        "--label-embedding-size",
        type=int,
        default=DEFAULT_LABEL_EMBEDDING_SIZE,
        help="width of the label embeddings (the condition of a labelled model)",
    )
    g.add_argument(
        "--condition-hidden-units",
        type=int,
        default=None,
        help="hidden projection of the condition in every conditional LayerNorm (default none)",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


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
    """Runs the whole job in-process (used by `main`, tests and the demo).

    Returns:
        The exported version folder, or None when `--stop-after-steps` stopped the run early.
    """
    if not isinstance(args, argparse.Namespace):
        args = parse_args(list(args))
    set_seed(args.seed)
    log = _stderr
    started = time.perf_counter()

    texts = read_conditional_texts(args.data)
    if not texts:
        raise ValueError(f"{args.data} holds no text")
    labels = label_names(texts) if texts[0].label is not None else None
    strategy = make_strategy(args.strategy)
    chief = is_chief(strategy)
    with strategy.scope():
        model, tokenizer, vocab_path, model_info = _load_model(args, texts, labels)
    samples = build_samples(tokenizer, texts, args.max_length, labels)
    lengths = np.array([len(s.token_ids) for s in samples])
    log(
        f"{len(texts)} texts, {len(samples)} samples, labels {labels or '-'}, vocabulary "
        f"{tokenizer.vocab_size}, mean length {lengths.mean():.0f} tokens"
    )

    steps_per_epoch = math.ceil(len(samples) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    peak_lr = args.lr or (
        DEFAULT_FINETUNE_LR if args.init_checkpoint is not None else DEFAULT_SCRATCH_LR
    )
    with strategy.scope():
        optimizer, schedule = bert_adamw(peak_lr, total_steps)
        optimizer.build(model.trainable_variables)
        ema = ExponentialMovingAverage(model.trainable_variables, decay=args.ema_decay)
    keeper = CheckpointKeeper(
        Path(args.checkpoint_dir), read_only=not chief, model=model, optimizer=optimizer, ema=ema
    )
    start_step = (keeper.restore_latest() or 0) if args.resume else 0
    if start_step:
        log(f"resumed from {keeper.latest} at step {start_step}")

    with_vectors = labels is None
    ids = tf.TensorSpec([None, None], tf.int32)
    signature: dict[str, tf.TensorSpec] = {"token_ids": ids, "padding_mask": ids, "loss_mask": ids}
    if with_vectors:
        signature["condition"] = tf.TensorSpec([None, model.condition_size], tf.float32)
    else:
        signature["label_ids"] = tf.TensorSpec([None], tf.int32)
    train_step = make_train_step(
        model.trainable_variables,
        lambda x: lm_loss(model(x, training=True), x["token_ids"], x["loss_mask"]),
        optimizer,
        ema,
        signature,
        jit_compile=args.jit,
        strategy=strategy,
    )

    def train_batch(indices: np.ndarray) -> float:
        rows = [samples[i] for i in indices]
        width = pad_width(len(r.token_ids) for r in rows)
        return float(train_step(pad_lm_samples(rows, tokenizer.pad_id, width, with_vectors)))

    stop = total_steps if args.stop_after_steps is None else min(total_steps, args.stop_after_steps)
    result = run_steps(
        lengths=lengths,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        start_step=start_step,
        stop_step=stop,
        train_batch=train_batch,
        keeper=keeper,
        checkpoint_every=args.checkpoint_every,
        board=TensorBoardLogger(args.log_dir if chief else None),
        schedule=schedule,
        desc="generation",
        no_progress=args.no_progress or not chief,
        log=log,
        share=lambda indices: local_share(indices, strategy),
    )
    if result.step < total_steps:
        log(f"stopped after step {result.step}/{total_steps}; checkpoint {keeper.latest}")
        return None
    if not chief:
        log(f"worker {worker_index(strategy)} done; the chief exports")
        return None

    metrics: dict[str, Any] = {
        "final_epoch_loss": None
        if math.isnan(result.last_epoch_loss)
        else round(result.last_epoch_loss, 6),
        "train_seconds": round(result.train_seconds, 2),
        "steps": total_steps,
    }
    with ema.averaged():
        if args.valid is not None and labels is not None:
            valid = build_samples(
                tokenizer, read_conditional_texts(args.valid), args.max_length, labels
            )
            perplexity = perplexity_by_label(
                KerasGenerationStepModel(model, args.max_length), valid, labels, tokenizer.pad_id
            )
            metrics["valid_perplexity"] = {k: round(v, 3) for k, v in perplexity.items()}
            metrics["valid_data"] = str(Path(args.valid).resolve())
            log(f"valid perplexity by label: {metrics['valid_perplexity']}")
        hyper = {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        }
        hyper.update(model_info, peak_lr=peak_lr)
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
        path = export_version(
            args.out,
            args.name,
            task="generation",
            family=FAMILY,
            write_model=lambda folder: export_generation_saved_model(
                folder, model, vocab_path, args.max_length
            ),
            config=hyper,
            data=data_summary(
                args.data,
                "jsonl-vector" if with_vectors else "tsv-label",
                {"texts": len(texts), "samples": len(samples)},
            ),
            metrics=metrics,
            extra=extra,
        )
    log(f"exported {path} in {time.perf_counter() - started:.1f}s total")
    return path


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    path = train_generation(parse_args(argv))
    if path is not None:
        print(path)


if __name__ == "__main__":
    main()
