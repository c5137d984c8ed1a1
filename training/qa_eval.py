"""Evaluate an exported QA model on a held-out file: accuracy, character F1 and Final.

    python -m training.qa_eval --model model_store/qa-zh/1 --data dev.json \\
        [--beam-size 1] [--extractive] [--force-answer] \\
        [--span-search [--span-starts 8] [--length-penalty 1]] \\
        [--skip 500] [--limit 500] [--predictions preds.json]

Reads WebQA/SogouQA or SQuAD/CMRC JSON (`models.qa.readers`), cuts long passages into the same
windows as training, decodes every question over all its passages with the SavedModel's
key/value-cache signatures (`--no-cache`: its full_logits, the slow reference) and scores the
answers against the gold ones after normalisation (`models.qa.metrics`). Prints the metrics as
JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.bert.tokenizer import BertTokenizer
from models.qa.decoding import RecomputeStepModel, StepModel, answer_questions
from models.qa.input_softmax import step_model_for
from models.qa.metrics import evaluate
from models.qa.readers import QAExample, read_qa_file, window_passages
from models.qa.samples import (
    DEFAULT_MAX_ANSWER_TOKENS,
    DEFAULT_MAX_PASSAGE_TOKENS,
    DEFAULT_MAX_QUESTION_TOKENS,
)
from models.qa.sentences import READ_BY, ReadBy
from models.qa.span_search import DEFAULT_SPAN_STARTS
from models.store import QAManifest, read_manifest
from training.common.cli import non_negative_float, non_negative_int, positive_int

# Questions decoded together in one batch of model calls (their passages x beams are the rows).
DEFAULT_QUESTIONS_PER_BATCH = 16
# Windows overlap by half, as in training (training.qa's DEFAULT_WINDOW_STRIDE_FRACTION).
WINDOW_STRIDE_FRACTION = 0.5


def evaluate_examples(
    model: StepModel,
    tokenizer: BertTokenizer,
    examples: Sequence[QAExample],
    *,
    max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
    max_question_tokens: int = DEFAULT_MAX_QUESTION_TOKENS,
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS,
    beam_size: int = 1,
    extractive: bool = False,
    questions_per_batch: int = DEFAULT_QUESTIONS_PER_BATCH,
    force_answer: bool = False,
    span_search: bool = False,
    span_starts: int = DEFAULT_SPAN_STARTS,
    length_penalty: float | None = None,
    placeholders: int = 0,
    answer_input: str = "previous",
    read_by: ReadBy = "passage",
) -> tuple[dict[str, float], list[str | None]]:
    """Decodes every example and scores the answers.

    Args:
        model: a step model (`KerasStepModel`, `SavedModelStepModel`, `RecomputeStepModel`).
        tokenizer: the model's tokenizer.
        examples: the examples, passages already windowed as the model reads them.
        max_passage_tokens, max_question_tokens, max_answer_tokens: the model's limits.
        beam_size: beams per question.
        extractive: answers restricted to passage spans.
        questions_per_batch: questions decoded together.
        force_answer: never answer null (every question of the data has an answer).
        span_search, span_starts, length_penalty: score whole spans
            (`models.qa.decoding.decode_batch`).
        placeholders: K of a model trained with placeholders (`models.qa.placeholders`), else 0.
        answer_input: what the model's answer slots read (`models.qa.samples.ANSWER_INPUTS`).
        read_by: "sentence": each passage (window) read as its sentences
            (`models.qa.sentences`); "passage": whole.

    Returns:
        ({"accuracy", "f1", "final", "count"}, the predicted answers in order).
    """
    predictions: list[str | None] = []
    for start in range(0, len(examples), questions_per_batch):
        chunk = examples[start : start + questions_per_batch]
        results = answer_questions(
            model,
            tokenizer,
            [(e.question, [p.text for p in e.passages]) for e in chunk],
            max_passage_tokens=max_passage_tokens,
            max_question_tokens=max_question_tokens,
            max_answer_tokens=max_answer_tokens,
            beam_size=beam_size,
            extractive=extractive,
            force_answer=force_answer,
            span_search=span_search,
            span_starts=span_starts,
            length_penalty=length_penalty,
            placeholders=placeholders,
            answer_input=answer_input,
            read_by=read_by,
            cuts=[[(p.starts_cut, p.ends_cut) for p in e.passages] for e in chunk],
        )
        predictions.extend(r.answer for r in results)
    return evaluate(predictions, examples), predictions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.qa_eval", description=__doc__)
    p.add_argument("--model", type=Path, required=True, help="a version folder of a qa model")
    p.add_argument("--data", type=Path, required=True, help="held-out QA file")
    p.add_argument("--beam-size", type=positive_int, default=None, help="default: the manifest's")
    p.add_argument("--extractive", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--force-answer",
        action="store_true",
        help="never answer null (data whose every question has an answer, as CMRC 2018's)",
    )
    p.add_argument(
        "--window-stride",
        type=positive_int,
        default=None,
        help="characters between passage windows (default: the training run's)",
    )
    p.add_argument(
        "--span-search",
        action="store_true",
        help="score every span from the likeliest starts whole instead of voting token by token "
        "(with --extractive; models.qa.span_search)",
    )
    p.add_argument(
        "--span-starts",
        type=positive_int,
        default=DEFAULT_SPAN_STARTS,
        help="with --span-search: starts read per question",
    )
    p.add_argument(
        "--length-penalty",
        type=non_negative_float,
        default=None,
        help="with --span-search: rank spans by log p / (tokens + 1) ** this (0: by log p; "
        "default 1: per token)",
    )
    p.add_argument(
        "--skip", type=non_negative_int, default=0, help="leave out the first N questions"
    )
    p.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate N questions (after --skip)"
    )
    p.add_argument(
        "--read-by",
        choices=READ_BY,
        default=None,
        help="read each passage whole or sentence by sentence (models.qa.sentences); default: "
        "the manifest's decoding.read_by",
    )
    p.add_argument("--questions-per-batch", type=positive_int, default=DEFAULT_QUESTIONS_PER_BATCH)
    p.add_argument("--no-cache", action="store_true", help="decode with full_logits only")
    p.add_argument("--predictions", type=Path, default=None, help="write answers here (JSON)")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from models.bert.lm_reader import SavedModelLMStepModel as SavedModelStepModel

    args = build_parser().parse_args(argv)
    manifest = read_manifest(args.model, QAManifest)
    spec = manifest.tokenizer
    tokenizer = BertTokenizer(args.model / spec.vocab, spec.lowercase, spec.strip_accents)
    beam_size = args.beam_size or manifest.decoding.beam_size
    extractive = args.extractive if args.extractive is not None else manifest.decoding.extractive
    window = manifest.max_passage_tokens
    # Windows as in training, where the training configuration says.
    stride = args.window_stride or int(
        manifest.config.get("window_stride") or window * WINDOW_STRIDE_FRACTION
    )
    examples = [window_passages(e, window, stride) for e in read_qa_file(args.data)]
    examples = examples[args.skip :][: args.limit]
    saved = SavedModelStepModel(args.model)
    model: StepModel = step_model_for(
        RecomputeStepModel(saved.full_logits, tokenizer.pad_id) if args.no_cache else saved,
        manifest.decoding.answer_softmax,
    )
    started = time.perf_counter()
    scores, predictions = evaluate_examples(
        model,
        tokenizer,
        examples,
        max_passage_tokens=window,
        max_question_tokens=manifest.max_question_tokens,
        max_answer_tokens=manifest.max_answer_tokens,
        beam_size=beam_size,
        extractive=extractive,
        questions_per_batch=args.questions_per_batch,
        force_answer=args.force_answer,
        span_search=args.span_search,
        span_starts=args.span_starts,
        length_penalty=args.length_penalty,
        placeholders=manifest.placeholder_count,
        answer_input=manifest.decoding.answer_input,
        read_by=args.read_by or manifest.decoding.read_by,
    )
    report = {
        **scores,
        "model": str(args.model),
        "data": str(args.data),
        "beam_size": beam_size,
        "extractive": extractive,
        "read_by": args.read_by or manifest.decoding.read_by,
        "force_answer": args.force_answer,
        "window_stride": stride,
        "span_search": args.span_search,
        "span_starts": args.span_starts if args.span_search else None,
        "length_penalty": args.length_penalty,
        "skip": args.skip,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.predictions is not None:
        args.predictions.write_text(
            json.dumps(
                [
                    {"id": e.id, "question": e.question, "prediction": p, "gold": e.gold_answers()}
                    for e, p in zip(examples, predictions, strict=True)
                ],
                ensure_ascii=False,
                indent=1,
            ),
            encoding="utf-8",
        )
    print(json.dumps(report, ensure_ascii=False), file=sys.stdout)
    return report


if __name__ == "__main__":
    main()
