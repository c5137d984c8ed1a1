"""Train a UniLM seq2seq reading-comprehension model (bert4keras' task_reading_comprehension_by_
seq2seq) on WebQA/SogouQA or SQuAD/CMRC JSON and export it into the model store.

    python -m training.qa --data train.json --valid dev.json --out model_store --name qa-zh \\
        [--init-checkpoint path/to/bert] [--max-passage-tokens 256] [--max-question-tokens 64] \\
        [--max-answer-tokens 32] --epochs 10

Every (question, passage) pair is one sample `[CLS] passage [SEP] question [SEP] answer [SEP]`,
the loss on the answer and its [SEP] only; a passage without the answer teaches an immediate
[SEP]. Passages longer than `--max-passage-tokens` characters are cut into overlapping windows
(`models.qa.readers.window_passages`), each a passage of its own. Without `--init-checkpoint`
the encoder is a small BERT from scratch over a character vocabulary built from the training
data (written as the model's vocab.txt). The exponential moving average of the weights is what
is evaluated on `--valid` (accuracy, character F1, Final; `training.qa_eval`) and exported
(`models.qa.export`: prefill / step / reorder / full_logits signatures).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from models.bert.tokenizer import CLS, MASK, PAD, SEP, UNK, VOCAB_FILE, BertTokenizer
from models.qa.export import VOCAB_ASSET_PATH, export_qa_saved_model
from models.qa.kv_cache import KerasStepModel
from models.qa.readers import QAExample, read_qa_file, window_passages, write_webqa_file
from models.qa.samples import (
    DEFAULT_MAX_ANSWER_TOKENS,
    DEFAULT_MAX_PASSAGE_TOKENS,
    DEFAULT_MAX_QUESTION_TOKENS,
    QASample,
    build_sample,
    max_sample_length,
    pad_samples,
)
from models.qa.seq2seq import (
    SMALL_HIDDEN_SIZE,
    SMALL_INTERMEDIATE_SIZE,
    SMALL_NUM_HEADS,
    SMALL_NUM_LAYERS,
    UniLMSeq2Seq,
    build_qa_model,
    seq2seq_loss,
    small_qa_config,
)
from models.qa.synthetic import SyntheticConfig, make_synthetic_examples
from training.common import (
    CheckpointKeeper,
    ExponentialMovingAverage,
    Progress,
    TensorBoardLogger,
    add_common_args,
    data_summary,
    epoch_permutation,
    export_version,
    set_seed,
)
from training.qa_eval import evaluate_examples

DEFAULT_BATCH_SIZE = 32
# Adam learning rates: bert4keras fine-tunes BERT at 1e-5 (2e-5 is BERT's own GLUE setting); a
# small encoder trained from scratch takes a larger step.
DEFAULT_FINETUNE_LR = 2e-5
DEFAULT_SCRATCH_LR = 1e-3
# Linear warm-up over this share of all steps, then cosine decay to zero.
WARMUP_FRACTION = 0.06
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0
# Overlap of passage windows: each window starts half a window after the previous one, so an
# answer shorter than half a window lies whole inside at least one of them.
DEFAULT_WINDOW_STRIDE_FRACTION = 0.5
# Rows are padded to a multiple of this, so that the training step sees few distinct shapes.
PAD_MULTIPLE = 8
# Batches are drawn from groups of this many batches sorted by length (less padding).
LENGTH_SORT_BATCHES = 50
LOG_EVERY_STEPS = 20
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
# From scratch, the position table starts as sinusoids (Vaswani et al. 2017, Sec. 3.5), in which
# "the token k places before" is a fixed linear map of the position: the previous-token
# attention that copying an answer out of a passage needs is then quick to learn, where a random
# table has to discover it first. Scaled to the RMS of BERT's N(0, 0.02) initialiser.
POSITION_INIT_RMS = 0.02
SINUSOID_BASE = 10000.0
FAMILY = "bert-unilm"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.qa",
        description="Train a UniLM seq2seq reading-comprehension model and export a SavedModel.",
    )
    add_common_args(p)
    p.set_defaults(epochs=10)
    g = p.add_argument_group("QA")
    g.add_argument("--valid", type=Path, default=None, help="held-out QA file for the metrics")
    g.add_argument("--valid-limit", type=int, default=None, help="evaluate this many at most")
    g.add_argument(
        "--init-checkpoint",
        type=Path,
        default=None,
        help="pretrained BERT folder (Hugging Face or Google TF); default: small BERT from scratch",
    )
    g.add_argument("--vocab", type=Path, default=None, help="vocab.txt for a from-scratch model")
    g.add_argument("--min-char-count", type=int, default=1, help="rarer characters become [UNK]")
    g.add_argument("--max-passage-tokens", type=int, default=DEFAULT_MAX_PASSAGE_TOKENS)
    g.add_argument("--max-question-tokens", type=int, default=DEFAULT_MAX_QUESTION_TOKENS)
    g.add_argument("--max-answer-tokens", type=int, default=DEFAULT_MAX_ANSWER_TOKENS)
    g.add_argument(
        "--window-stride",
        type=int,
        default=None,
        help="characters between passage windows (default: half of --max-passage-tokens)",
    )
    g.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    g.add_argument("--lr", type=float, default=None, help="peak learning rate")
    g.add_argument("--hidden-size", type=int, default=SMALL_HIDDEN_SIZE)
    g.add_argument("--num-layers", type=int, default=SMALL_NUM_LAYERS)
    g.add_argument("--num-heads", type=int, default=SMALL_NUM_HEADS)
    g.add_argument("--intermediate-size", type=int, default=SMALL_INTERMEDIATE_SIZE)
    g.add_argument(
        "--position-init",
        choices=["sinusoid", "random"],
        default="sinusoid",
        help="initial position table of a from-scratch model",
    )
    g.add_argument("--dropout", type=float, default=0.1, help="dropout of a from-scratch model")
    g.add_argument(
        "--jit",
        action="store_true",
        help="XLA-compile the training step (compiles once per padded length; ~15%% faster "
        "per step on CPU for the small model)",
    )
    g.add_argument("--beam-size", type=int, default=1, help="beams when evaluating")
    g.add_argument(
        "--extractive", action="store_true", help="evaluate with answers restricted to spans"
    )
    g.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="stop after this many steps (in total) with a checkpoint and no export",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# Vocabulary.
def _is_cjk(char: str) -> bool:
    return "CJK" in unicodedata.name(char, "")


def _normalise(text: str) -> str:
    """BERT's uncased normalisation: lower case, accents stripped (NFD without marks)."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def build_char_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """A character vocabulary for WordPiece: the special tokens, every character seen at least
    `min_count` times (most frequent first), and "##c" for characters that continue a word.

    CJK characters are words of their own under BERT's pre-tokeniser; Latin letters and digits
    also occur inside words, where WordPiece looks them up as "##c".
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(c for c in _normalise(text) if not c.isspace())
    chars = [c for c, n in counts.most_common() if n >= min_count and c.isprintable()]
    chars = [c for c in chars if c not in SPECIAL_TOKENS]
    pieces = [f"##{c}" for c in chars if not _is_cjk(c) and unicodedata.category(c)[0] in "LN"]
    return [*SPECIAL_TOKENS, *chars, *pieces]


