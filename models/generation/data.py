"""Training data of the conditional LM: texts with a label or a condition vector.

Two formats, told apart by their first non-blank line:

* `text<TAB>label` lines (the label after the last tab; bert4keras' sentiment data), after an
  optional header line (`is_header`);
* JSON lines `{"text": ..., "vector": [floats]}` for vector-conditioned models (image or
  sentence features), every vector of the same length.

Texts longer than the model's length are cut at sentence punctuation into pieces that fit, each a
sample with the text's condition (a single sentence longer than that is cut where it must be).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.bert.tokenizer import BertTokenizer
from models.data_errors import DataError, read_text

# A sentence ends after one of these (and any closing quotes or brackets after it).
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;…\n])(?![”’」』）)\]])")


# What a header line names its columns (compared in lower case): a first line such as
# `text<TAB>label`, `sentence<TAB>sentiment` or `文本<TAB>标签` is no text of a class "label".
TEXT_COLUMN_NAMES = frozenset(
    ("text", "texts", "sentence", "sentences", "content", "document", "review", "comment",
     "query", "文本", "内容", "句子", "评论")
)  # fmt: skip
LABEL_COLUMN_NAMES = frozenset(
    ("label", "labels", "class", "category", "tag", "target", "topic", "sentiment", "intent",
     "标签", "类别", "分类", "类型", "情感")
)  # fmt: skip


def is_header(text: str, label: str, other_labels: Iterable[str]) -> bool:
    """Whether the first line, cut into `text` and `label` at its last tab, is a header: one of
    its cells is a column name (TEXT_COLUMN_NAMES, LABEL_COLUMN_NAMES) and its label is on no
    other line (a one-word text "text" of a class that other lines have is a text).

    Raises:
        DataError: the header names the columns the other way round (`label<TAB>text`): every
            line's text would be read as its label (the caller adds the place).
    """
    text, label = text.strip().lower(), label.strip().lower()
    if not text or not label:  # a header names both columns
        return False
    if not (text in TEXT_COLUMN_NAMES or label in LABEL_COLUMN_NAMES or text in LABEL_COLUMN_NAMES):
        return False
    if any(other.strip().lower() == label for other in other_labels):
        return False
    if text in LABEL_COLUMN_NAMES and label in TEXT_COLUMN_NAMES:
        raise DataError(
            "a header line label<TAB>text: the lines are text<TAB>label (the label after the last "
            "tab), and every text would be read as a label; swap the columns (e.g. awk -F'\\t' "
            "-v OFS='\\t' '{print $2, $1}')"
        )
    return text in TEXT_COLUMN_NAMES or label in LABEL_COLUMN_NAMES


@dataclass(frozen=True)
class ConditionalText:
    """One training text and its condition: a label name or a vector."""

    text: str
    label: str | None = None
    vector: tuple[float, ...] | None = None


def read_conditional_texts(path: str | os.PathLike[str]) -> list[ConditionalText]:
    """Reads `text<TAB>label` lines or JSON lines with `text` and `vector` (see the module). A
    first line of `text<TAB>label` that is a header (`is_header`) is skipped.

    Raises:
        DataError: naming the line, for a line of neither form, a line without text, a vector
            with NaN or infinity or of another length than the first; or a file that is missing
            or not UTF-8.
    """
    lines = read_text(path).splitlines()
    first = next((line for line in lines if line.strip()), "")
    as_json = first.lstrip().startswith("{")
    header = None  # the index of a header line
    if not as_json and "\t" in first:
        at = lines.index(first)
        text, _, label = first.rpartition("\t")
        others = (line.rpartition("\t")[2] for line in lines[at + 1 :] if line.strip())
        try:
            header = at if is_header(text, label, others) else None
        except DataError as error:
            raise DataError(f"{path}:{at + 1}: {error}") from None
    texts: list[ConditionalText] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or number - 1 == header:
            continue
        where = f"{path}:{number}"
        if as_json:
            try:
                record = json.loads(line)
                vector = tuple(float(v) for v in record["vector"])
                text = str(record["text"])
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{where}: not a JSON object with text and vector") from None
            if not all(math.isfinite(v) for v in vector):
                raise DataError(f"{where}: the vector holds NaN or infinity")
            if not vector:
                raise DataError(f"{where}: an empty vector")
            if texts and texts[0].vector is not None and len(vector) != len(texts[0].vector):
                raise DataError(
                    f"{where}: vector of {len(vector)}, earlier ones {len(texts[0].vector)}"
                )
            item = ConditionalText(text.strip(), vector=vector)
        else:
            text, tab, label = line.rpartition("\t")
            if not tab or not label.strip():
                raise DataError(f"{where}: expected text<TAB>label")
            item = ConditionalText(text.strip(), label=label.strip())
        if not item.text:
            raise DataError(f"{where}: no text")
        texts.append(item)
    return texts


def label_names(texts: Iterable[ConditionalText]) -> list[str]:
    """The distinct labels, sorted (numbers numerically): the model's condition order."""
    names = {t.label for t in texts if t.label is not None}
    return sorted(names, key=lambda n: (0, int(n), n) if n.lstrip("-").isdigit() else (1, 0, n))


