"""Readers of question-answering data into one shape: a question and the passages it reads.

Two formats, told apart by their keys:

* WebQA / SogouQA, as bert4keras prepares them: a JSON list (or a dict keyed by id, or JSON
  lines) of `{"question": str, "passages": [{"passage": str, "answer": str}]}`; an empty answer
  (or "no_answer", SogouQA's marker) means the passage does not hold it.
* SQuAD / CMRC 2018: `{"data": [{"paragraphs": [{"context": str, "qas": [{"question": str,
  "answers": [{"text": str, "answer_start": int}]}]}]}]}`; each question becomes an example with
  one passage (its context) and all of its gold answers.

Contexts longer than the model reads are cut into overlapping windows by `window_passages`, each
window a passage of its own that holds the answer or not, so training teaches "no answer here"
on the windows without it and decoding votes across the windows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from models.data_errors import DataError, read_text

# SogouQA marks a passage without the answer with this string instead of an empty answer.
NO_ANSWER_MARKERS = frozenset({"", "no_answer"})
FORMATS = ("webqa", "squad")


@dataclass(frozen=True)
class Passage:
    """A passage and the answer it holds.

    Attributes:
        text: the passage.
        answer: the answer as it appears in the passage, or None when it holds none.
        answer_start: character offset of `answer` in `text` when the data gives it (SQuAD).
        starts_cut, ends_cut: the passage is a window of a longer one that goes on before it,
            after it (`window_passages`): decoding does not vote on an answer's edges beyond
            them (`models.qa.decoding.decode_batch(cuts=)`).
    """

    text: str
    answer: str | None = None
    answer_start: int | None = None
    starts_cut: bool = False
    ends_cut: bool = False


@dataclass(frozen=True)
class QAExample:
    """A question with the passages to read.

    Attributes:
        question: the question.
        passages: the passages, each with its answer or None.
        answers: every gold answer (SQuAD's dev sets give several); empty -> taken from the
            passages (`gold_answers`).
        id: the example's id in its file, if any.
    """

    question: str
    passages: list[Passage]
    answers: list[str] = field(default_factory=list)
    id: str | None = None

    def gold_answers(self) -> list[str]:
        """The gold answers: `answers` if given, else the distinct passage answers; [] if none."""
        if self.answers:
            return list(self.answers)
        seen: dict[str, None] = {}
        for passage in self.passages:
            if passage.answer:
                seen.setdefault(passage.answer)
        return list(seen)

    @property
    def has_answer(self) -> bool:
        return bool(self.gold_answers())


def _answer_text(value: Any) -> str | None:
    """A WebQA/SogouQA answer field -> the answer or None (lists: the first answer)."""
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), "")
    if value is None:
        return None
    text = str(value).strip()
    return None if text in NO_ANSWER_MARKERS else text


def _text(record: Any, key: str, where: str) -> str:
    """`record[key]` when it is a string; DataError naming `where` otherwise (a null or a number
    read as "None" or "5" would train on text the data never held)."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise DataError(f"{where}: no {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, got {_json_kind(value)}")
    return value


def _list(record: dict[str, Any], key: str, where: str) -> list[Any]:
    """`record[key]` when it is a list (missing or null: empty); DataError otherwise."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"{where}: {key!r} must be a list, got {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {value!r:.40}"


def _webqa_example(record: Any, key: str | None, where: str) -> QAExample:
    question = _text(record, "question", where)
    passages = []
    for j, item in enumerate(_list(record, "passages", where)):
        if isinstance(item, str):
            passages.append(Passage(item))
        else:
            text = _text(item, "passage", f"{where}, passage {j}")
            passages.append(Passage(text, _answer_text(item.get("answer"))))
    identifier = record.get("id", key)
    return QAExample(
        question=question,
        passages=passages,
        id=None if identifier is None else str(identifier),
    )


def _squad_examples(document: dict[str, Any]) -> Iterable[QAExample]:
    for a, article in enumerate(document["data"]):
        where_article = f"data[{a}]"
        if not isinstance(article, dict):
            raise DataError(f"{where_article}: expected a JSON object")
        for p, paragraph in enumerate(_list(article, "paragraphs", where_article)):
            where_paragraph = f"{where_article}.paragraphs[{p}]"
            context = _text(paragraph, "context", where_paragraph)
            for q, qa in enumerate(_list(paragraph, "qas", where_paragraph)):
                where = f"{where_paragraph}.qas[{q}]"
                question = _text(qa, "question", where)
                answers = [
                    a
                    for a in _list(qa, "answers", where)
                    if isinstance(a, dict) and str(a.get("text", "")).strip()
                ]
                texts = list(dict.fromkeys(str(a["text"]).strip() for a in answers))
                first = answers[0] if answers and not qa.get("is_impossible", False) else None
                start = first.get("answer_start") if first else None
                if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
                    raise DataError(f"{where}: answer_start must be an integer, got {start!r:.40}")
                passage = Passage(
                    context,
                    str(first["text"]).strip() if first else None,
                    start if start is not None and start >= 0 else None,
                )
                yield QAExample(
                    question=question,
                    passages=[passage],
                    answers=[] if first is None else texts,
                    id=None if qa.get("id") is None else str(qa["id"]),
                )


def detect_format(document: Any) -> str:
    """ "squad" for `{"data": [...paragraphs...]}`, "webqa" for question/passages records."""
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return "squad"
    records = (
        document
        if isinstance(document, list)
        else list(document.values())
        if isinstance(document, dict)
        else []
    )
    if records and all(isinstance(r, dict) and "question" in r for r in records[:10]):
        return "webqa"
    raise DataError(
        "unknown QA format: expected SQuAD/CMRC {'data': [...]} or a list/dict of "
        "{'question', 'passages'} records"
    )


def parse_qa_document(document: Any) -> list[QAExample]:
    """Examples of an already loaded JSON document (see the module docstring for formats).

    Raises:
        DataError: another format, or a record without its question or passages' text, naming
            the record.
    """
    if detect_format(document) == "squad":
        return list(_squad_examples(document))
    if isinstance(document, dict):
        return [
            _webqa_example(record, str(key), f"record {key!r}") for key, record in document.items()
        ]
    return [_webqa_example(record, None, f"record {i}") for i, record in enumerate(document)]


def _load_json_or_lines(text: str, path: str | os.PathLike[str]) -> Any:
    if not text.strip():
        raise DataError(f"{path}: an empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # JSON lines: one record per line.
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as line_error:
                # Past a first line that reads alone, the file is JSON lines: name the line.
                where = (number, line_error.colno) if records else (error.lineno, error.colno)
                why = line_error.msg if records else error.msg
                raise DataError(
                    f"{path}: not JSON ({why} at line {where[0]}, column {where[1]})"
                ) from None
        return records


def read_qa_file(path: str | os.PathLike[str]) -> list[QAExample]:
    """Reads a WebQA/SogouQA or SQuAD/CMRC file (format detected from its content).

    Args:
        path: a .json file (or JSON lines of WebQA records), UTF-8 (a BOM is accepted).

    Returns:
        The examples, in file order.

    Raises:
        DataError: no such file, not UTF-8, not JSON, another format, or a record without its
            question or passages' text (`parse_qa_document`); the message names the file.
    """
    try:
        return parse_qa_document(_load_json_or_lines(read_text(path), path))
    except DataError as error:
        if str(error).startswith(str(path)):
            raise
        raise DataError(f"{path}: {error}") from None


def write_webqa_file(path: str | os.PathLike[str], examples: Sequence[QAExample]) -> None:
    """Writes examples as a WebQA/SogouQA JSON list (what `read_qa_file` reads back)."""
    records = [
        {
            "question": ex.question,
            "passages": [{"passage": p.text, "answer": p.answer or ""} for p in ex.passages],
            **({"id": ex.id} if ex.id is not None else {}),
        }
        for ex in examples
    ]
    Path(path).write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Where the windows of a sequence of `length` start: every `stride` from 0, and the last one
    ending at the sequence's end; one window at 0 when the sequence fits.

    Args:
        length: the sequence's length (characters, or tokens).
        window: longest window.
        stride: offset between window starts, 0 < stride <= window.
    """
    if window < 1 or not 0 < stride <= window:
        raise ValueError(f"need 0 < stride ({stride}) <= window ({window})")
    if length <= window:
        return [0]
    return [*range(0, length - window, stride), length - window]


def window_passages(example: QAExample, window_chars: int, stride_chars: int) -> QAExample:
    """Cuts passages longer than `window_chars` into overlapping windows.

    Each window starts `stride_chars` after the one before, the last one ends at the passage's
    end. A window holds the answer when the answer's text occurs in it (so every window that a
    reader could answer from is trained to answer); other windows get no answer. Passages that
    fit are kept as they are, and so are the gold answers.

    Args:
        example: the example.
        window_chars: longest window in characters (about the passage tokens the model reads:
            a Chinese character is one WordPiece).
        stride_chars: offset between window starts, at most `window_chars`.
    """
    passages: list[Passage] = []
    for passage in example.passages:
        starts = window_starts(len(passage.text), window_chars, stride_chars)
        if len(passage.text) <= window_chars:
            passages.append(passage)
            continue
        for start in starts:
            text = passage.text[start : start + window_chars]
            offset = text.find(passage.answer) if passage.answer else -1
            held = offset >= 0
            passages.append(
                Passage(
                    text,
                    passage.answer if held else None,
                    offset if held else None,
                    starts_cut=start > 0,
                    ends_cut=start + window_chars < len(passage.text),
                )
            )
    return replace(example, passages=passages, answers=example.gold_answers())
