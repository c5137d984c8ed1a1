"""Copyable placeholders for the words a QA model's vocabulary lacks (issue 18).

A from-scratch model's vocabulary holds the characters of its training text only (the demo's:
~420), so a user's own value ("乌鲁木齐", "柯基犬", "London") tokenises to `[UNK]`s that the answer
cannot carry. The cure of neural machine translation for rare words (Luong et al. 2015,
"Addressing the Rare Word Problem in Neural Machine Translation"; Jean et al. 2015): the
vocabulary holds K placeholder tokens, `[unused1]` .. `[unusedK]` (the reserved slots Chinese BERT
vocabularies already have), and each distinct text that would become `[UNK]` in a question or its
passages (a CJK character, or a whole Latin word as WordPiece gives it) is written as its own
placeholder, the same one in the question and in every passage, so that a name with an unknown
character still matches between them, and the model copies the placeholder like any token.
Decoding writes each placeholder of an answer back as the text it stands for: the user's own
characters.

Training assigns the placeholders in a random order (`assign(..., rng=)`): every placeholder's
embedding is trained and none can mean "the first unknown"; serving assigns them in order of
first appearance, the question first, then the passages. More distinct unknowns than K: the
later ones stay `[UNK]`. A model trained so says so in its manifest (`placeholders.count`); the
versions without it are read as before.

Pure Python over `models.bert.tokenizer.BertTokenizer`: the trainer (`training.qa`), the
evaluation (`training.qa_eval`, `models.qa.decoding.answer_questions`), the bench and the service
(`service.runtimes.qa`) all map with this module.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from models.bert.tokenizer import BertTokenizer, tokens_to_text

# The placeholder tokens, `[unused1]` .. `[unusedK]` (as numbered in Google's Chinese BERT vocab).
PLACEHOLDER_TOKEN = "[unused{}]"
# K of the demo: more than the distinct unknowns of any demo question (at most ~3 passages of 3
# people, a name and a value each).
DEFAULT_PLACEHOLDER_COUNT = 32


def placeholder_tokens(count: int) -> list[str]:
    """`[unused1]` .. `[unused{count}]`."""
    return [PLACEHOLDER_TOKEN.format(i) for i in range(1, count + 1)]


@dataclass
class Placeholders:
    """One question's mapping: each unknown text's placeholder, and tokenisation through it.

    Attributes:
        tokenizer: the model's tokenizer.
        ids: normalised unknown text -> its placeholder id.
        texts: placeholder id -> the text it stands for (as a passage writes it; the question's
            when no passage holds it).
        all_ids: every placeholder id of the vocabulary (those this question does not use are
            dropped from an answer's text, as `[UNK]` is).
        passage_texts: per passage, placeholder id -> the text as that passage writes it (an
            uncased tokenizer reads "TOKYO" and "Tokyo" as one word: an answer from a passage is
            written as that passage has it).
        rows: the passage of each row the model reads, when a passage is cut into windows
            (`text_of`'s `row`); None: one row per passage.
    """

    tokenizer: BertTokenizer
    ids: dict[str, int]
    texts: dict[int, str]
    all_ids: frozenset[int]
    passage_texts: tuple[dict[int, str], ...] = ()
    rows: tuple[int, ...] | None = None
    _encoded: dict[str, _Encoded] = field(default_factory=dict)

    def piece_ids_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """`BertTokenizer.piece_ids_with_offsets` with each mapped `[UNK]` as its placeholder."""
        encoded = _encode(self.tokenizer, text, self._encoded)
        ids = list(encoded.ids)
        for i, key, _ in encoded.unknowns:
            ids[i] = self.ids.get(key, ids[i])
        return ids, list(encoded.offsets)

    def piece_ids(self, text: str) -> list[int]:
        """`BertTokenizer.piece_ids` with each mapped `[UNK]` as its placeholder."""
        return self.piece_ids_with_offsets(text)[0]

    def text_of(self, token_ids: Sequence[int], row: int | None = None) -> str:
        """`tokens_to_text` with each placeholder written as the text it stands for (one this
        question does not use is dropped, as `[UNK]` is); `row`: the passage (or window) the
        answer is from, whose spelling it takes."""
        unk = self.tokenizer.unk_id
        ids = [unk if t in self.all_ids and t not in self.texts else int(t) for t in token_ids]
        words = self.texts
        passage = row if row is None or self.rows is None else self.rows[row]
        if passage is not None and 0 <= passage < len(self.passage_texts):
            words = {**words, **self.passage_texts[passage]}
        return tokens_to_text(self.tokenizer, ids, words=words)


class PlaceholderMap:
    """Assigns a question's unknown texts to a vocabulary's K placeholders.

    Args:
        tokenizer: the model's tokenizer; its vocabulary must hold `placeholder_tokens(count)`.
        count: K.

    Raises:
        ValueError: the vocabulary lacks a placeholder token.
    """

    def __init__(self, tokenizer: BertTokenizer, count: int = DEFAULT_PLACEHOLDER_COUNT) -> None:
        if count < 1:
            raise ValueError(f"placeholder count must be at least 1, not {count}")
        tokens = placeholder_tokens(count)
        missing = [t for t in tokens if tokenizer.token_to_id(t) == tokenizer.unk_id]
        if missing:
            raise ValueError(
                f"the vocabulary lacks {len(missing)} of the {count} placeholder tokens "
                f"({missing[0]} ...)"
            )
        self.tokenizer = tokenizer
        self.count = count
        self.placeholder_ids = [tokenizer.token_to_id(t) for t in tokens]

    def assign(
        self,
        question: str,
        passages: Sequence[str],
        more: Iterable[str] = (),
        rng: random.Random | None = None,
        question_tokens: int | None = None,
    ) -> Placeholders:
        """The placeholders of one question over its passages.

        Args:
            question: the question.
            passages: its passages (or windows).
            more: more texts read after the passages (training: the answers).
            rng: None: placeholders in order of first appearance (question, passages, `more`);
                a random source: K placeholders drawn in a random order (training).
            question_tokens: the question's WordPieces the model reads (its
                `max_question_tokens`); None: all. Unknown words past them take no placeholder
                (they would spend ones the passages need).

        Returns:
            The mapping; distinct unknowns past the K-th (in order of appearance) have none.
        """
        encoded: dict[str, _Encoded] = {}
        keys: dict[str, str] = {}  # normalised text -> surface
        for i, text in enumerate([question, *passages, *more]):
            found = _encode(self.tokenizer, text, encoded)
            read = len(found.ids) if i or question_tokens is None else question_tokens
            for position, key, surface in found.unknowns:
                if len(keys) >= self.count or position >= read:
                    break
                if key not in keys:
                    keys[key] = surface
        # A passage's spelling is what an answer copies: the question's only when no passage
        # holds the text.
        passage_surface: dict[str, str] = {}
        surfaces: list[dict[str, str]] = []  # per passage: its own spelling of each
        for text in passages:
            own: dict[str, str] = {}
            for _, key, surface in encoded[text].unknowns:
                if key in keys and key not in own:
                    own[key] = surface
            surfaces.append(own)
            for key, surface in own.items():
                passage_surface.setdefault(key, surface)
        slots = (
            list(self.placeholder_ids)
            if rng is None
            else rng.sample(self.placeholder_ids, len(self.placeholder_ids))
        )
        ids_of = {key: slots[i] for i, key in enumerate(keys)}
        texts = {ids_of[key]: passage_surface.get(key, surface) for key, surface in keys.items()}
        passage_texts = tuple({ids_of[k]: v for k, v in own.items()} for own in surfaces)
        return Placeholders(
            self.tokenizer,
            ids_of,
            texts,
            frozenset(self.placeholder_ids),
            passage_texts,
            _encoded=encoded,
        )


def answer_text(
    tokenizer: BertTokenizer,
    token_ids: Sequence[int],
    placeholders: Placeholders | None,
    row: int | None = None,
) -> str:
    """An answer's text: `tokens_to_text`, through the question's placeholders when it has
    them (as passage or window `row` spells them, when known)."""
    if placeholders is None:
        return tokens_to_text(tokenizer, token_ids)
    return placeholders.text_of(token_ids, row)


@dataclass(frozen=True)
class _Encoded:
    """A text's WordPieces and their character offsets, and its unknown ones: (position, the
    text as the tokenizer normalises it, as written), in order. Found once a text per question:
    `assign` and the tokenisation through the mapping both read them."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    unknowns: list[tuple[int, str, str]]


def _encode(tokenizer: BertTokenizer, text: str, cache: dict[str, _Encoded]) -> _Encoded:
    found = cache.get(text)
    if found is None:
        ids, offsets = tokenizer.piece_ids_with_offsets(text)
        unknowns = []
        normalized: dict[str, str] = {}  # an unknown word recurs: normalised once
        for position, (token, (start, end)) in enumerate(zip(ids, offsets, strict=True)):
            if token == tokenizer.unk_id:
                surface = text[start:end]
                if not any(c.isalnum() for c in surface):
                    # Punctuation or a symbol (`]`, `【`, `→`): no name or value of its own,
                    # so no placeholder, which an answer could copy as if it were one.
                    continue
                key = normalized.get(surface)
                if key is None:
                    # "Tom" and "tom" are one word to an uncased tokenizer, so one placeholder.
                    key = normalized[surface] = tokenizer.normalize(surface).strip()
                if key:
                    unknowns.append((position, key, surface))
        found = cache[text] = _Encoded(ids, offsets, unknowns)
    return found
