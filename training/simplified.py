"""Convert a SQuAD-format reading-comprehension file (DRCD's Traditional Chinese) to Simplified
Chinese, keeping every `answer_start` right.

    python -m training.simplified ../shared/data/drcd/dev.json data/drcd_dev_simplified.json

CMRC 2018, the evaluation set, is Simplified; DRCD (Shao et al. 2018) is Traditional, so without
conversion a model trained on DRCD meets different characters for most common words at test time.
OpenCC's `t2s` (the `opencc` package: OpenCC's own Python binding, maintained with its
dictionaries) converts character by character for almost all text, but its phrase tables may map
a phrase to one of another length, which shifts the offsets after it. So each context is checked:
when the converted context keeps its length the offsets stay, else each answer is looked up in the
converted context (its converted text at the converted prefix's length, or the occurrence nearest
it); answers that are not found are dropped, and questions left with none, and counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

# OpenCC's configuration: Traditional (any region's variants) to Simplified, phrases included.
OPENCC_CONFIG = "t2s"


class Converter(Protocol):
    def convert(self, text: str) -> str: ...


def make_converter(config: str = OPENCC_CONFIG) -> Converter:
    try:
        import opencc
    except ImportError as error:  # an optional dependency (pyproject's `chinese` extra)
        raise SystemExit(
            "pip install '.[chinese]' (OpenCC) to convert Traditional Chinese"
        ) from error
    return opencc.OpenCC(config)


@dataclass
class ConversionCounts:
    """What a conversion kept and dropped.

    Attributes:
        contexts: contexts converted.
        contexts_length_changed: of them, the ones whose length the conversion changed.
        questions: questions read.
        answers: answers read.
        answers_moved: answers found at another offset than their converted prefix's length.
        answers_dropped: answers not found in the converted context.
        questions_dropped: questions left without an answer (and dropped).
    """

    contexts: int = 0
    contexts_length_changed: int = 0
    questions: int = 0
    answers: int = 0
    answers_moved: int = 0
    answers_dropped: int = 0
    questions_dropped: int = 0


def _locate(context: str, answer: str, near: int) -> int | None:
    """Offset of the occurrence of `answer` in `context` nearest to `near`, None if absent."""
    best: int | None = None
    start = context.find(answer)
    while start != -1:
        if best is None or abs(start - near) < abs(best - near):
            best = start
        start = context.find(answer, start + 1)
    return best


def convert_answer(
    converter: Converter, context: str, converted: str, answer: dict[str, Any]
) -> tuple[dict[str, Any] | None, bool]:
    """The answer with its text and offset in the converted context, and whether it moved; None
    when neither the converted answer nor the answer span of the converted context is found."""
    start = int(answer["answer_start"])
    text = str(answer["text"])
    if len(converted) == len(context):
        span = converted[start : start + len(text)]
        # A span converted within its context may differ from the answer converted alone
        # (a phrase cut by the answer's edge): the context's characters are what the model reads.
        if context[start : start + len(text)] == text:
            return {**answer, "text": span, "answer_start": start}, False
    new_text = converter.convert(text)
    near = len(converter.convert(context[:start]))
    found = _locate(converted, new_text, near)
    if found is None:
        return None, False
    return {**answer, "text": new_text, "answer_start": found}, found != start


def convert_squad(
    data: dict[str, Any], converter: Converter
) -> tuple[dict[str, Any], ConversionCounts]:
    """A SQuAD-format dict converted (titles, contexts, questions, answers), and the counts."""
    counts = ConversionCounts()
    articles = []
    for article in data["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            converted = converter.convert(context)
            counts.contexts += 1
            counts.contexts_length_changed += len(converted) != len(context)
            qas = []
            for qa in paragraph["qas"]:
                counts.questions += 1
                answers = []
                for answer in qa.get("answers", []):
                    counts.answers += 1
                    new, moved = convert_answer(converter, context, converted, answer)
                    if new is None:
                        counts.answers_dropped += 1
                        continue
                    counts.answers_moved += moved
                    answers.append(new)
                if qa.get("answers") and not answers:
                    counts.questions_dropped += 1
                    continue
                qas.append(
                    {**qa, "question": converter.convert(qa["question"]), "answers": answers}
                )
            paragraphs.append({**paragraph, "context": converted, "qas": qas})
        title = article.get("title")
        converted_article = {**article, "paragraphs": paragraphs}
        if isinstance(title, str):
            converted_article["title"] = converter.convert(title)
        articles.append(converted_article)
    return {**data, "data": articles}, counts


def main(argv: list[str] | None = None) -> ConversionCounts:
    parser = argparse.ArgumentParser(
        prog="python -m training.simplified",
        description="Convert a SQuAD-format file (e.g. DRCD) from Traditional to Simplified "
        "Chinese with OpenCC, keeping answer offsets right.",
    )
    parser.add_argument("source", type=Path, help="SQuAD-format JSON (Traditional Chinese)")
    parser.add_argument("target", type=Path, help="where the Simplified file is written")
    parser.add_argument("--config", default=OPENCC_CONFIG, help="OpenCC configuration")
    args = parser.parse_args(argv)
    data = json.loads(args.source.read_text(encoding="utf-8"))
    converted, counts = convert_squad(data, make_converter(args.config))
    args.target.parent.mkdir(parents=True, exist_ok=True)
    args.target.write_text(json.dumps(converted, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(asdict(counts)), file=sys.stderr)
    return counts


if __name__ == "__main__":
    main()
