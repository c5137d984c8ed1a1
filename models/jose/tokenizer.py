"""Tokenisers and the vocabulary for JoSE (Chinese and space-separated languages).

The tokenizer kind is chosen at training time and recorded in the manifest
(`Tokenizer.to_config()`), so that the service splits text exactly as the job did. A kind's
splitting never changes once models carry its name: "whitespace" (`str.split`, punctuation left
on the words) stays for the versions trained with it, and the punctuation-aware splitting that
replaced it for training is a kind of its own, "basic".
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast

from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

TokenizerKind = Literal["jieba", "char", "basic", "whitespace"]
TOKENIZER_KINDS: tuple[TokenizerKind, ...] = ("jieba", "char", "basic", "whitespace")

PAD_TOKEN = "<pad>"
PAD_ID = 0

# "char" kind: each non-space character is a token, except that runs of ASCII letters and
# digits stay one word ("iPhone6" is one token, "手机" is two), so mixed text is not shredded.
_CHAR_TOKEN_RE = re.compile(r"[A-Za-z0-9]+|\S")

# "basic" kind: BERT's BasicTokenizer (Devlin et al. 2019, Google's `tokenization.py`) as the
# `tokenizers` library implements it: control characters dropped, each CJK ideograph a word of its
# own, then words split on whitespace and on every punctuation character ("program," ->
# "program", ","). Accent stripping is a choice of its own here, off unless asked: JoSE learns its
# vocabulary from the corpus, so nothing forces the folding BERT's fixed uncased vocabulary needs,
# and it merges words that differ (French "où" / "ou", most Vietnamese syllables).
_BASIC_PRE_TOKENIZER = BertPreTokenizer()
# The library's way costs about 0.1 ms a sentence (its normaliser tracks offsets we do not use),
# a quarter of a 16-text fold-in batch (bench/jose_tokenizer.py). On plain ASCII, the common case
# of space-separated text, BERT's rules come down to: lower-case, every ASCII punctuation
# character (its `_is_punctuation`: all printable non-alphanumerics) a token, split on blanks; so
# that text is split by `str.translate` + `str.split` instead, and tests check that it gives
# what the library gives. Any other text, or ASCII with control characters (which BERT drops),
# goes to the library.
_ASCII_PUNCTUATION = [chr(c) for c in range(33, 127) if not chr(c).isalnum()]
_SPACE_AROUND_PUNCTUATION = str.maketrans({c: f" {c} " for c in _ASCII_PUNCTUATION})
_ASCII_CONTROL = frozenset(chr(c) for c in (*range(32), 127)) - {"\t", "\n", "\r"}


def basic_split_by_library(normalizer: BertNormalizer, text: str) -> list[str]:
    """The "basic" kind's words of `text` as the `tokenizers` library splits them."""
    normalized = normalizer.normalize_str(text)
    return [word for word, _ in _BASIC_PRE_TOKENIZER.pre_tokenize_str(normalized)]


_jieba_lock = threading.Lock()
_jieba_module: Any = None


def _jieba() -> Any:
    """Imports and initialises jieba once, quietly, under a lock (safe for concurrent callers)."""
    global _jieba_module
    if _jieba_module is None:
        with _jieba_lock:
            if _jieba_module is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                # Building the prefix dictionary is the slow, non-thread-safe part of jieba;
                # doing it here under the lock means later lcut calls only read it.
                jieba.initialize()
                _jieba_module = jieba
    return _jieba_module


