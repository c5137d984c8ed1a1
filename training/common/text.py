"""Text-model helpers the BERT-based jobs (qa, generation) share: a character vocabulary for a
from-scratch model, length-sorted batches, and a sinusoid start for the position table."""

from __future__ import annotations

import math
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from models.bert.bert_backbone import BertBackbone
from models.bert.tokenizer import CLS, MASK, PAD, SEP, UNK
from training.common.data import epoch_permutation

SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
# Batches are drawn from groups of this many batches sorted by length (less padding).
LENGTH_SORT_BATCHES = 50
# Rows are padded to a multiple of this, so that the training step sees few distinct shapes.
PAD_MULTIPLE = 8
# From scratch, the position table starts as sinusoids (Vaswani et al. 2017, Sec. 3.5), in which
# "the token k places before" is a fixed linear map of the position: the previous-token
# attention that copying needs is then quick to learn, where a random table has to discover it
# first. Scaled to the RMS of BERT's N(0, 0.02) initialiser.
POSITION_INIT_RMS = 0.02
SINUSOID_BASE = 10000.0


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


def write_vocab(path: Path, vocab: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside then renamed: the workers of a distributed run write the same vocabulary into
    # the shared checkpoint folder at once, and none may read a half-written file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    os.replace(partial, path)


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


def pad_width(lengths: Iterable[int]) -> int:
    """The longest length rounded up to `PAD_MULTIPLE`."""
    return int(math.ceil(max(lengths) / PAD_MULTIPLE) * PAD_MULTIPLE)


def sinusoid_table(length: int, width: int) -> np.ndarray:
    """[length, width] sin/cos position table (Vaswani et al. 2017, Eq. in Sec. 3.5)."""
    positions = np.arange(length)[:, None]
    rates = SINUSOID_BASE ** (-np.arange(0, width, 2) / width)
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: width // 2])
    return table


def init_positions_as_sinusoids(backbone: BertBackbone) -> None:
    """Sets the position table of a fresh backbone to scaled sinusoids (`POSITION_INIT_RMS`)."""
    variable = backbone.embeddings.position_embedding.embeddings
    length, width = (int(d) for d in variable.shape)
    table = sinusoid_table(length, width)
    table *= POSITION_INIT_RMS / np.sqrt(np.mean(table**2))
    variable.assign(table.astype(np.float32))
