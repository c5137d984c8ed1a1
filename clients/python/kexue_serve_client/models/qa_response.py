from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.qa_response_finish_reason_type_0 import QAResponseFinishReasonType0
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.qa_candidate import QACandidate


T = TypeVar("T", bound="QAResponse")


@_attrs_define
class QAResponse:
    """
    Attributes:
        model (str):
        version (int):
        answer (None | str): null when no passage holds an answer. An answer that is a span of its passage (always so
            with `extractive`) is that passage's own characters, as written.
        score (float):
        passage_index (int | None):
        candidates (list[QACandidate]): The distinct answers of the finished beams (or spans, with span_search), best
            first; beams that end at different steps all count, so there may be more than beam_size. 'No answer' is not a
            candidate.
        finish_reason (None | QAResponseFinishReasonType0 | Unset): Why the answer ended (as /v1/generate's): 'stop',
            the reader ended it; 'length', it reached max_answer_tokens and may be cut short (a number or a word longer than
            the limit: ask again with a larger max_answer_tokens, up to the model's own); null when there is no answer.
    """

    model: str
    version: int
    answer: None | str
    score: float
    passage_index: int | None
    candidates: list[QACandidate]
    finish_reason: None | QAResponseFinishReasonType0 | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        model = self.model

        version = self.version

        answer: None | str
        answer = self.answer

        score = self.score

        passage_index: int | None
        passage_index = self.passage_index

        candidates = []
        for candidates_item_data in self.candidates:
            candidates_item = candidates_item_data.to_dict()
            candidates.append(candidates_item)

        finish_reason: None | str | Unset
        if isinstance(self.finish_reason, Unset):
            finish_reason = UNSET
        elif isinstance(self.finish_reason, QAResponseFinishReasonType0):
            finish_reason = self.finish_reason.value
        else:
            finish_reason = self.finish_reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "model": model,
                "version": version,
                "answer": answer,
                "score": score,
                "passage_index": passage_index,
                "candidates": candidates,
            }
        )
        if finish_reason is not UNSET:
            field_dict["finish_reason"] = finish_reason

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.qa_candidate import QACandidate  # noqa: PLC0415

        d = dict(src_dict)
        model = d.pop("model")

        version = d.pop("version")

        def _parse_answer(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        answer = _parse_answer(d.pop("answer"))

        score = d.pop("score")

        def _parse_passage_index(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        passage_index = _parse_passage_index(d.pop("passage_index"))

        candidates = []
        _candidates = d.pop("candidates")
        for candidates_item_data in _candidates:
            candidates_item = QACandidate.from_dict(candidates_item_data)

            candidates.append(candidates_item)

        def _parse_finish_reason(data: object) -> None | QAResponseFinishReasonType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finish_reason_type_0 = QAResponseFinishReasonType0(data)

                return finish_reason_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | QAResponseFinishReasonType0 | Unset, data)

        finish_reason = _parse_finish_reason(d.pop("finish_reason", UNSET))

        qa_response = cls(
            model=model,
            version=version,
            answer=answer,
            score=score,
            passage_index=passage_index,
            candidates=candidates,
            finish_reason=finish_reason,
        )

        qa_response.additional_properties = d
        return qa_response

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
