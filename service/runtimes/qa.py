"""Reading-comprehension QA from a UniLM seq2seq SavedModel (`models.qa.signatures`: prefill, step).

The request side tokenises the question over each passage into the prefix
`[CLS] passage [SEP] question [SEP]`; a passage longer than the model reads becomes overlapping
windows, each read as a passage of its own (as training and `training.qa_eval` cut them), so that
no part of it is dropped unread; a window does not vote on an answer's edges beyond its cuts
(`models.qa.decoding.decode_batch(cuts=)`). The batch side decodes every queued question's passages
together (`models.qa.decoding.decode_batch`): one prefill, then one cached step per answer token,
with the passages voting and beams reordering the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from models.qa.decoding import (
    PassageRow,
    QAResult,
    WindowCuts,
    banned_ids,
    decode_batch,
    passages_of_rows,
    results_from_decoded,
)
from models.qa.placeholders import PlaceholderMap, Placeholders
from models.qa.readers import window_starts
from models.qa.samples import join_prefix
from models.qa.sentences import ReadBy, reading_units
from models.qa.span_search import DEFAULT_SPAN_STARTS
from models.store import QAManifest
from service.errors import BadInput, PayloadTooLarge
from service.runtimes.base import BatchedRuntime, wordpiece_tokenizer
from service.settings import Settings


@dataclass(frozen=True)
class QAOptions:
    """Decoding options; requests share a batch only when these are equal (the group key)."""

    beam_size: int
    max_answer_tokens: int
    extractive: bool
    force_answer: bool = False
    # The batch decodes with the attention outputs and keeps them (`decode_batch(evidence=)`).
    evidence: bool = False
    # Whole spans scored (`decode_batch(span_search=)`), ranked with this length penalty.
    span_search: bool = False
    length_penalty: float | None = None  # None: span search's default


class EvidenceUnsupported(BadInput):
    """`return_evidence` asked of a version exported before the attention output existed."""

    code = "evidence_unsupported"


# Each window of a long passage starts half a window after the one before (training's default,
# `training.qa`), so an answer up to half a window long lies whole inside one of them.
WINDOW_STRIDE_FRACTION = 0.5


@dataclass(frozen=True)
class QAItem:
    prefixes: tuple[tuple[int, ...], ...]  # per window: [CLS] window [SEP] question [SEP]
    options: QAOptions
    # Per window, its tokens read, their characters in its passage (answers and evidence are
    # cut from the passage's own text) and whether it starts or ends at a cut of the passage
    # (where it does not vote on the answer's edges, `decode_batch(cuts=)`).
    passage_rows: tuple[PassageRow, ...] = ()
    # The request's passage each window was cut from; None when every passage is one window.
    owners: tuple[int, ...] | None = None
    # The question's placeholders for unknown text (a version trained with them), else None.
    placeholders: Placeholders | None = None

    @property
    def rows(self) -> int:
        if self.options.span_search:  # the prefill's rows, then one per start
            return max(len(self.prefixes), DEFAULT_SPAN_STARTS)
        return len(self.prefixes) * self.options.beam_size

    @property
    def longest_prefix(self) -> int:
        # The cache holds the prefix and the answer: that is what a row costs.
        return max(len(p) for p in self.prefixes) + self.options.max_answer_tokens


class QARuntime(BatchedRuntime):
    task = "qa"
    family = "bert-unilm"
    manifest_type = QAManifest
    spec: QAManifest

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        super().__init__(name, version, path, settings)
        self.tokenizer = wordpiece_tokenizer(path, self.spec.tokenizer)
        self.max_passage_tokens = self.spec.max_passage_tokens
        self.max_question_tokens = self.spec.max_question_tokens
        self.max_answer_tokens = self.spec.max_answer_tokens
        # Windows as the training run cut them (its stride was in characters: about one token
        # each for Chinese), else half a window.
        stride = self.spec.config.get("window_stride") or int(
            self.max_passage_tokens * WINDOW_STRIDE_FRACTION
        )
        self.window_stride = max(1, min(int(stride), self.max_passage_tokens))
        self.default_beam_size = self.spec.decoding.beam_size
        # A reader whose answer slots read the passage's next token decodes spans only.
        self.answer_input = self.spec.decoding.answer_input
        self.default_extractive = self.spec.decoding.extractive or self.answer_input == "next"
        # How the trainer chose to read passages (`models.qa.sentences`); a request may differ.
        self.default_read_by = self.spec.decoding.read_by
        # A version trained with placeholders reads each unknown word as one
        # (`models.qa.placeholders`); the others read [UNK] as before.
        self.placeholders = (
            PlaceholderMap(self.tokenizer, self.spec.placeholders.count)
            if self.spec.placeholders is not None
            else None
        )
        self._model: Any = None

    def load(self) -> None:
        from models.bert.lm_reader import SavedModelLMStepModel
        from models.qa.input_softmax import step_model_for

        self._model = step_model_for(
            SavedModelLMStepModel(self.path), self.spec.decoding.answer_softmax
        )

    def prepare(
        self,
        question: str,
        passages: Sequence[str],
        *,
        max_answer_tokens: int | None,
        beam_size: int | None,
        extractive: bool,
        force_answer: bool = False,
        return_evidence: bool = False,
        span_search: bool = False,
        length_penalty: float | None = None,
        read_by: ReadBy | None = None,
    ) -> QAItem:
        answer_tokens = max_answer_tokens or self.max_answer_tokens
        if answer_tokens > self.max_answer_tokens:
            raise BadInput(
                f"max_answer_tokens {answer_tokens} is over this model's {self.max_answer_tokens}",
                param="max_answer_tokens",
            )
        if return_evidence and not self.has_attention:
            raise EvidenceUnsupported(
                f"version {self.version} of {self.name} was exported before answers carried "
                "evidence (its SavedModel has no attention output): export it again with this "
                "release (`python -m training.qa_reexport --model "
                f"<store>/{self.name}/{self.version}`, or train a new version) to use "
                "return_evidence",
                param="return_evidence",
            )
        extractive = extractive or self.default_extractive
        if span_search and not extractive:
            raise BadInput(
                "span_search scores spans of the passages: it needs extractive",
                param="span_search",
            )
        if span_search and return_evidence:
            raise BadInput(
                "span_search gives no evidence: leave out return_evidence", param="return_evidence"
            )
        if length_penalty is not None and not span_search:
            raise BadInput(
                "length_penalty ranks the spans of span_search: set span_search",
                param="length_penalty",
            )
        options = QAOptions(
            beam_size=beam_size or self.default_beam_size,
            max_answer_tokens=answer_tokens,
            extractive=extractive,
            force_answer=force_answer,
            evidence=return_evidence,
            span_search=span_search,
            length_penalty=length_penalty,
        )
        # The question is tokenised once for all passages and windows; unknown words take the
        # same placeholder in the question and every passage, in order of first appearance.
        mapping = (
            self.placeholders.assign(question, passages, question_tokens=self.max_question_tokens)
            if self.placeholders
            else None
        )
        encode = self.tokenizer if mapping is None else mapping
        question_ids = encode.piece_ids(question)[: self.max_question_tokens]
        window = self.max_passage_tokens
        reading: ReadBy = read_by or self.default_read_by
        by_sentence = reading == "sentence"
        encoded = [encode.piece_ids_with_offsets(passage) for passage in passages]
        # A window costs what a passage costs: MAX_PASSAGES bounds what one question reads, read
        # whole or by sentence (its text, whose sentences are then no more than its tokens).
        windows = sum(
            len(window_starts(len(ids), window, self.window_stride)) for ids, _ in encoded
        )
        if windows > self.settings.max_passages:
            raise PayloadTooLarge(
                f"passages: {len(passages)} passage{'s' * (len(passages) != 1)} make"
                f"{'s' * (len(passages) == 1)} {windows} windows of at most "
                f"{window} tokens (this model's window, {self.window_stride} apart); the most "
                f"read is {self.settings.max_passages} (MAX_PASSAGES): send fewer or shorter "
                "passages",
                param="passages",
            )
        # Read by sentence, each sentence is a row (and a long one its windows); both limits are
        # checked before a row is built, so a refused request costs its tokenising only.
        units = [
            reading_units(passage, spots, reading)
            for passage, (_, spots) in zip(passages, encoded, strict=True)
        ]
        if by_sentence:
            count = sum(
                len(window_starts(last - first, window, self.window_stride))
                for ranges in units
                for first, last in ranges
            )
            if count > self.settings.max_sentences:
                raise PayloadTooLarge(
                    f"passages: read by sentence, {len(passages)} passage"
                    f"{'s' * (len(passages) != 1)} make{'s' * (len(passages) == 1)} "
                    f"{count} rows (sentences, and the windows of sentences over "
                    f"{window} tokens); the most read is {self.settings.max_sentences} "
                    "(MAX_SENTENCES): send fewer or shorter passages, or read_by 'passage'",
                    param="passages",
                )
        prefixes: list[tuple[int, ...]] = []
        owners: list[int] = []
        rows: list[PassageRow] = []
        for index, (passage, (all_ids, all_spots), ranges) in enumerate(
            zip(passages, encoded, units, strict=True)
        ):
            for first, last in ranges:
                ids, spots = all_ids[first:last], all_spots[first:last]
                for start in window_starts(len(ids), window, self.window_stride):
                    piece = ids[start : start + window]
                    prefixes.append(tuple(join_prefix(self.tokenizer, piece, question_ids)))
                    owners.append(index)
                    cuts = WindowCuts(start > 0, start + window < len(ids))
                    rows.append(PassageRow(piece, spots[start : start + window], passage, cuts))
        windowed = tuple(owners) if len(prefixes) > len(passages) else None
        if mapping is not None and windowed is not None:
            mapping = replace(mapping, rows=windowed)  # answers name windows: their passages
        return QAItem(tuple(prefixes), options, tuple(rows), windowed, mapping)

    @property
    def has_attention(self) -> bool:
        """Whether this version's SavedModel returns the attention evidence is made of."""
        return bool(getattr(self._model, "has_attention", False))

    def run_batch(self, items: Sequence[QAItem]) -> list[QAResult]:
        options = items[0].options  # the batcher's group key: equal for the whole batch
        decoded = decode_batch(
            self._model,
            [[list(p) for p in item.prefixes] for item in items],
            sep_id=self.tokenizer.sep_id,
            pad_id=self.tokenizer.pad_id,
            max_answer_tokens=options.max_answer_tokens,
            beam_size=options.beam_size,
            extractive=options.extractive,
            banned_ids=banned_ids(self.tokenizer),
            force_answer=options.force_answer,
            evidence=options.evidence,
            span_search=options.span_search,
            length_penalty=options.length_penalty,
            answer_input=self.answer_input,
            mask_id=self.tokenizer.mask_id,
            cuts=[[row.cuts for row in item.passage_rows] for item in items],
            continues_word=self.tokenizer.continues_word,
            joins=[
                [row.word_joins(self.tokenizer.continues_word) for row in item.passage_rows]
                for item in items
            ],
        )
        mappings = [item.placeholders for item in items] if self.placeholders is not None else None
        rows = [item.passage_rows for item in items]
        results = results_from_decoded(
            self.tokenizer, decoded, rows, mappings, options.max_answer_tokens
        )
        return [
            result if item.owners is None else passages_of_rows(result, item.owners)
            for item, result in zip(items, results, strict=True)
        ]

    def warmup(self) -> None:
        # Within the lowest limits (MAX_PASSAGES or MAX_SENTENCES 1): a warm-up refused 413
        # would leave the version unloaded. Each passage is one sentence: read whole, the same rows.
        item = self.prepare(
            "warm-up?",
            ["warm-up passage.", "another one."][: self.settings.max_passages],
            max_answer_tokens=2,
            beam_size=min(2, self.settings.max_beam_size),
            extractive=False,
            read_by="passage",
        )
        self.run_batch([item])