def _example_texts(examples: Sequence[QAExample]) -> Iterable[str]:
    for example in examples:
        yield example.question
        for passage in example.passages:
            yield passage.text
            if passage.answer:
                yield passage.answer


# Samples and batches.
def prepare_examples(examples: Sequence[QAExample], window: int, stride: int) -> list[QAExample]:
    """Examples with long passages cut into windows (see `window_passages`)."""
    return [window_passages(e, window, stride) for e in examples]


def build_samples(
    tokenizer: BertTokenizer, examples: Sequence[QAExample], args: argparse.Namespace
) -> list[QASample]:
    """One sample per (question, passage) pair."""
    return [
        build_sample(
            tokenizer,
            passage.text,
            example.question,
            passage.answer,
            args.max_passage_tokens,
            args.max_question_tokens,
            args.max_answer_tokens,
        )
        for example in examples
        for passage in example.passages
        if passage.text
    ]


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Batches of sample indices for one epoch: a seeded shuffle, then within each group of
    `LENGTH_SORT_BATCHES` batches sorted by length so that rows of a batch are alike in length.
    The same (seed, epoch) gives the same batches, which is what resuming relies on."""
    order = epoch_permutation(len(lengths), seed, epoch)
    group = batch_size * LENGTH_SORT_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), group):
        chunk = order[start : start + group]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng = np.random.default_rng([seed, epoch, 1])
    return [batches[i] for i in rng.permutation(len(batches))]


def _pad_width(samples: Sequence[QASample]) -> int:
    longest = max(len(s.token_ids) for s in samples)
    return int(math.ceil(longest / PAD_MULTIPLE) * PAD_MULTIPLE)


def sinusoid_table(length: int, width: int) -> np.ndarray:
    """[length, width] sin/cos position table (Vaswani et al. 2017, Eq. in Sec. 3.5)."""
    positions = np.arange(length)[:, None]
    rates = SINUSOID_BASE ** (-np.arange(0, width, 2) / width)
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: width // 2])
    return table


def init_positions_as_sinusoids(model: UniLMSeq2Seq) -> None:
    """Sets the position table of a fresh model to scaled sinusoids (`POSITION_INIT_RMS`)."""
    variable = model.backbone.embeddings.position_embedding.embeddings
    length, width = (int(d) for d in variable.shape)
    table = sinusoid_table(length, width)
    table *= POSITION_INIT_RMS / np.sqrt(np.mean(table**2))
    variable.assign(table.astype(np.float32))


# The job.
def _load_model(
    args: argparse.Namespace, train_examples: Sequence[QAExample], work_dir: Path
) -> tuple[UniLMSeq2Seq, BertTokenizer, Path, dict[str, Any]]:
    """The model, its tokenizer, its vocab.txt and what describes the model in the manifest."""
    longest = max_sample_length(
        args.max_passage_tokens, args.max_question_tokens, args.max_answer_tokens
    )
    if args.init_checkpoint is not None:
        model = build_qa_model(init_checkpoint=args.init_checkpoint)
        tokenizer = BertTokenizer.from_folder(args.init_checkpoint)
        return model, tokenizer, Path(args.init_checkpoint) / VOCAB_FILE, {
            "init_checkpoint": str(Path(args.init_checkpoint).resolve()),
            "bert": model.config.__dict__,
        }  # fmt: skip
    if args.vocab is not None:
        vocab_path = Path(args.vocab)
    else:
        # Kept beside the checkpoints, so that a resumed run tokenises the same way.
        vocab_path = work_dir / VOCAB_FILE
        if not (args.resume and vocab_path.exists()):
            vocab = build_char_vocab(_example_texts(train_examples), args.min_char_count)
            vocab_path.parent.mkdir(parents=True, exist_ok=True)
            vocab_path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab_path, lowercase=True)
    config = small_qa_config(
        tokenizer.vocab_size,
        max_position=longest,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        dropout=args.dropout,
    )
    model = build_qa_model(config)
    if args.position_init == "sinusoid":
        init_positions_as_sinusoids(model)
    return model, tokenizer, vocab_path, {"bert": config.__dict__}


def train_qa(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process (used by `main`, tests and `train_qa_demo`).

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
    window = args.max_passage_tokens
    stride = args.window_stride or max(1, int(window * DEFAULT_WINDOW_STRIDE_FRACTION))

    raw_train = read_qa_file(args.data)
    train_examples = prepare_examples(raw_train, window, stride)
    checkpoint_dir = Path(args.checkpoint_dir)
    model, tokenizer, vocab_path, model_info = _load_model(args, train_examples, checkpoint_dir)
    samples = build_samples(tokenizer, train_examples, args)
    if not samples:
        raise ValueError(f"{args.data} holds no (question, passage) pair")
    lengths = np.array([len(s.token_ids) for s in samples])
    answered = sum(1 for s in samples if sum(s.loss_mask) > 1)
    log(
        f"{len(raw_train)} questions, {len(samples)} passages ({answered} with the answer), "
        f"vocabulary {tokenizer.vocab_size}, mean length {lengths.mean():.0f} tokens"
    )

    steps_per_epoch = math.ceil(len(samples) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    peak_lr = args.lr or (
        DEFAULT_FINETUNE_LR if args.init_checkpoint is not None else DEFAULT_SCRATCH_LR
    )
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=peak_lr, warmup_steps=warmup
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=WEIGHT_DECAY, global_clipnorm=CLIP_NORM
    )
    # BERT's recipe: no weight decay on biases and LayerNorm parameters.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    variables = model.trainable_variables
    optimizer.build(variables)
    ema = ExponentialMovingAverage(variables, decay=args.ema_decay)
    keeper = CheckpointKeeper(checkpoint_dir, model=model, optimizer=optimizer, ema=ema)
    start_step = (keeper.restore_latest() or 0) if args.resume else 0
    if start_step:
        log(f"resumed from {keeper.latest} at step {start_step}")

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec, spec], jit_compile=args.jit)
    def train_step(
        token_ids: tf.Tensor, segment_ids: tf.Tensor, padding: tf.Tensor, loss_mask: tf.Tensor
    ) -> tf.Tensor:
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding}
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = seq2seq_loss(logits, token_ids, loss_mask)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        ema.update()
        return loss

    stop = total_steps if args.stop_after_steps is None else min(total_steps, args.stop_after_steps)
    board = TensorBoardLogger(args.log_dir)
    step, train_time, window_loss, window_steps = start_step, 0.0, 0.0, 0
    epoch_loss, epoch_steps, last_epoch_loss = 0.0, 0, float("nan")
    with Progress(total=stop - start_step, desc="qa", unit="step", disable=args.no_progress) as bar:
        t0 = time.perf_counter()
        epoch = start_step // steps_per_epoch
        while step < stop:
            batches = epoch_batches(lengths, args.batch_size, args.seed, epoch)
            for index in range(step - epoch * steps_per_epoch, len(batches)):
                if step >= stop:
                    break
                rows = [samples[i] for i in batches[index]]
                batch = pad_samples(rows, tokenizer.pad_id, pad_to=_pad_width(rows))
                loss = float(
                    train_step(
                        batch["token_ids"],
                        batch["segment_ids"],
                        batch["padding_mask"],
                        batch["loss_mask"],
                    )
                )
                step += 1
                window_loss += loss
                window_steps += 1
                epoch_loss += loss
                epoch_steps += 1
                train_time = time.perf_counter() - t0
                bar.update(1, loss=loss, epoch=epoch + 1)
                if step % LOG_EVERY_STEPS == 0 or step == stop:
                    board.scalars(
                        step,
                        loss=window_loss / window_steps,
                        lr=float(schedule(step)),
                        samples_per_s=(step - start_step) * args.batch_size / train_time,
                    )
                    window_loss, window_steps = 0.0, 0
                if args.checkpoint_every and step % args.checkpoint_every == 0:
                    keeper.save(step)
            if step == (epoch + 1) * steps_per_epoch:
                last_epoch_loss = epoch_loss / max(epoch_steps, 1)
                log(f"epoch {epoch + 1}/{args.epochs}: loss {last_epoch_loss:.4f}")
                epoch_loss, epoch_steps = 0.0, 0
            epoch += 1
    board.close()
    if keeper.latest is None or not keeper.latest.endswith(f"-{step}"):
        keeper.save(step)
    if step < total_steps:
        log(f"stopped after step {step}/{total_steps}; checkpoint {keeper.latest}")
        return None

    metrics: dict[str, Any] = {
        "final_epoch_loss": None if math.isnan(last_epoch_loss) else round(last_epoch_loss, 6),
        "train_seconds": round(train_time, 2),
        "steps": total_steps,
    }
    with ema.averaged():
        if args.valid is not None:
            valid = read_qa_file(args.valid)[: args.valid_limit]
            t1 = time.perf_counter()
            scores, _ = evaluate_examples(
                KerasStepModel(model, args.max_answer_tokens),
                tokenizer,
                prepare_examples(valid, window, stride),
                max_passage_tokens=args.max_passage_tokens,
                max_question_tokens=args.max_question_tokens,
                max_answer_tokens=args.max_answer_tokens,
                beam_size=args.beam_size,
                extractive=args.extractive,
            )
            metrics.update({f"valid_{k}": v for k, v in scores.items()})
            metrics["valid_data"] = str(Path(args.valid).resolve())
            log(
                f"valid ({len(valid)} questions, {time.perf_counter() - t1:.0f}s): accuracy "
                f"{scores['accuracy']:.4f}, F1 {scores['f1']:.4f}, Final {scores['final']:.4f}"
            )
        hyper = {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        }
        hyper.update(model_info, peak_lr=peak_lr, window_chars=window, window_stride=stride)
        path = export_version(
            args.out,
            args.name,
            task="qa",
            family=FAMILY,
            write_model=lambda folder: export_qa_saved_model(
                folder,
                model,
                vocab_path,
                args.max_passage_tokens,
                args.max_question_tokens,
                args.max_answer_tokens,
            ),
            config=hyper,
            data=data_summary(
                args.data,
                "qa-json",
                {"questions": len(raw_train), "passages": len(samples), "answered": answered},
            ),
            metrics=metrics,
            extra={
                "max_passage_tokens": args.max_passage_tokens,
                "max_question_tokens": args.max_question_tokens,
                "max_answer_tokens": args.max_answer_tokens,
                "tokenizer": {
                    "kind": "wordpiece",
                    "lowercase": tokenizer.lowercase,
                    "strip_accents": tokenizer.strip_accents,
                    "vocab": VOCAB_ASSET_PATH,
                },
                "decoding": {"beam_size": args.beam_size, "extractive": args.extractive},
            },
        )
    log(f"exported {path} in {time.perf_counter() - started:.1f}s total")
    return path


# Demo: a small model on synthetic data (training.demo calls this). Measured on 2 CPU cores: a
# from-scratch encoder learns to pick the asked fact only after ~2000 steps (a sudden drop of the
# loss, as when induction heads form), so the demo takes many small steps of a 2-layer encoder.
# These settings: 11,280 steps in ~8 minutes, held-out exact match 0.65 (0.67 extractive); the
# issue's 0.95 needs more steps than that (the errors left are mostly "answer or not").
DEMO_TRAIN_QUESTIONS = 20_000
DEMO_VALID_QUESTIONS = 400
DEMO_MAX_PASSAGE_TOKENS = 128
DEMO_MAX_QUESTION_TOKENS = 24
DEMO_MAX_ANSWER_TOKENS = 8
DEMO_EPOCHS = 6
DEMO_BATCH_SIZE = 16
DEMO_NUM_LAYERS = 2
DEMO_SYNTHETIC = SyntheticConfig(
    people_per_passage=(1, 2), facts_per_person=(2, 3), passages_per_question=(1, 2)
)


def train_qa_demo(
    store: str | Path,
    name: str,
    seed: int = 0,
    *,
    train_questions: int = DEMO_TRAIN_QUESTIONS,
    valid_questions: int = DEMO_VALID_QUESTIONS,
    epochs: int = DEMO_EPOCHS,
    synthetic: SyntheticConfig | None = None,
    extra_args: Sequence[str] = (),
) -> Path:
    """Trains the demo QA model on synthetic questions (`models.qa.synthetic`) and exports it.

    Held-out questions come from another seed; their exact match is the manifest's
    `valid_accuracy`.

    Args:
        store: the model store.
        name: the model's name.
        seed: seed of the training data and the run (the held-out data use seed + 1).
        train_questions: synthetic training questions (each with 1-3 passages).
        valid_questions: held-out questions.
        epochs: passes over the training data.
        synthetic: how the synthetic data are drawn (default `DEMO_SYNTHETIC`).
        extra_args: more command-line options for `train_qa` (later ones win).

    Returns:
        The exported version folder.
    """
    config = synthetic or DEMO_SYNTHETIC
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_webqa_file(
            folder / "train.json", make_synthetic_examples(train_questions, seed, config)
        )
        write_webqa_file(
            folder / "valid.json", make_synthetic_examples(valid_questions, seed + 1, config)
        )
        path = train_qa(
            [
                "--data", str(folder / "train.json"),
                "--valid", str(folder / "valid.json"),
                "--out", str(store),
                "--name", name,
                "--seed", str(seed),
                "--epochs", str(epochs),
                "--max-passage-tokens", str(DEMO_MAX_PASSAGE_TOKENS),
                "--max-question-tokens", str(DEMO_MAX_QUESTION_TOKENS),
                "--max-answer-tokens", str(DEMO_MAX_ANSWER_TOKENS),
                "--checkpoint-dir", str(folder / "ckpt"),
                "--checkpoint-every", "0",
                "--log-dir", "",
                "--ema-decay", "0.99",
                "--batch-size", str(DEMO_BATCH_SIZE),
                "--num-layers", str(DEMO_NUM_LAYERS),
                # generated data do not repeat, so nothing to regularise against
                "--dropout", "0",
                "--extractive",
                *extra_args,
            ]
        )  # fmt: skip
    assert path is not None
    return path


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    path = train_qa(parse_args(argv))
    if path is not None:
        print(path)


if __name__ == "__main__":
    main()
