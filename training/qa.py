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
import dataclasses
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.bert.overlap import (
    DEFAULT_MAX_MATCH_LENGTH,
    DEFAULT_MAX_SENTENCE_COUNT,
    OVERLAP_FEATURES,
    SENTENCE_ENDS,
)
from models.bert.tokenizer import VOCAB_FILE, BertTokenizer
from models.data_errors import DataError
from models.qa.export import export_qa_saved_model
from models.qa.input_softmax import ANSWER_SOFTMAXES, step_model_for
from models.qa.kv_cache import KerasStepModel
from models.qa.placeholders import DEFAULT_PLACEHOLDER_COUNT, PlaceholderMap, placeholder_tokens
from models.qa.readers import QAExample, read_qa_file, window_passages, write_webqa_file
from models.qa.samples import (
    ANSWER_INPUTS,
    DEFAULT_MAX_ANSWER_TOKENS,
    DEFAULT_MAX_PASSAGE_TOKENS,
    DEFAULT_MAX_QUESTION_TOKENS,
    QASample,
    build_sample,
    max_sample_length,
    pad_samples,
)
from models.qa.sentences import READ_BY
from models.qa.seq2seq import (
    LABEL_IDS_KEY,
    SMALL_HIDDEN_SIZE,
    SMALL_INTERMEDIATE_SIZE,
    SMALL_NUM_HEADS,
    SMALL_NUM_LAYERS,
    UniLMSeq2Seq,
    answer_window_loss,
    build_qa_model,
    small_qa_config,
)
from models.qa.signatures import VOCAB_ASSET_PATH
from models.qa.synthetic import (
    SyntheticConfig,
    make_mixed_examples,
    make_synthetic_examples,
    reserved_characters,
)
from training.common.cli import non_negative_int, positive_float, positive_int
from training.common.data import data_summary
from training.common.job import Fit, Manifest, arguments_config, log
from training.common.loop import BertJob
from training.common.text import (
    SPECIAL_TOKENS,
    build_char_vocab,
    init_positions_as_sinusoids,
    pad_width,
    write_vocab,
)
from training.qa_eval import evaluate_examples

DEFAULT_BATCH_SIZE = 32
# Adam learning rates: bert4keras fine-tunes BERT at 1e-5 (2e-5 is BERT's own GLUE setting); a
# small encoder trained from scratch takes a larger step.
DEFAULT_FINETUNE_LR = 2e-5
DEFAULT_SCRATCH_LR = 1e-3
# Overlap of passage windows: each window starts half a window after the previous one, so an
# answer shorter than half a window lies whole inside at least one of them.
DEFAULT_WINDOW_STRIDE_FRACTION = 0.5
FAMILY = "bert-unilm"
# Batches are padded to a multiple of this many tokens.
PAD_MULTIPLE = 32


