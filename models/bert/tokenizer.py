"""WordPiece tokenisation from a BERT checkpoint's vocab.txt, on the `tokenizers` library.

The normaliser and pre-tokeniser are BERT's (`BertNormalizer`, `BertPreTokenizer`): text is
cleaned, optionally lower-cased and stripped of accents, every CJK character becomes a word of its
own (as Google's `tokenization.py` does with `_tokenize_chinese_chars`), words split on whitespace
and punctuation, and each word into WordPieces by greedy longest match (Wu et al. 2016).

Sequences are packed as BERT expects: `[CLS] a [SEP]` with segment 0, and for a pair
`[CLS] a [SEP] b [SEP]` with b (and its [SEP]) in segment 1.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np
from tokenizers import BertWordPieceTokenizer

VOCAB_FILE = "vocab.txt"
# Hugging Face's tokenizer settings beside vocab.txt (do_lower_case, strip_accents).
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CLS, SEP, PAD, MASK, UNK = "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"
# Special tokens added to every single text / text pair.
SPECIAL_TOKENS_SINGLE = 2
SPECIAL_TOKENS_PAIR = 3


@cache
def _mark_runs() -> re.Pattern[str]:
    """Runs of combining marks (Unicode categories Mn, Mc, Me): the accents that stripping
    accents removes, and no piece's offsets then cover. Built on first use (0.13 s)."""
    ranges: list[str] = []
    start = previous = -2
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith("M"):
            if code != previous + 1:
                if start >= 0:
                    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
                start = code
            previous = code
    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
    return re.compile(f"[{''.join(ranges)}]+")


@dataclass
class EncodedBatch:
    """A padded batch, the backbone's inputs.

    Attributes:
        token_ids: [B, L] int32, [PAD] after each row's end.
        segment_ids: [B, L] int32.
        padding_mask: [B, L] int32, 1 for real tokens.
    """

    token_ids: np.ndarray
    segment_ids: np.ndarray
    padding_mask: np.ndarray

    def as_inputs(self) -> dict[str, np.ndarray]:
        return {
            "token_ids": self.token_ids,
            "segment_ids": self.segment_ids,
            "padding_mask": self.padding_mask,
        }


