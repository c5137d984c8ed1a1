from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="QACandidate")


@_attrs_define
class QACandidate:
    """
    Attributes:
        text (str):
        score (float):
        passage_index (int | None):
    """

    text: str
    score: float
    passage_index: int | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        text = self.text

        score = self.score

        passage_index: int | None
        passage_index = self.passage_index

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "text": text,
                "score": score,
                "passage_index": passage_index,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        text = d.pop("text")

        score = d.pop("score")

        def _parse_passage_index(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        passage_index = _parse_passage_index(d.pop("passage_index"))

        qa_candidate = cls(
            text=text,
            score=score,
            passage_index=passage_index,
        )

        qa_candidate.additional_properties = d
        return qa_candidate

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
