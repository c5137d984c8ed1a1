from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.readiness_status import ReadinessStatus
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.unavailable_model import UnavailableModel


T = TypeVar("T", bound="Readiness")


@_attrs_define
class Readiness:
    """
    Attributes:
        status (ReadinessStatus):
        not_ready (list[str] | Unset): What holds this instance unready: models still being loaded or waiting for a
            version to be tried (within READY_GRACE_S), '(store scan in progress)', '(shutting down)'.
        unavailable (list[UnavailableModel] | Unset): Every model with no loaded version, and why. Those not in
            `not_ready` no longer hold readiness: all their versions failed, or READY_GRACE_S passed.
    """

    status: ReadinessStatus
    not_ready: list[str] | Unset = UNSET
    unavailable: list[UnavailableModel] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        status = self.status.value

        not_ready: list[str] | Unset = UNSET
        if not isinstance(self.not_ready, Unset):
            not_ready = self.not_ready

        unavailable: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.unavailable, Unset):
            unavailable = []
            for unavailable_item_data in self.unavailable:
                unavailable_item = unavailable_item_data.to_dict()
                unavailable.append(unavailable_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "status": status,
            }
        )
        if not_ready is not UNSET:
            field_dict["not_ready"] = not_ready
        if unavailable is not UNSET:
            field_dict["unavailable"] = unavailable

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.unavailable_model import UnavailableModel  # noqa: PLC0415

        d = dict(src_dict)
        status = ReadinessStatus(d.pop("status"))

        not_ready = cast(list[str], d.pop("not_ready", UNSET))

        _unavailable = d.pop("unavailable", UNSET)
        unavailable: list[UnavailableModel] | Unset = UNSET
        if _unavailable is not UNSET:
            unavailable = []
            for unavailable_item_data in _unavailable:
                unavailable_item = UnavailableModel.from_dict(unavailable_item_data)

                unavailable.append(unavailable_item)

        readiness = cls(
            status=status,
            not_ready=not_ready,
            unavailable=unavailable,
        )

        readiness.additional_properties = d
        return readiness

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