class Tokenizer:
    """Splits text into word tokens.

    Args:
        kind: "jieba" (Chinese word segmentation with `jieba.lcut`), "char" (one token per
            non-space character, ASCII letter/digit runs kept whole), "basic" (BERT's basic
            tokenizer: punctuation split off the words, each CJK ideograph a word) or
            "whitespace" (`str.split`, punctuation left attached: only for versions trained
            with it, which must keep splitting as they were trained).
        lowercase: lower-case the text before splitting.
        strip_accents: "basic" only: also remove accents ("café" -> "cafe"), as BERT's uncased
            models do.

    Example:
        >>> Tokenizer("char").tokenize("手机iPhone6 好")
        ['手', '机', 'iphone6', '好']
        >>> Tokenizer("basic").tokenize("The program, permitted.")
        ['the', 'program', ',', 'permitted', '.']
    """

    def __init__(
        self, kind: TokenizerKind, lowercase: bool = True, strip_accents: bool = False
    ) -> None:
        if kind not in TOKENIZER_KINDS:
            raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {TOKENIZER_KINDS}")
        if strip_accents and kind != "basic":
            raise ValueError(f"strip_accents applies to the 'basic' kind only, not {kind!r}")
        self.kind: TokenizerKind = kind
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self._normalizer = (
            BertNormalizer(
                clean_text=True,
                handle_chinese_chars=True,
                strip_accents=strip_accents,
                lowercase=lowercase,
            )
            if kind == "basic"
            else None
        )

    def tokenize(self, text: str) -> list[str]:
        """Returns the tokens of `text`; never returns empty or whitespace-only tokens."""
        if self._normalizer is not None:
            if text.isascii() and _ASCII_CONTROL.isdisjoint(text):
                if self.lowercase:
                    text = text.lower()
                return text.translate(_SPACE_AROUND_PUNCTUATION).split()
            return basic_split_by_library(self._normalizer, text)
        if self.lowercase:
            text = text.lower()
        if self.kind == "whitespace":
            return text.split()
        if self.kind == "char":
            return _CHAR_TOKEN_RE.findall(text)
        return [tok for tok in _jieba().lcut(text) if tok.strip()]

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"kind": self.kind, "lowercase": self.lowercase}
        if self.kind == "basic":
            config["strip_accents"] = self.strip_accents
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        kind = cast(TokenizerKind, config["kind"])
        return cls(
            kind=kind,
            lowercase=bool(config.get("lowercase", True)),
            strip_accents=bool(config.get("strip_accents", False)),
        )

    def __repr__(self) -> str:
        accents = f", strip_accents={self.strip_accents}" if self.kind == "basic" else ""
        return f"Tokenizer(kind={self.kind!r}, lowercase={self.lowercase}{accents})"


class Vocabulary:
    """Word <-> id map; id 0 is the reserved padding token "<pad>".

    Args:
        words: the words in id order, `words[0]` must be "<pad>".
        counts: optional corpus counts aligned with `words` (count of "<pad>" is 0); training
            needs them for subsampling and the negative-sampling table.

    Example:
        >>> vocab = Vocabulary.build([["a", "b", "a"], ["a", "c"]], min_count=1)
        >>> vocab.words, vocab.encode(["a", "zzz", "c"])
        (['<pad>', 'a', 'b', 'c'], [1, 3])
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int] | None = None) -> None:
        if not words or words[0] != PAD_TOKEN:
            raise ValueError(f"the first word must be {PAD_TOKEN!r}")
        if counts is not None and len(counts) != len(words):
            raise ValueError("counts must align with words")
        self.words = list(words)
        self.counts = None if counts is None else [int(c) for c in counts]
        self._index = {w: i for i, w in enumerate(self.words)}
        if len(self._index) != len(self.words):
            raise ValueError("duplicate words in vocabulary")

    @classmethod
    def build(
        cls,
        corpus: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Counts tokens and keeps those seen at least `min_count` times.

        Args:
            corpus: documents as token lists.
            min_count: drop words rarer than this (the C code's `-min-count`).
            max_size: keep at most this many words (excluding "<pad>"), most frequent first.

        Words are ordered by decreasing count, ties broken by the word, so that the ids do not
        depend on the order of the documents.
        """
        counter: Counter[str] = Counter()
        for tokens in corpus:
            counter.update(tokens)
        counter.pop(PAD_TOKEN, None)
        # A word with whitespace inside could not be saved one per line; tokenizers never make one.
        kept = [(w, c) for w, c in counter.items() if c >= min_count and not _has_space(w)]
        kept.sort(key=lambda wc: (-wc[1], wc[0]))
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD_TOKEN] + [w for w, _ in kept], [0] + [c for _, c in kept])

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Maps tokens to ids, dropping out-of-vocabulary tokens (and "<pad>" itself)."""
        index = self._index
        return [i for i in (index.get(t, PAD_ID) for t in tokens) if i != PAD_ID]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes one word per line; line i is the word with id i."""
        with open(path, "w", encoding="utf-8") as f:
            for word in self.words:
                f.write(word + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        with open(path, encoding="utf-8") as f:
            words = [line.rstrip("\n") for line in f]
        while words and words[-1] == "":
            words.pop()
        return cls(words)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __getitem__(self, word: str) -> int:
        return self._index[word]


def _has_space(word: str) -> bool:
    return word == "" or any(ch.isspace() for ch in word)
