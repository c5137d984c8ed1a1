from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.version_state import VersionState
from ..types import UNSET, Unset

T = TypeVar("T", bound="VersionStatus")


@_attrs_define
class VersionStatus:
    """
    Attributes:
        version (int):
        state (VersionState):
        error (None | str | Unset): Why the version failed to load; for one not tried yet, what it waits for (to be
            complete, to stop changing, a retry); for a serving one, that its folder left the store.
        labels (list[str] | Unset): The labels (labels.json, in force) naming this version.
    """

    version: int
    state: VersionState
    error: None | str | Unset = UNSET
    labels: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        version = self.version

        state = self.state.value

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        labels: list[str] | Unset = UNSET
        if not isinstance(self.labels, Unset):
            labels = self.labels

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "version": version,
                "state": state,
            }
        )
        if error is not UNSET:
            field_dict["error"] = error
        if labels is not UNSET:
            field_dict["labels"] = labels

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        version = d.pop("version")

        state = VersionState(d.pop("state"))

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        labels = cast(list[str], d.pop("labels", UNSET))

        version_status = cls(
            version=version,
            state=state,
            error=error,
            labels=labels,
        )

        version_status.additional_properties = d
        return version_status

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
