from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="VectorCondition")


@_attrs_define
class VectorCondition:
    """
    Attributes:
        vector (list[float]): Exactly the model's `condition_dim` numbers, finite in float32 (400 otherwise, and for a
            vector that overflows the model's arithmetic).
    """

    vector: list[float]

    def to_dict(self) -> dict[str, Any]:
        vector = self.vector

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "vector": vector,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        vector = cast(list[float], d.pop("vector"))

        vector_condition = cls(
            vector=vector,
        )

        return vector_condition
