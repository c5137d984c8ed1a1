from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.open_ai_error import OpenAIError


T = TypeVar("T", bound="ErrorBody")


@_attrs_define
class ErrorBody:
    """The body of every error the service raises itself.

    Attributes:
        detail (str): What went wrong, for a person to read.
        code (str): A stable machine-readable code: bad_input, evidence_unsupported, unauthorized, forbidden,
            model_not_found, version_not_found, payload_too_large, overloaded, not_ready, deadline_exceeded, backend_error,
            internal_error; for requests refused before they reach an operation: bad_request (a body that is not readable
            JSON), unsupported_media_type (415: a body not sent as JSON, or compressed), not_found (no such path),
            method_not_allowed, request_timeout (408: a request head not sent in time), request_header_fields_too_large
            (431). A 422's `error.code` is validation_error.
        error (OpenAIError): The error as the OpenAI API words it: what the OpenAI SDKs show and set on their
            exceptions (`message`, `type`, `code`, `param`).
    """

    detail: str
    code: str
    error: OpenAIError
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        detail = self.detail

        code = self.code

        error = self.error.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "detail": detail,
                "code": code,
                "error": error,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.open_ai_error import OpenAIError  # noqa: PLC0415

        d = dict(src_dict)
        detail = d.pop("detail")

        code = d.pop("code")

        error = OpenAIError.from_dict(d.pop("error"))

        error_body = cls(
            detail=detail,
            code=code,
            error=error,
        )

        error_body.additional_properties = d
        return error_body

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