class BertTokenizer:
    """BERT WordPiece tokenizer with [CLS]/[SEP] packing, truncation and batch padding.

    Args:
        vocab_path: a vocab.txt, one token per line, line i is id i.
        lowercase: lower-case (and, unless `strip_accents` says otherwise, strip accents);
            True for uncased and Chinese checkpoints.
        strip_accents: None follows `lowercase`, as in Google's and Hugging Face's BERT.
        max_length: default longest packed sequence, special tokens included.

    Example:
        >>> tok = BertTokenizer.from_folder("path/to/checkpoint")
        >>> ids, segments = tok.encode_pair("question", "passage")
    """

    def __init__(
        self,
        vocab_path: str | Path,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        max_length: int = 512,
    ) -> None:
        self.vocab_path = Path(vocab_path)
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        # Whether the normaliser drops combining marks (None follows lowercase, as the library).
        self._strips_marks = lowercase if strip_accents is None else strip_accents
        self.max_length = max_length
        # Line i is token i (a repeated line keeps its last id, as Google's `load_vocab` does).
        lines = self.vocab_path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        vocab = {token.rstrip("\r"): i for i, token in enumerate(lines)}
        missing = [t for t in (CLS, SEP, PAD, MASK, UNK) if t not in vocab]
        if missing:
            raise ValueError(f"{self.vocab_path} lacks the special tokens {missing}")
        self._tokenizer = BertWordPieceTokenizer(
            vocab,
            lowercase=lowercase,
            strip_accents=strip_accents,
            handle_chinese_chars=True,
            clean_text=True,
        )
        # User text is text: "[SEP]" typed in a passage is "[", "sep", "]" as in Google's
        # `tokenization.py`, never the separator (the library matches its special tokens in raw
        # text otherwise, so a passage could end itself early or forge a question). Packing adds
        # the special tokens by id.
        self._tokenizer._tokenizer.encode_special_tokens = True

    @classmethod
    def from_folder(cls, folder: str | Path, max_length: int = 512) -> BertTokenizer:
        """From a checkpoint folder's vocab.txt, reading tokenizer_config.json when present."""
        folder = Path(folder)
        lowercase, strip_accents = True, None
        config_path = folder / TOKENIZER_CONFIG_FILE
        if config_path.exists():
            config = json.loads(config_path.read_text(encoding="utf-8"))
            lowercase = bool(config.get("do_lower_case", lowercase))
            strip_accents = config.get("strip_accents", strip_accents)
        return cls(folder / VOCAB_FILE, lowercase, strip_accents, max_length)

    # Vocabulary.
    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    @cached_property
    def continues_word(self) -> np.ndarray:
        """[vocab_size] bool: the ids of WordPieces that continue a word ("##ing", the ##9 of
        1 ##9 ##8 ##9), which an extractive answer neither starts at nor ends before."""
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        # ids run to the highest one: a repeated line keeps its last id and leaves a gap
        out = np.zeros(max(self.vocab_size, max(vocab.values()) + 1), bool)
        for token, index in vocab.items():
            out[index] = token.startswith("##") and len(token) > 2
        return out

    def token_to_id(self, token: str) -> int:
        """Id of a token; [UNK]'s id when the vocabulary lacks it."""
        found = self._tokenizer.token_to_id(token)
        return self.unk_id if found is None else int(found)

    def id_to_token(self, token_id: int) -> str:
        token = self._tokenizer.id_to_token(int(token_id))
        if token is None:
            raise KeyError(f"id {token_id} is outside the vocabulary of {self.vocab_size}")
        return str(token)

    @property
    def cls_id(self) -> int:
        return self.token_to_id(CLS)

    @property
    def sep_id(self) -> int:
        return self.token_to_id(SEP)

    @property
    def pad_id(self) -> int:
        return self.token_to_id(PAD)

    @property
    def mask_id(self) -> int:
        return self.token_to_id(MASK)

    @property
    def unk_id(self) -> int:
        return int(self._tokenizer.token_to_id(UNK))

    # Tokenising.
    def normalize(self, text: str) -> str:
        """Text as the tokenizer's normaliser gives it to WordPiece (cleaned, lower-cased and
        stripped of accents as configured, a blank around each CJK character)."""
        return str(self._tokenizer.normalize(text))

    def tokenize(self, text: str) -> list[str]:
        """WordPieces of text, without special tokens."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).tokens)

    def piece_ids(self, text: str) -> list[int]:
        """WordPiece ids of text, without special tokens."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def piece_ids_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """WordPiece ids of text and each piece's characters [start, end) in `text` (as
        `piece_ids`, the same ids)."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        # The library's offsets are already (int, int) tuples: no copy of each (16% of the
        # tokenisation of an 8,192-character passage).
        offsets = list(encoding.offsets)
        if self._strips_marks and not text.isascii():
            _cover_stripped_marks(text, offsets)
        return list(encoding.ids), offsets

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of WordPiece ids ("##" pieces joined to the word before them)."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def encode(self, text: str, max_length: int | None = None) -> tuple[list[int], list[int]]:
        """`[CLS] text [SEP]`, truncated to max_length -> (token ids, segment ids)."""
        return self._pack(self.piece_ids(text), None, max_length or self.max_length)

    def encode_pair(
        self, first: str, second: str, max_length: int | None = None
    ) -> tuple[list[int], list[int]]:
        """`[CLS] first [SEP] second [SEP]` -> (ids, segment ids), longest-first truncation."""
        return self._pack(
            self.piece_ids(first), self.piece_ids(second), max_length or self.max_length
        )

    def encode_batch(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        max_length: int | None = None,
        pad_to: int | None = None,
    ) -> EncodedBatch:
        """Encode texts (or text pairs) and pad to the longest row, or to `pad_to`.

        Args:
            texts: first segments.
            pairs: second segments, one per text, or None.
            max_length: longest packed row (default `self.max_length`).
            pad_to: pad every row to this length (a length bucket); at least the longest row.
        """
        limit = max_length or self.max_length
        firsts = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        seconds = (
            self._tokenizer.encode_batch(list(pairs), add_special_tokens=False)
            if pairs is not None
            else None
        )
        if seconds is not None and len(seconds) != len(firsts):
            raise ValueError(f"{len(texts)} texts but {len(seconds)} pairs")
        rows = [
            self._pack(f.ids, None if seconds is None else seconds[i].ids, limit)
            for i, f in enumerate(firsts)
        ]
        longest = max((len(ids) for ids, _ in rows), default=0)
        width = max(longest, pad_to or 0)
        token_ids = np.full((len(rows), width), self.pad_id, np.int32)
        segment_ids = np.zeros((len(rows), width), np.int32)
        padding_mask = np.zeros((len(rows), width), np.int32)
        for i, (ids, segments) in enumerate(rows):
            token_ids[i, : len(ids)] = ids
            segment_ids[i, : len(ids)] = segments
            padding_mask[i, : len(ids)] = 1
        return EncodedBatch(token_ids, segment_ids, padding_mask)

    def _pack(
        self, first: Sequence[int], second: Sequence[int] | None, max_length: int
    ) -> tuple[list[int], list[int]]:
        a, b = list(first), list(second) if second is not None else None
        budget = max_length - (SPECIAL_TOKENS_SINGLE if b is None else SPECIAL_TOKENS_PAIR)
        if budget < 0:
            raise ValueError(f"max_length {max_length} leaves no room for the special tokens")
        if b is None:
            a = a[:budget]
            return [self.cls_id, *a, self.sep_id], [0] * (len(a) + 2)
        # Longest-first: drop from the end of whichever segment is longer (BERT's
        # `_truncate_seq_pair`), so a short question keeps all its tokens.
        while len(a) + len(b) > budget:
            if len(a) > len(b):
                a.pop()
            else:
                b.pop()
        ids = [self.cls_id, *a, self.sep_id, *b, self.sep_id]
        return ids, [0] * (len(a) + 2) + [1] * (len(b) + 1)