class QAJob(BertJob):
    """The QA family's parts of the harness (`training.common.job`)."""

    prog = "python -m training.qa"
    description = "Train a UniLM seq2seq reading-comprehension model and export a SavedModel."
    task, family, label = "qa", FAMILY, "qa"
    defaults = {"epochs": 10}
    batch_size = DEFAULT_BATCH_SIZE
    finetune_lr, scratch_lr = DEFAULT_FINETUNE_LR, DEFAULT_SCRATCH_LR
    hidden_size, num_layers, num_heads = SMALL_HIDDEN_SIZE, SMALL_NUM_LAYERS, SMALL_NUM_HEADS
    intermediate_size = SMALL_INTERMEDIATE_SIZE

    model: UniLMSeq2Seq

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("QA")
        g.add_argument("--valid", type=Path, default=None, help="held-out QA file for the metrics")
        g.add_argument(
            "--valid-limit", type=positive_int, default=None, help="evaluate this many at most"
        )
        g.add_argument(
            "--max-passage-tokens", type=positive_int, default=DEFAULT_MAX_PASSAGE_TOKENS
        )
        g.add_argument(
            "--max-question-tokens", type=positive_int, default=DEFAULT_MAX_QUESTION_TOKENS
        )
        g.add_argument("--max-answer-tokens", type=positive_int, default=DEFAULT_MAX_ANSWER_TOKENS)
        g.add_argument(
            "--window-stride",
            type=positive_int,
            default=None,
            help="characters between passage windows (default: half of --max-passage-tokens)",
        )
        g.add_argument(
            "--position-init",
            choices=["sinusoid", "random"],
            default="sinusoid",
            help="initial position table of a from-scratch model",
        )
        g.add_argument(
            "--overlap-feature",
            choices=list(OVERLAP_FEATURES),
            default="none",
            help="give the encoder DrQA's exact-match feature: bigram: passage and question "
            "tokens inside a bigram the other part also holds; ngram: for each token the length "
            "of the longest common substring covering it, capped at --overlap-max-length, one "
            "learned vector a length (models.bert.overlap); with --init-checkpoint its vectors "
            "start at zero",
        )
        g.add_argument(
            "--overlap-max-length",
            type=positive_int,
            default=DEFAULT_MAX_MATCH_LENGTH,
            help="--overlap-feature ngram: longer matches count as this long",
        )
        g.add_argument(
            "--sentence-feature",
            choices=["none", "count"],
            default="none",
            help="with --overlap-feature: also give each passage token how many distinct "
            f"question bigrams its sentence (ended by any of {SENTENCE_ENDS}) holds, capped at "
            "--sentence-max-count, one learned vector a count (models.bert.overlap."
            "sentence_overlap): which sentence is about the person and the fact asked",
        )
        g.add_argument(
            "--sentence-max-count",
            type=positive_int,
            default=DEFAULT_MAX_SENTENCE_COUNT,
            help="--sentence-feature count: larger counts count as this",
        )
        g.add_argument(
            "--sentence-join",
            nargs="*",
            default=[],
            metavar="TOKEN",
            help="--sentence-feature count: tokens that, opening a sentence, join it to the one "
            "before, so that a pronoun's sentence counts the name it refers back to (Chinese: "
            "他 她 它; each must be one vocabulary token); none by default",
        )
        g.add_argument(
            "--first-token-weight",
            type=positive_float,
            default=1.0,
            help="weight of each sample's first target token in the loss (the answer's first "
            "token or the [SEP] of no answer), against 1 for the others",
        )
        g.add_argument(
            "--answer-softmax",
            choices=list(ANSWER_SOFTMAXES),
            default="vocabulary",
            help="input: each answer token's softmax runs over the tokens of the sample "
            "(passage, question, answer), not the whole vocabulary, in training and in the "
            "model's decoding (models.qa.input_softmax): the head only learns to tell the "
            "passage's tokens apart; for span answers from an encoder without its MLM head",
        )
        g.add_argument(
            "--copy-attention",
            action="store_true",
            help="answer tokens are written by pointing at a source position (passage or "
            "question) as well as by the vocabulary (one softmax over both, as CopyNet), so that "
            "a reader can write values it never wrote in training (models.qa.copy_attention)",
        )
        g.add_argument(
            "--answer-input",
            choices=list(ANSWER_INPUTS),
            default="previous",
            help="what each answer slot reads: previous, the answer token written before it "
            "(UniLM); next, the passage token after the span written so far ([MASK] where the "
            "span occurs with several next tokens), so that the reader decides at each step "
            "whether that token extends the answer (needs --extractive and answers that are "
            "spans; models.qa.samples)",
        )
        g.add_argument(
            "--placeholders",
            type=non_negative_int,
            default=0,
            metavar="K",
            help="read each distinct word the vocabulary lacks (a character, a Latin word) of a "
            "question and its passages as one of K placeholder tokens, [unused1] .. [unusedK], "
            "assigned in a random order per question in training and in order of appearance "
            "when answering; answers write them back as the text (models.qa.placeholders). A "
            "vocabulary built from the data gets the K tokens; a given one (--vocab, "
            "--init-checkpoint) must hold them. 0: unknown text is [UNK]",
        )
        g.add_argument("--beam-size", type=positive_int, default=1, help="beams when evaluating")
        g.add_argument(
            "--read-by",
            choices=READ_BY,
            default="passage",
            help="how the model reads passages when answering (the manifest's decoding.read_by; "
            "requests may differ): 'sentence', each sentence a row that votes, for passages of "
            "facts about several people; 'passage', whole (models.qa.sentences)",
        )
        g.add_argument(
            "--extractive", action="store_true", help="evaluate with answers restricted to spans"
        )

    def prepare(self, args: argparse.Namespace, strategy: Any) -> np.ndarray:
        self.window = args.max_passage_tokens
        self.stride = args.window_stride or max(
            1, int(self.window * DEFAULT_WINDOW_STRIDE_FRACTION)
        )
        self.raw_train = read_qa_file(args.data)
        warn_answers_not_in_passages(args.data, self.raw_train)
        # Read and checked now, not after the training run that the manifest's evaluation ends.
        self.valid: list[QAExample] | None = (
            None if args.valid is None else read_qa_file(args.valid)[: args.valid_limit]
        )
        train_examples = prepare_examples(self.raw_train, self.window, self.stride)
        with strategy.scope():
            self.model, self.tokenizer, self.vocab_path, self.model_info = _load_model(
                args, train_examples, Path(args.checkpoint_dir)
            )
        if args.answer_input == "next" and not args.extractive:
            raise ValueError(
                "--answer-input next reads the passage after the span: add --extractive"
            )
        self.samples = build_samples(self.tokenizer, train_examples, args)
        if args.answer_input == "next":
            spans = sum(1 for s in self.samples if s.label_ids is not None)
            answered = sum(1 for s in self.samples if sum(s.loss_mask) > 1)
            log(f"answer input next: {spans} of {answered} answers are spans of their passage")
        if args.placeholders:
            ids = {self.tokenizer.token_to_id(t) for t in placeholder_tokens(args.placeholders)}
            written = sum(t in ids for s in self.samples for t in s.token_ids)
            unknown = sum(t == self.tokenizer.unk_id for s in self.samples for t in s.token_ids)
            log(f"placeholders: {written} tokens of the samples, [UNK] {unknown} (past K)")
        if not self.samples:
            raise DataError(f"{args.data} holds no (question, passage) pair")
        lengths = np.array([len(s.token_ids) for s in self.samples])
        self.answered = sum(1 for s in self.samples if sum(s.loss_mask) > 1)
        log(
            f"{len(self.raw_train)} questions, {len(self.samples)} passages ({self.answered} with "
            f"the answer), vocabulary {self.tokenizer.vocab_size}, mean length "
            f"{lengths.mean():.0f} tokens"
        )
        return lengths

    def signature(self) -> dict[str, Any]:
        spec = tf.TensorSpec([None, None], tf.int32)
        keys = ["token_ids", "segment_ids", "padding_mask", "loss_mask"]
        if self.args.answer_input == "next":
            keys.append(LABEL_IDS_KEY)
        return {key: spec for key in keys}

    def loss(self, inputs: dict[str, Any]) -> Any:
        answer_window = self.args.max_answer_tokens + 1  # the answer and its [SEP]
        return answer_window_loss(
            self.model,
            inputs,
            answer_window,
            training=True,
            first_token_weight=self.args.first_token_weight,
            input_softmax=self.args.answer_softmax == "input",
        )

    def pad(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        rows = [self.samples[i] for i in indices]
        longest = max_sample_length(
            self.args.max_passage_tokens,
            self.args.max_question_tokens,
            self.args.max_answer_tokens,
        )
        width = batch_width([len(r.token_ids) for r in rows], longest)
        return pad_samples(
            rows, self.tokenizer.pad_id, pad_to=width, with_labels=self.args.answer_input == "next"
        )

    def manifest(self, args: argparse.Namespace, fit: Fit) -> Manifest:
        metrics = self.fit_metrics(fit)
        if self.valid is not None:
            valid = self.valid
            t1 = time.perf_counter()
            scores, _ = evaluate_examples(
                step_model_for(
                    KerasStepModel(self.model, args.max_answer_tokens), args.answer_softmax
                ),
                self.tokenizer,
                prepare_examples(valid, self.window, self.stride),
                max_passage_tokens=args.max_passage_tokens,
                max_question_tokens=args.max_question_tokens,
                max_answer_tokens=args.max_answer_tokens,
                beam_size=args.beam_size,
                extractive=args.extractive,
                placeholders=args.placeholders,
                answer_input=args.answer_input,
                read_by=args.read_by,
            )
            metrics.update({f"valid_{k}": v for k, v in scores.items()})
            metrics["valid_data"] = str(Path(args.valid).resolve())
            log(
                f"valid ({len(valid)} questions, {time.perf_counter() - t1:.0f}s): accuracy "
                f"{scores['accuracy']:.4f}, F1 {scores['f1']:.4f}, Final {scores['final']:.4f}"
            )
        config = arguments_config(args)
        config.update(self.model_info, peak_lr=self.peak_lr)
        config.update(window_chars=self.window, window_stride=self.stride)
        return Manifest(
            write_model=lambda folder: export_qa_saved_model(
                folder,
                self.model,
                self.vocab_path,
                args.max_passage_tokens,
                args.max_question_tokens,
                args.max_answer_tokens,
            ),
            config=config,
            data=data_summary(
                args.data,
                "qa-json",
                {
                    "questions": len(self.raw_train),
                    "passages": len(self.samples),
                    "answered": self.answered,
                },
            ),
            metrics=metrics,
            extra={
                "max_passage_tokens": args.max_passage_tokens,
                "max_question_tokens": args.max_question_tokens,
                "max_answer_tokens": args.max_answer_tokens,
                "tokenizer": {
                    "kind": "wordpiece",
                    "lowercase": self.tokenizer.lowercase,
                    "strip_accents": self.tokenizer.strip_accents,
                    "vocab": VOCAB_ASSET_PATH,
                },
                "decoding": {
                    "beam_size": args.beam_size,
                    "extractive": args.extractive,
                    "answer_softmax": args.answer_softmax,
                    "answer_input": args.answer_input,
                    "read_by": args.read_by,
                },
                # Only with them: a manifest without the key reads [UNK] as before.
                **({"placeholders": {"count": args.placeholders}} if args.placeholders else {}),
            },
        )


def warn_answers_not_in_passages(path: Path, examples: Sequence[QAExample]) -> int:
    """Logs how many passage answers their passage does not hold (a wrong field, or an answer
    written differently from the passage): the reader learns to write them anyway, but an
    extractive reader never answers them. Returns that count."""
    missing = [
        (i, passage.answer)
        for i, example in enumerate(examples)
        for passage in example.passages
        if passage.answer is not None and passage.answer not in passage.text
    ]
    answered = sum(1 for e in examples for p in e.passages if p.answer is not None)
    if missing:
        i, answer = missing[0]
        log(
            f"warning: {path}: {len(missing)} of {answered} answers are not in their passage "
            f"(the first: record {i}, {answer!r}); an extractive reader never gives them"
        )
    if examples and not answered:
        log(f"warning: {path}: no passage has an answer; the reader learns to answer none")
    return len(missing)


def batch_width(lengths: Sequence[int], longest: int) -> int:
    """The padded width of a batch of samples of these lengths: a multiple of `PAD_MULTIPLE`
    (fewer distinct widths, fewer XLA compilations of the step: the demo's 13 widths, 8 apart,
    become 4; on a host at load 8-10 the first 13 steps of a demo run, each a compilation, took
    8.5 minutes), never past `longest`, the longest sample the limits allow, which is what a
    from-scratch position table holds (`max_sample_length`, not always a multiple of 8)."""
    width = pad_width(lengths)
    return max(max(lengths), min(-(-width // PAD_MULTIPLE) * PAD_MULTIPLE, longest))


def build_parser() -> argparse.ArgumentParser:
    return QAJob().build_parser()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return QAJob().parse_args(argv)


# Samples.
def _example_texts(examples: Sequence[QAExample]) -> Iterable[str]:
    for example in examples:
        yield example.question
        for passage in example.passages:
            yield passage.text
            if passage.answer:
                yield passage.answer


def prepare_examples(examples: Sequence[QAExample], window: int, stride: int) -> list[QAExample]:
    """Examples with long passages cut into windows (see `window_passages`)."""
    return [window_passages(e, window, stride) for e in examples]


def build_samples(
    tokenizer: BertTokenizer, examples: Sequence[QAExample], args: argparse.Namespace
) -> list[QASample]:
    """One sample per (question, passage) pair. With `--placeholders`, each question's unknown
    words take placeholders drawn in a random order (seeded by `--seed`), the same over its
    passages and answers."""
    mapper = PlaceholderMap(tokenizer, args.placeholders) if args.placeholders else None
    rng = random.Random(args.seed)
    samples = []
    for example in examples:
        texts = [p.text for p in example.passages if p.text]
        mapping = None
        if mapper is not None:
            answers = [p.answer for p in example.passages if p.text and p.answer]
            mapping = mapper.assign(
                example.question, texts, answers, rng=rng, question_tokens=args.max_question_tokens
            )
        for passage in example.passages:
            if not passage.text:
                continue
            samples.append(
                build_sample(
                    tokenizer,
                    passage.text,
                    example.question,
                    passage.answer,
                    args.max_passage_tokens,
                    args.max_question_tokens,
                    args.max_answer_tokens,
                    placeholders=mapping,
                    answer_input=args.answer_input,
                )
            )
    return samples


def _load_model(
    args: argparse.Namespace, train_examples: Sequence[QAExample], work_dir: Path
) -> tuple[UniLMSeq2Seq, BertTokenizer, Path, dict[str, Any]]:
    """The model, its tokenizer, its vocab.txt and what describes the model in the manifest."""
    overlap_max_length = args.overlap_max_length if args.overlap_feature == "ngram" else None
    if args.sentence_feature != "none" and args.overlap_feature == "none":
        raise ValueError("--sentence-feature needs --overlap-feature")
    if args.init_checkpoint is not None:
        tokenizer = BertTokenizer.from_folder(args.init_checkpoint)
        overlap_sep_id = tokenizer.sep_id if args.overlap_feature != "none" else None
        # The feature's vectors are new (zero): the model starts as the checkpoint computes.
        model = build_qa_model(
            init_checkpoint=args.init_checkpoint,
            overlap_sep_id=overlap_sep_id,
            overlap_max_length=overlap_max_length,
            copy_attention=args.copy_attention,
            **_sentence_options(args, tokenizer),
        )
        info: dict[str, Any] = {
            "init_checkpoint": str(Path(args.init_checkpoint).resolve()),
            "bert": model.config.__dict__,
        }
        vocab_path = Path(args.init_checkpoint) / VOCAB_FILE
    else:
        model, tokenizer, vocab_path, info = _new_model(args, train_examples, work_dir)
        overlap_sep_id = tokenizer.sep_id if args.overlap_feature != "none" else None
    if overlap_sep_id is not None:
        # What `training.qa_reexport` rebuilds the encoder with (the SavedModel computes the
        # feature itself: the service needs nothing).
        info["overlap_sep_id"] = overlap_sep_id
    if overlap_max_length is not None:
        info["overlap_max_length"] = overlap_max_length
    info.update(_sentence_options(args, tokenizer))
    if args.copy_attention:
        info["copy_attention"] = True  # for `training.qa_reexport`, as the features above
    return model, tokenizer, vocab_path, info


def sentence_end_ids(tokenizer: BertTokenizer) -> list[int]:
    """The ids of the vocabulary's sentence ends (`models.bert.overlap.SENTENCE_ENDS`)."""
    ids = [tokenizer.token_to_id(mark) for mark in SENTENCE_ENDS]
    return sorted({i for i in ids if i != tokenizer.unk_id})


def _sentence_options(args: argparse.Namespace, tokenizer: BertTokenizer) -> dict[str, Any]:
    """`build_qa_model`'s sentence-feature options (none without `--sentence-feature`); also
    what the manifest's config records for `training.qa_reexport`."""
    if args.sentence_feature == "none":
        if args.sentence_join:
            raise ValueError("--sentence-join needs --sentence-feature count")
        return {}
    options: dict[str, Any] = {
        "sentence_end_ids": sentence_end_ids(tokenizer),
        "sentence_max_count": args.sentence_max_count,
    }
    if args.sentence_join:
        options["sentence_join_ids"] = sentence_join_ids(tokenizer, args.sentence_join)
    return options


def sentence_join_ids(tokenizer: BertTokenizer, tokens: Sequence[str]) -> list[int]:
    """The ids of `--sentence-join`'s tokens. Each must be one token; one the vocabulary lacks is
    left out with a warning (a vocabulary built from data without it: the text reads it as
    [UNK], and joining on [UNK] would join after any unknown character)."""
    ids = []
    for token in tokens:
        pieces = tokenizer.tokenize(token)
        if len(pieces) != 1:
            raise ValueError(f"--sentence-join {token!r} is not one token ({pieces})")
        if tokenizer.token_to_id(pieces[0]) == tokenizer.unk_id:
            print(f"--sentence-join {token!r}: not in the vocabulary, left out", file=sys.stderr)
            continue
        ids.append(tokenizer.token_to_id(pieces[0]))
    return sorted(set(ids))


def _new_model(
    args: argparse.Namespace, train_examples: Sequence[QAExample], work_dir: Path
) -> tuple[UniLMSeq2Seq, BertTokenizer, Path, dict[str, Any]]:
    """A from-scratch model over the data's characters (`_load_model` without a checkpoint)."""
    longest = max_sample_length(
        args.max_passage_tokens, args.max_question_tokens, args.max_answer_tokens
    )
    if args.vocab is not None:
        vocab_path = Path(args.vocab)
    else:
        # Kept beside the checkpoints, so that a resumed run tokenises the same way.
        vocab_path = work_dir / VOCAB_FILE
        if not (args.resume and vocab_path.exists()):
            vocab = build_char_vocab(_example_texts(train_examples), args.min_char_count)
            write_vocab(vocab_path, [*vocab, *placeholder_tokens(args.placeholders)])
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
    model = build_qa_model(
        config,
        overlap_sep_id=tokenizer.sep_id if args.overlap_feature != "none" else None,
        overlap_max_length=args.overlap_max_length if args.overlap_feature == "ngram" else None,
        copy_attention=args.copy_attention,
        **_sentence_options(args, tokenizer),
    )
    if args.position_init == "sinusoid":
        init_positions_as_sinusoids(model.backbone)
    return model, tokenizer, vocab_path, {"bert": config.__dict__}


def train_qa(args: argparse.Namespace | Sequence[str]) -> Path | None:
    """Runs the whole job in-process (`QAJob.run`: used by `main`, tests and `train_qa_demo`)."""
    return QAJob().run(args)


# Demo: a small model on synthetic data (training.demo calls this). Measured on 2 CPU cores (and
# in docs/benchmarks.md): a from-scratch 2-layer encoder learns to copy the asked fact after
# ~2,000 steps (a sudden drop of the loss, as when induction heads form) and then whether a
# passage states it; telling whether a passage names the person asked (matching a two-character
# name) it did not learn in this budget until it was given DrQA's exact-match feature over
# bigrams (`--overlap-feature bigram`, `models.bert.overlap`), and which sentence of a passage
# about several people is about the person and the fact asked (the errors left: wrong people's
# values and "no answer" inside passages of five sentences and more) until it was given the
# sentence-level feature (`--sentence-feature count`: each passage token, how many distinct
# question bigrams its sentence holds). So the demo trains on a mixture of the easy kind (to
# bootstrap copying) and the hard kind (absent people, several people a passage, like names)
# with both features: 0.96 on the hard held-out kind at seed 0 (manifest `valid_accuracy`
# 0.9425) and 0.975 at seed 1 (0.975), all nine `ISSUE_EXAMPLES` right; without the sentence
# feature 0.825 and 0.7575 (issue 18's sixth pass; with ordinary wording in the data, seventh
# pass, 0.9475 and 0.950, and since the ninth 0.9525 and 0.960); a step costs the same within
# the noise of an interleaved benchmark (bench/qa_overlap_step.py). Four heads. Three epochs of
# the same questions: one epoch of 60,000 fresh ones (two hard for one easy) at the same step
# count reached only 0.665 held out; batches above 16 buy no examples a CPU second (fifth pass).
# A third more steps (~10,000, issue 18's ninth pass) from a third more questions, 26,667: 0.9525
# and 0.960 on the hard held-out kind at seeds 0 and 1 where 20,000 scored 0.9475 and 0.950 (and
# ordinary wording 0.748 / 0.766 against 0.738 / 0.751); a fourth epoch of the 20,000 instead
# scored 0.950 and 0.9225. At seed 2, 0.965 against 0.940: higher at all three seeds, though
# each gain is within a standard error (~0.011); the whole demo 8 min 19 s on 2 quiet cores
# instead of 6 min 38 s (docs/benchmarks.md, "More steps").
DEMO_TRAIN_QUESTIONS = 26_667
DEMO_VALID_QUESTIONS = 400
DEMO_MAX_PASSAGE_TOKENS = 128
DEMO_MAX_QUESTION_TOKENS = 24
DEMO_MAX_ANSWER_TOKENS = 8
DEMO_EPOCHS = 3
DEMO_BATCH_SIZE = 16
DEMO_NUM_LAYERS = 2
# Four 32-wide heads: a step costs 16% less than with eight 16-wide ones (the attention's
# [B, heads, L, L] products halve), and at the same 7,539 steps they scored 0.825 held out
# against 0.800 at seed 0, 0.7575 against 0.745 at seed 1: the seed moves it more than the
# heads do (docs/benchmarks.md, issue 18's fifth pass; both without the sentence feature).
DEMO_NUM_HEADS = 4
# The easy kind (every passage about the person asked). Alone it answers questions about people
# no passage names; the hard kind alone (DEMO_HARD_SYNTHETIC) reached only 0.377 in this budget,
# most answerable questions answered null, and the mixture without the feature 0.370 at 2,513
# steps (docs/benchmarks.md).
DEMO_SYNTHETIC = SyntheticConfig(
    people_per_passage=(1, 1),
    facts_per_person=(2, 4),
    passages_per_question=(1, 3),
    same_person_fraction=1.0,
    unnamed_fraction=0.0,
)
# The held-out questions the demo is judged on (manifest `valid_accuracy`,
# bench/qa_demo_heldout.py): the hard kind, fixed whatever the training data are, with the
# paraphrases training never sees.
DEMO_HELDOUT_SYNTHETIC = SyntheticConfig(
    people_per_passage=(1, 3),
    facts_per_person=(1, 3),
    passages_per_question=(1, 3),
    unanswerable_fraction=0.3,
    same_person_fraction=0.5,
    unnamed_fraction=0.5,
    shared_attribute_fraction=0.5,
    similar_name_fraction=0.5,
    questions="all",
)
# The held-out kind in ordinary users' wording (issue 18's outside tester): one person's facts
# often joined in one sentence ("张伟住在北京，今年35岁，是一名医生。"), statements in several forms
# and in held-out ones ("{name}生活在{value}。", "{name}是{value}。"), a wider pool of values and
# values training never sees ("老师"), and sentences missing their value ("张伟住在。"). Scored
# by bench/qa_demo_heldout.py --set wording, beside DEMO_HELDOUT_SYNTHETIC, which is unchanged.
DEMO_WORDING_HELDOUT_SYNTHETIC = dataclasses.replace(
    DEMO_HELDOUT_SYNTHETIC,
    statement_forms="varied",
    compound_fraction=0.4,
    held_out_statement_fraction=0.3,
    value_pool="wide",
    held_out_value_fraction=0.3,
    empty_value_fraction=0.3,
)
# The ordinary-wording held-out kind with people referred back to by 他/她 (issue 18's probe:
# "李梅最喜欢的颜色是蓝色，她养了一只猫。" asked 李梅养了什么？, "张伟住在北京。他今年35岁。"):
# 60% of people with two facts or more state a run of them by a pronoun after the named first
# one. Scored by bench/qa_demo_heldout.py --set pronoun.
DEMO_PRONOUN_HELDOUT_SYNTHETIC = dataclasses.replace(
    DEMO_WORDING_HELDOUT_SYNTHETIC, pronoun_fraction=0.6
)
# The hard kind reduced to its crux, as an outside tester probes it ("王芳今年多大？" over
# "张伟今年35岁。王芳是一名护士。"): one passage about two people with one fact each, the other
# person always stating the fact asked; half the questions are about a person the passage names
# without that fact (no answer: the other person's value is the trap), half about one who states
# it (beside the other's). Scored by bench/qa_demo_heldout.py --set two-people.
DEMO_TWO_PEOPLE_HELDOUT_SYNTHETIC = SyntheticConfig(
    people_per_passage=(2, 2),
    facts_per_person=(1, 1),
    passages_per_question=(1, 1),
    unanswerable_fraction=0.5,
    unnamed_fraction=0.0,
    shared_attribute_fraction=1.0,
    questions="all",
)
# The hard held-out kind about a user's own people and values (issue 18's outside tester:
# "李雷住在乌鲁木齐。"): every name of a `SURNAMES` surname and common characters no training name
# holds (`wide_name`, "held_out"), every value one typed by hand that no pool holds
# (`Attribute.own_values`: 乌鲁木齐, 柯基犬, 外卖员, 96). Scored by bench/qa_demo_heldout.py
# --set own-words, beside DEMO_HELDOUT_SYNTHETIC, which is unchanged.
DEMO_OWN_WORDS_HELDOUT_SYNTHETIC = dataclasses.replace(
    DEMO_HELDOUT_SYNTHETIC,
    wide_name_fraction=1.0,
    name_characters="held_out",
    own_value_fraction=1.0,
)
# The same, one side at a time: the names only (pool values; bench --set own-names) and the values
# only (pool names; --set own-values).
DEMO_OWN_NAMES_HELDOUT_SYNTHETIC = dataclasses.replace(
    DEMO_HELDOUT_SYNTHETIC, wide_name_fraction=1.0, name_characters="held_out"
)
DEMO_OWN_VALUES_HELDOUT_SYNTHETIC = dataclasses.replace(
    DEMO_HELDOUT_SYNTHETIC, own_value_fraction=1.0
)
# The hard held-out kind with distractor text in every passage (an outside tester's probe:
# "[注1]张伟住在北京。" asked 张伟住在哪里？ answered "]"): note markers, IDs, Latin sentences,
# special-token-looking text and numbers at sentence boundaries, and a quarter of the questions
# with one more passage of nothing else (`SyntheticConfig.noise_fraction`). The distractors are
# drawn from the passages' text, so at the same seed these are the hard set's questions and
# answers (DEMO_HELDOUT_SYNTHETIC), with the distractors put in: the two scores pair. Scored by
# bench/qa_demo_heldout.py --set noise.
DEMO_NOISE_HELDOUT_SYNTHETIC = dataclasses.replace(DEMO_HELDOUT_SYNTHETIC, noise_fraction=1.0)
# The hard kind as training data: the held-out kind's settings with the training wordings only,
# and three in four of its unanswerable questions about a person the passages name without the
# fact asked (half before, the rest about people no passage names). Absent people were already
# answered null (1.0 held out); a fact of somebody else beside the person asked was the error left
# (`DEMO_TWO_PEOPLE_HELDOUT_SYNTHETIC`: 0.876 and 0.945 of them null at seeds 0 and 1, 0.957 and
# 0.980 with this, the hard held-out kind level; docs/benchmarks.md, "Unstated facts").
DEMO_HARD_SYNTHETIC = dataclasses.replace(
    DEMO_HELDOUT_SYNTHETIC, questions="train", unnamed_fraction=0.25
)
# Ordinary wording in the training data (never the held-out forms and values): several statement
# forms a fact, one person's facts often in one compound sentence, the wider pool of values, and
# a sentence without its value now and then (no answer). Made-up values
# (`nonce_value_fraction`) were tried and not kept: 0.25 of them cost 0.07 on
# DEMO_HELDOUT_SYNTHETIC, 0.1 changed nothing measurable (docs/benchmarks.md, "Ordinary wording").
# Pronoun statements (`pronoun_fraction` 0.3, 0.15, compound sentences only) were tried and not
# kept either: they raised the answers stated by 他/她 but cost DEMO_HELDOUT_SYNTHETIC 0.01-0.045
# (other people's values), and did so with the sentence feature's join too (`--sentence-join 他
# 她`, a pronoun's sentence counting the name before it: answers stated by a pronoun 0.42 ->
# 0.66-0.70, but the hard kind 0.96 and 0.91 at seeds 0 and 1; docs/benchmarks.md, "Pronouns",
# "More steps" and "Unstated facts and pronouns joined"). Names and values of common characters
# (`wide_name_fraction` 0.25 with `wide_value_fraction` 0.15 or 0.4, a 4,030-character vocabulary)
# were tried and not kept either: a user's own values (DEMO_OWN_WORDS_HELDOUT_SYNTHETIC) stayed
# at 0.03-0.09 of the answerable ones, cut after a character or two, and the hard kind fell to
# 0.91-0.955; names training never saw were already read (docs/benchmarks.md, "A user's own
# names and values").
DEMO_TRAIN_WORDING: dict[str, Any] = {
    "statement_forms": "varied",
    "compound_fraction": 0.3,
    "value_pool": "wide",
    "empty_value_fraction": 0.2,
}
DEMO_WORDING_SYNTHETIC = dataclasses.replace(DEMO_SYNTHETIC, **DEMO_TRAIN_WORDING)
DEMO_WORDING_HARD_SYNTHETIC = dataclasses.replace(DEMO_HARD_SYNTHETIC, **DEMO_TRAIN_WORDING)
# Placeholders for the words the demo's vocabulary lacks (issue 18's twelfth pass,
# `models.qa.placeholders`): a user's own values (乌鲁木齐, 柯基犬, London) are `[UNK]`s to a
# ~420-character vocabulary, and a value of characters seen a few dozen times as answers is cut,
# not copied (the eleventh pass). So the demo's vocabulary also holds K placeholder tokens; each
# distinct unknown character or Latin word of a question and its passages is read as one of them
# (drawn in a random order per question in training, in order of appearance when answering) and
# written back in the answer. Training names and values hold unknown text (`unknown_name`,
# `unknown_value`), which the vocabulary leaves out (`demo_vocab`). Measured (docs/benchmarks.md,
# "Placeholders for a user's own words", run D): own values 0.25 / 0.18 of the answerable at seeds
# 0 and 1 (0.075 / 0.093 without), `Tom住在London。` answered London; the hard kind 0.9475 /
# 0.9575 (0.9425 / 0.970 without). What is left is the value's end: answers cut (柯基犬 -> 柯基).
# Names 0.2 and values 0.3 of the draws cost the hard kind 0.03 (run B).
DEMO_PLACEHOLDERS = DEFAULT_PLACEHOLDER_COUNT
DEMO_UNKNOWN_WORDS: dict[str, Any] = {"unknown_name_fraction": 0.1, "unknown_value_fraction": 0.25}
# Distractor text in passages (`noise_fraction`: note markers, IDs, Latin sentences, "[SEP]"-like
# text, numbers; an outside tester's "[注1]张伟住在北京。" was answered "]") was tried and not kept:
# 0.2 of the passages lifted DEMO_NOISE_HELDOUT_SYNTHETIC from 0.815 / 0.84 to 0.8925 / 0.885 at
# seeds 0 and 1 and answered 11 of the 12 NOISE_EXAMPLES (8 without), but cost the two-people set
# 0.03 at both seeds (0.904 / 0.953), the hard kind 0.0425 at seed 1 (0.915) and wording 0.032 at
# seed 1, and ~13% more training time; 0.1 helped half as much and cost more (docs/benchmarks.md,
# "Distractor text in passages").
# What the demo trains on: both kinds in turn, question by question (`make_mixed_examples`).
DEMO_MIXTURE = (
    dataclasses.replace(DEMO_WORDING_SYNTHETIC, **DEMO_UNKNOWN_WORDS),
    dataclasses.replace(DEMO_WORDING_HARD_SYNTHETIC, **DEMO_UNKNOWN_WORDS),
)
# A seed training never draws from (it uses --seed and --seed + 1).
DEMO_HELDOUT_SEED = 1001
_PASSAGES = ["张伟今年35岁。张伟住在北京。", "张伟的职业是医生。"]
_TWO_PEOPLE = ["张伟住在北京。张伟的职业是医生。", "王芳住在上海。王芳今年28岁。"]
# Issue 18's requests (question, passages, the answer expected; None: no answer).
ISSUE_EXAMPLES: list[tuple[str, list[str], str | None]] = [
    ("李娜住在哪里？", _PASSAGES, None),
    ("张伟住在哪里？", _PASSAGES, "北京"),
    ("张伟今年多大？", _PASSAGES, "35"),
    ("张伟今年多少岁？", _PASSAGES, "35"),
    ("张伟养了什么宠物？", _PASSAGES, None),
    ("张伟住在哪里？", _TWO_PEOPLE, "北京"),
    ("王芳住在哪里？", _TWO_PEOPLE, "上海"),
    ("王芳的职业是什么？", _TWO_PEOPLE, None),
    ("李娜住在哪里？", _TWO_PEOPLE, None),
]

_ZHANG = ["张伟住在北京，今年35岁，是一名医生。"]
_LIU = ["刘敏是一名教师，住在苏州。"]
_ZHAO = ["张伟今年35岁。张伟住在北京。", "赵磊今年42岁，是一名工程师。"]
# Requests in ordinary users' wording, written by hand after issue 18's outside tester (question,
# passages, the answer expected; None: no answer), not drawn by the generator: compound sentences,
# training forms (是一名, 家住) and a held-out one (生活在), a held-out value (老师), a sentence
# without its value.
USER_EXAMPLES: list[tuple[str, list[str], str | None]] = [
    ("张伟今年多大？", _ZHANG, "35"),
    ("张伟是做什么工作的？", _ZHANG, "医生"),
    ("张伟住在哪里？", _ZHANG, "北京"),
    ("张伟养了什么宠物？", _ZHANG, None),
    ("刘敏住在哪里？", _LIU, "苏州"),
    ("刘敏的职业是什么？", _LIU, "教师"),
    ("刘敏今年几岁？", _LIU, None),
    ("王芳是做什么的？", ["王芳是一名老师。"], "老师"),
    ("李强住在哪里？", ["李强家住杭州。"], "杭州"),
    ("陈静住在哪个城市？", ["陈静生活在成都。"], "成都"),
    ("赵磊今年几岁？", _ZHAO, "42"),
    ("赵磊多大了？", _ZHAO, "42"),
    ("赵磊住在哪里？", _ZHAO, None),
    ("张伟住在哪里？", ["张伟住在。"], None),
    ("王芳住在哪里？", ["张伟住在北京，今年35岁。", "王芳生活在上海，是一名护士。"], "上海"),
    ("李娜住在哪里？", ["张伟住在北京，今年35岁。", "王芳生活在上海，是一名护士。"], None),
]

# Issue 18's probe: facts stated by a pronoun after the name (question, passages, the answer
# expected; None: no answer), written by hand, printed by bench/qa_demo_heldout.py --examples.
_LI = ["李梅最喜欢的颜色是蓝色，她养了一只猫。"]
_ZHANG_HE = ["张伟住在北京。他今年35岁。"]
PRONOUN_EXAMPLES: list[tuple[str, list[str], str | None]] = [
    ("李梅养了什么？", _LI, "猫"),
    ("李梅最喜欢什么颜色？", _LI, "蓝色"),
    ("张伟今年多大？", _ZHANG_HE, "35"),
    ("张伟住在哪里？", _ZHANG_HE, "北京"),
    ("王芳今年多大？", ["张伟住在北京。他今年35岁。王芳是一名护士。"], None),
    ("王芳多大了？", ["张伟今年35岁。王芳住在上海。她今年28岁。"], "28"),
]

# Issue 18's probe of users' own names and values (question, passages, the answer expected),
# written by hand, printed by bench/qa_demo_heldout.py --examples.
OWN_EXAMPLES: list[tuple[str, list[str], str | None]] = [
    ("李雷住在哪里？", ["李雷住在乌鲁木齐。"], "乌鲁木齐"),
    ("韩梅梅住在哪里？", ["韩梅梅住在拉萨，今年29岁。"], "拉萨"),
    ("韩梅梅今年多大？", ["韩梅梅住在拉萨，今年29岁。"], "29"),
    ("张伟住在哪里？", ["张伟住在乌鲁木齐。"], "乌鲁木齐"),
    ("张伟的职业是什么？", ["张伟是一名程序员。"], "程序员"),
    ("欧阳娜娜今年多大？", ["欧阳娜娜今年21岁。"], "21"),
    ("张伟养了什么宠物？", ["张伟养了一只柯基犬。"], "柯基犬"),
    ("诸葛亮住在哪里？", ["诸葛亮住在成都。"], "成都"),
    ("李雷养了什么宠物？", ["李雷住在乌鲁木齐。韩梅梅养了一只柯基犬。"], None),
    ("Tom住在哪里？", ["Tom住在London。"], "London"),
]

# The outside tester's requests with distractor text in passages (question, passages, the answer
# expected; None: no answer), written by hand, printed by bench/qa_demo_heldout.py --examples: the
# three reproducers (a note before the sentence, an English sentence before, literal special
# tokens), the variants that were right (the note after, `(见附录A)`, an ID), an English sentence
# after, a passage of noise only beside one that answers, and noise where nothing answers.
NOISE_EXAMPLES: list[tuple[str, list[str], str | None]] = [
    ("张伟住在哪里？", ["[注1]张伟住在北京。"], "北京"),
    ("Tom住在哪里？", ["Tom lives here. Tom住在New York。"], "New York"),
    ("张伟住在哪里？[CLS]", ["[SEP][MASK]张伟住在北京。[PAD][UNK]"], "北京"),
    ("张伟住在哪里？", ["张伟住在北京。[注1]"], "北京"),
    ("张伟住在哪里？", ["(见附录A)张伟住在北京。"], "北京"),
    ("张伟住在哪里？", ["ID: A123。张伟住在北京。"], "北京"),
    ("Tom住在哪里？", ["Tom住在New York。Tom lives here."], "New York"),
    ("张伟住在哪里？", ["[1] ID: A123。Tom lives here. [SEP]", "张伟住在北京。"], "北京"),
    ("张伟今年多大？", ["编号：B-2041。张伟今年35岁。（注）"], "35"),
    ("张伟的职业是什么？", ["张伟是一名医生。See the appendix. [MASK]"], "医生"),
    ("王芳住在哪里？", ["[注1]张伟住在北京。"], None),
    ("张伟住在哪里？", ["[注1] ID: A123。", "Tom lives here. [SEP]"], None),
]


def train_qa_demo(
    store: str | Path,
    name: str,
    seed: int = 0,
    *,
    train_questions: int = DEMO_TRAIN_QUESTIONS,
    valid_questions: int = DEMO_VALID_QUESTIONS,
    epochs: int = DEMO_EPOCHS,
    synthetic: SyntheticConfig | Sequence[SyntheticConfig] | None = None,
    extra_args: Sequence[str] = (),
    placeholders: int = DEMO_PLACEHOLDERS,
) -> Path:
    """Trains the demo QA model on synthetic questions (`models.qa.synthetic`) and exports it.

    Held-out questions (`DEMO_HELDOUT_SYNTHETIC`, paraphrases included) come from another seed;
    their exact match is the manifest's `valid_accuracy`.

    Args:
        store: the model store.
        name: the model's name.
        seed: seed of the training data and the run (the held-out data use seed + 1).
        train_questions: synthetic training questions (each with 1-3 passages).
        valid_questions: held-out questions.
        epochs: passes over the training data.
        synthetic: how the synthetic data are drawn (default `DEMO_MIXTURE`); several
            configs: a mixture, questions drawn from each in turn (`make_mixed_examples`).
        extra_args: more command-line options for `train_qa` (later ones win).
        placeholders: K placeholder tokens for unknown words (`models.qa.placeholders`), in a
            vocabulary without the reserved characters and Latin letters (`demo_vocab`); 0:
            the vocabulary of every character of the data, unknown words `[UNK]`.

    Returns:
        The exported version folder.
    """
    synthetic = synthetic or DEMO_MIXTURE
    configs = [synthetic] if isinstance(synthetic, SyntheticConfig) else list(synthetic)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train = make_mixed_examples(train_questions, seed, configs)
        write_webqa_file(folder / "train.json", train)
        vocab_args: list[str] = []
        if placeholders:
            write_vocab(folder / VOCAB_FILE, demo_vocab(train, placeholders))
            vocab_args = ["--vocab", str(folder / VOCAB_FILE), "--placeholders", str(placeholders)]
        write_webqa_file(
            folder / "valid.json",
            make_synthetic_examples(valid_questions, seed + 1, DEMO_HELDOUT_SYNTHETIC),
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
                "--num-heads", str(DEMO_NUM_HEADS),
                "--jit",
                # generated data do not repeat, so nothing to regularise against
                "--dropout", "0",
                "--extractive",
                # a passage about several people read sentence by sentence: a row per person
                "--read-by", "sentence",
                # whether the question's name occurs in a passage, as one bit per token
                "--overlap-feature", "bigram",
                # and which sentence holds most of the question (the person and the fact)
                "--sentence-feature", "count",
                *vocab_args,
                *extra_args,
            ]
        )  # fmt: skip
    assert path is not None
    return path


def demo_vocab(examples: Sequence[QAExample], placeholders: int) -> list[str]:
    """The placeholder demo's vocabulary: the characters of `examples` but the reserved ones
    (`models.qa.synthetic.reserved_characters`) and Latin letters, which are what its unknown
    names and values are made of, then the `placeholders` tokens (`[unused1]` ..)."""
    reserved = set(reserved_characters())

    def known(token: str) -> bool:
        char = token.removeprefix("##")
        return char not in reserved and not (char.isascii() and char.isalpha())

    vocab = build_char_vocab(_example_texts(examples))
    return [t for t in vocab if known(t) or t in SPECIAL_TOKENS] + placeholder_tokens(placeholders)


main = QAJob.main


if __name__ == "__main__":
    main()
