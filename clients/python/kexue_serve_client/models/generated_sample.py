from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.generated_sample_finish_reason import GeneratedSampleFinishReason

T = TypeVar("T", bound="GeneratedSample")


@_attrs_define
class GeneratedSample:
    """
    Attributes:
        text (str):
        tokens (int): Tokens written (the closing [SEP] not counted).
        finish_reason (GeneratedSampleFinishReason): stop: the model ended the text; length: max_new_tokens or the
            model's length.
    """

    text: str
    tokens: int
    finish_reason: GeneratedSampleFinishReason
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        text = self.text

        tokens = self.tokens

        finish_reason = self.finish_reason.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "text": text,
                "tokens": tokens,
                "finish_reason": finish_reason,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        text = d.pop("text")

        tokens = d.pop("tokens")

        finish_reason = GeneratedSampleFinishReason(d.pop("finish_reason"))

        generated_sample = cls(
            text=text,
            tokens=tokens,
            finish_reason=finish_reason,
        )

        generated_sample.additional_properties = d
        return generated_sample

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