def tokens_to_text(
    tokenizer: BertTokenizer,
    token_ids: Sequence[int],
    text: str = "",
    words: Mapping[int, str] | None = None,
) -> str:
    """Text of WordPiece ids: CJK characters joined without blanks, "##" pieces glued to
    the piece before, a blank only between two words of letters or digits (of any script but
    CJK ideographs: `_in_word`); special tokens dropped.

    `text`, when given, is the text of the tokens before these: the result continues it, so a
    decoder can extend its text token by token instead of rebuilding it. `words`, when given,
    are texts to write for some ids instead of their tokens (a question's placeholders,
    `models.qa.placeholders`).
    """
    special = {tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, tokenizer.mask_id,
               tokenizer.unk_id}  # fmt: skip
    for token_id in token_ids:
        if int(token_id) in special:
            continue
        piece = words.get(int(token_id)) if words else None
        if piece is None:
            piece = tokenizer.id_to_token(int(token_id))
        elif not piece:
            continue
        if piece.startswith("##"):
            text += piece[2:]
        elif text and _in_word(text[-1]) and _in_word(piece[0]):
            text += " " + piece
        else:
            text += piece
    return text


def _cover_stripped_marks(text: str, offsets: list[tuple[int, int]]) -> None:
    """Runs each piece's end on over the combining marks right after it that no piece covers
    (stripping accents drops them from the normalised text, so the library's offsets of
    "Cafe" + U+0301 end before the accent): an answer or evidence span cut from the passage by
    these offsets keeps the accents of its last character, as the user wrote it."""
    runs = [(m.start(), m.end()) for m in _mark_runs().finditer(text)]
    if not runs:
        return
    ends = {end: i for i, (_, end) in enumerate(offsets)}
    starts = {start for start, _ in offsets}
    for run_start, run_end in runs:
        piece = ends.get(run_start)
        if piece is not None and run_start not in starts:
            offsets[piece] = (offsets[piece][0], run_end)


def _in_word(char: str) -> bool:
    """A character of a word that BERT's pre-tokeniser keeps whole (a letter or digit of any
    script but a CJK ideograph, which is a word of its own): two such words were apart in the
    text ("New York", "Санкт Петербург", "Tokyo ２"), so they are written with a blank."""
    # A letter or digit named "CJK ..." is an ideograph (unified or compatibility).
    return char.isalnum() and not unicodedata.name(char, "").startswith("CJK ")
