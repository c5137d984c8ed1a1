from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.qa_request_read_by_type_0 import QARequestReadByType0
from ..types import UNSET, Unset

T = TypeVar("T", bound="QARequest")


@_attrs_define
class QARequest:
    """
    Attributes:
        question (str): At most MAX_TEXT_CHARS characters (413 past it); read up to the model's `max_question_tokens`
            tokens. A question of only whitespace or invisible characters is 422.
        passages (list[str]): Passages to read, decoded together; at most MAX_PASSAGES (413 past it).
        model (None | str | Unset): Model name; may be left out when the store holds one qa model.
        version (int | None | str | Unset): Which version of the model answers: a version number, or a label of the
            model's labels.json (`stable`, `canary`, ...). Only a loaded version answers (404 `version_not_found` otherwise,
            naming its state); VERSION_POLICY says how many are loaded. Left out: the newest loaded version. The response's
            `version` says which answered.
        max_answer_tokens (int | None | Unset): Longest answer in tokens; at most the model's own max_answer_tokens
            (400).
        beam_size (int | None | Unset): Beams (1: greedy); at most MAX_BEAM_SIZE.
        extractive (bool | Unset): Answers must be spans of the passages (each token continues one), of whole words: no
            answer starts or ends inside a word the tokenizer splits (1989 is answered whole, not 198), unless
            max_answer_tokens stops it first (finish_reason 'length'). A model trained so (its manifest's
            decoding.extractive, as the demo's) always answers extractively: false does not turn it off. Default: False.
        force_answer (bool | Unset): The passages are known to hold an answer: never null, unless they hold no text
            (only spaces or invisible characters: such a passage holds no answer, forced or not) or a generated (not
            extractive) answer is only pieces the model cannot spell ([UNK]) that no passage holds. "No answer" may not win
            the first step, and the best answer of the passage most likely to hold one is returned even when every passage
            would say none. Default: False.
        span_search (bool | Unset): Score whole spans instead of voting token by token (needs `extractive`; no
            `return_evidence`): every span of up to `max_answer_tokens` tokens from the likeliest starts is scored by its
            probability in its passage, and the best span of any passage is the answer. Candidates are the `beam_size` best
            spans. Default: False.
        length_penalty (float | None | Unset): With `span_search`: spans rank by log-probability / (tokens + 1) **
            length_penalty. 1 (the default) ranks by the mean log-probability per token; 0 by the probability itself, which
            favours short spans; above 1 longer spans are favoured further (CMRC 2018's figures: docs/benchmarks.md). Scores
            are then exp(that ranking score).
        read_by (None | QARequestReadByType0 | Unset): How each passage is read: 'passage' whole (a long one as
            overlapping windows), or 'sentence', each sentence a row that votes like a passage (a sentence that starts with
            他/她/它 or he/she/it/they continues the one before it), so that a passage about several people does not lend one
            person's fact to another; at most MAX_SENTENCES rows (413). A fact whose subject is in another sentence without
            a pronoun ('张伟今年35岁。现在住在上海。') is found only reading by passage. Default: the model's (its manifest's
            decoding.read_by; the demo's is 'sentence').
        return_evidence (bool | Unset): Give each candidate its `evidence`: the passage characters its tokens attended
            to while they were written (heaviest spans first). Computed in the same decoding pass; versions exported before
            this field existed answer 400 (`evidence_unsupported`) until exported again. Default: False.
    """

    question: str
    passages: list[str]
    model: None | str | Unset = UNSET
    version: int | None | str | Unset = UNSET
    max_answer_tokens: int | None | Unset = UNSET
    beam_size: int | None | Unset = UNSET
    extractive: bool | Unset = False
    force_answer: bool | Unset = False
    span_search: bool | Unset = False
    length_penalty: float | None | Unset = UNSET
    read_by: None | QARequestReadByType0 | Unset = UNSET
    return_evidence: bool | Unset = False

    def to_dict(self) -> dict[str, Any]:
        question = self.question

        passages = self.passages

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        version: int | None | str | Unset
        if isinstance(self.version, Unset):
            version = UNSET
        else:
            version = self.version

        max_answer_tokens: int | None | Unset
        if isinstance(self.max_answer_tokens, Unset):
            max_answer_tokens = UNSET
        else:
            max_answer_tokens = self.max_answer_tokens

        beam_size: int | None | Unset
        if isinstance(self.beam_size, Unset):
            beam_size = UNSET
        else:
            beam_size = self.beam_size

        extractive = self.extractive

        force_answer = self.force_answer

        span_search = self.span_search

        length_penalty: float | None | Unset
        if isinstance(self.length_penalty, Unset):
            length_penalty = UNSET
        else:
            length_penalty = self.length_penalty

        read_by: None | str | Unset
        if isinstance(self.read_by, Unset):
            read_by = UNSET
        elif isinstance(self.read_by, QARequestReadByType0):
            read_by = self.read_by.value
        else:
            read_by = self.read_by

        return_evidence = self.return_evidence

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "question": question,
                "passages": passages,
            }
        )
        if model is not UNSET:
            field_dict["model"] = model
        if version is not UNSET:
            field_dict["version"] = version
        if max_answer_tokens is not UNSET:
            field_dict["max_answer_tokens"] = max_answer_tokens
        if beam_size is not UNSET:
            field_dict["beam_size"] = beam_size
        if extractive is not UNSET:
            field_dict["extractive"] = extractive
        if force_answer is not UNSET:
            field_dict["force_answer"] = force_answer
        if span_search is not UNSET:
            field_dict["span_search"] = span_search
        if length_penalty is not UNSET:
            field_dict["length_penalty"] = length_penalty
        if read_by is not UNSET:
            field_dict["read_by"] = read_by
        if return_evidence is not UNSET:
            field_dict["return_evidence"] = return_evidence

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        question = d.pop("question")

        passages = cast(list[str], d.pop("passages"))

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

        def _parse_version(data: object) -> int | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | str | Unset, data)

        version = _parse_version(d.pop("version", UNSET))

        def _parse_max_answer_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_answer_tokens = _parse_max_answer_tokens(d.pop("max_answer_tokens", UNSET))

        def _parse_beam_size(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        beam_size = _parse_beam_size(d.pop("beam_size", UNSET))

        extractive = d.pop("extractive", UNSET)

        force_answer = d.pop("force_answer", UNSET)

        span_search = d.pop("span_search", UNSET)

        def _parse_length_penalty(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        length_penalty = _parse_length_penalty(d.pop("length_penalty", UNSET))

        def _parse_read_by(data: object) -> None | QARequestReadByType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                read_by_type_0 = QARequestReadByType0(data)

                return read_by_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | QARequestReadByType0 | Unset, data)

        read_by = _parse_read_by(d.pop("read_by", UNSET))

        return_evidence = d.pop("return_evidence", UNSET)

        qa_request = cls(
            question=question,
            passages=passages,
            model=model,
            version=version,
            max_answer_tokens=max_answer_tokens,
            beam_size=beam_size,
            extractive=extractive,
            force_answer=force_answer,
            span_search=span_search,
            length_penalty=length_penalty,
            read_by=read_by,
            return_evidence=return_evidence,
        )

        return qa_request
