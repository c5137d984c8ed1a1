"""Reading-comprehension QA from a UniLM seq2seq SavedModel (`models.qa.signatures`: prefill, step).

The request side tokenises the question over each passage into the prefix
`[CLS] passage [SEP] question [SEP]`; the batch side decodes every queued question's passages
together (`models.qa.decoding.decode_batch`): one prefill, then one cached step per answer token,
with the passages voting and beams reordering the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.qa.decoding import QAResult, banned_ids, decode_batch, results_from_decoded
from models.qa.samples import join_prefix
from models.store import QAManifest
from service.errors import BadInput
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


class EvidenceUnsupported(BadInput):
    """`return_evidence` asked of a version exported before the attention output existed."""

    code = "evidence_unsupported"


@dataclass(frozen=True)
class QAItem:
    prefixes: tuple[tuple[int, ...], ...]  # per passage: [CLS] passage [SEP] question [SEP]
    options: QAOptions
    # With evidence: per passage, the characters of each token read, and the passages' texts.
    offsets: tuple[tuple[tuple[int, int], ...], ...] | None = None
    passages: tuple[str, ...] | None = None

    @property
    def rows(self) -> int:
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
        self.default_beam_size = self.spec.decoding.beam_size
        self.default_extractive = self.spec.decoding.extractive
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
    ) -> QAItem:
        answer_tokens = max_answer_tokens or self.max_answer_tokens
        if answer_tokens > self.max_answer_tokens:
            raise BadInput(
                f"max_answer_tokens {answer_tokens} is over this model's {self.max_answer_tokens}"
            )
        if return_evidence and not self.has_attention:
            raise EvidenceUnsupported(
                f"version {self.version} of {self.name} was exported before answers carried "
                "evidence (its SavedModel has no attention output): export it again with this "
                "release (`python -m training.qa_reexport --model "
                f"<store>/{self.name}/{self.version}`, or train a new version) to use "
                "return_evidence"
            )
        options = QAOptions(
            beam_size=beam_size or self.default_beam_size,
            max_answer_tokens=answer_tokens,
            extractive=extractive or self.default_extractive,
            force_answer=force_answer,
            evidence=return_evidence,
        )
        # Passages longer than the model reads are cut to its window, as in training
        # (`build_prefix`); the question is tokenised once for all of them.
        question_ids = self.tokenizer.piece_ids(question)[: self.max_question_tokens]
        pieces: list[list[int]] = []
        offsets: list[tuple[tuple[int, int], ...]] = []
        for passage in passages:
            if return_evidence:
                ids, spots = self.tokenizer.piece_ids_with_offsets(passage)
                offsets.append(tuple(spots[: self.max_passage_tokens]))
            else:
                ids = self.tokenizer.piece_ids(passage)
            pieces.append(ids[: self.max_passage_tokens])
        prefixes = tuple(tuple(join_prefix(self.tokenizer, ids, question_ids)) for ids in pieces)
        if not return_evidence:
            return QAItem(prefixes=prefixes, options=options)
        return QAItem(prefixes, options, tuple(offsets), tuple(passages))

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
        )
        if not options.evidence:
            return results_from_decoded(self.tokenizer, decoded)
        passages = [(item.offsets or (), item.passages or ()) for item in items]
        return results_from_decoded(self.tokenizer, decoded, passages)

    def warmup(self) -> None:
        item = self.prepare(
            "warm-up?",
            ["warm-up passage.", "another one."],
            max_answer_tokens=2,
            beam_size=min(2, self.settings.max_beam_size),
            extractive=False,
        )
        self.run_batch([item])
