from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="QAEvidence")


@_attrs_define
class QAEvidence:
    """
    Attributes:
        passage_index (int): The passage (index in `passages`).
        start (int): First character, an offset into that passage.
        end (int): One past the last character: text is passage[start:end].
        text (str):
        weight (float): The answer tokens' mean attention on these characters' tokens (0-1).
    """

    passage_index: int
    start: int
    end: int
    text: str
    weight: float
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        passage_index = self.passage_index

        start = self.start

        end = self.end

        text = self.text

        weight = self.weight

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "passage_index": passage_index,
                "start": start,
                "end": end,
                "text": text,
                "weight": weight,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        passage_index = d.pop("passage_index")

        start = d.pop("start")

        end = d.pop("end")

        text = d.pop("text")

        weight = d.pop("weight")

        qa_evidence = cls(
            passage_index=passage_index,
            start=start,
            end=end,
            text=text,
            weight=weight,
        )

        qa_evidence.additional_properties = d
        return qa_evidence

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