def cut_text(text: str, max_chars: int) -> list[str]:
    """Pieces of at most `max_chars` characters, cut after sentence punctuation where possible
    (whole sentences packed greedily into each piece)."""
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if len(current) + len(sentence) > max_chars:
            pieces.append(current)
            current = ""
        current += sentence
    if current.strip():
        pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]


@dataclass
class LMSample:
    """`[CLS] text [SEP]` ids and the text's condition (a label index or a vector)."""

    token_ids: list[int]
    label_id: int = 0
    vector: tuple[float, ...] | None = None


def build_samples(
    tokenizer: BertTokenizer,
    texts: Sequence[ConditionalText],
    max_length: int,
    labels: Sequence[str] | None,
) -> list[LMSample]:
    """Samples of at most `max_length` tokens ([CLS] and [SEP] included), long texts cut.

    Args:
        tokenizer: the model's tokenizer.
        texts: the texts.
        max_length: the longest sample.
        labels: the model's labels (a text's label must be one of them), or None for vectors.
    """
    index = {name: i for i, name in enumerate(labels or ())}
    samples = []
    for item in texts:
        label_id = 0
        if labels is not None:
            if item.label not in index:
                raise DataError(f"label {item.label!r} is not one of {list(labels)}")
            label_id = index[item.label]
        for piece in cut_text(item.text, max_length - 2):
            ids = tokenizer.piece_ids(piece)[: max_length - 2]
            if ids:
                samples.append(
                    LMSample([tokenizer.cls_id, *ids, tokenizer.sep_id], label_id, item.vector)
                )
    return samples


def pad_lm_samples(
    samples: Sequence[LMSample], pad_id: int, pad_to: int, with_vectors: bool
) -> dict[str, np.ndarray]:
    """Model inputs: token_ids, padding_mask, loss_mask ([B, L] int32; the loss covers every
    real token after [CLS]) and label_ids [B] int32 or condition [B, C] float32."""
    batch = len(samples)
    token_ids = np.full((batch, pad_to), pad_id, np.int32)
    padding = np.zeros((batch, pad_to), np.int32)
    for i, sample in enumerate(samples):
        token_ids[i, : len(sample.token_ids)] = sample.token_ids
        padding[i, : len(sample.token_ids)] = 1
    loss_mask = padding.copy()
    loss_mask[:, 0] = 0
    out = {"token_ids": token_ids, "padding_mask": padding, "loss_mask": loss_mask}
    if with_vectors:
        out["condition"] = np.array([s.vector for s in samples], np.float32)
    else:
        out["label_ids"] = np.array([s.label_id for s in samples], np.int32)
    return out
