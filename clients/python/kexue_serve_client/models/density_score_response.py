from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.density_score_response_logdet import DensityScoreResponseLogdet

T = TypeVar("T", bound="DensityScoreResponse")


@_attrs_define
class DensityScoreResponse:
    """
    Attributes:
        model (str):
        version (int):
        log_prob (list[float | None]): log p(x) in nats per row (discrete data: the dequantised density at the bin
            centre). null when it is not finite: -inf for a value outside a discrete model's range.
        bits_per_dim (list[float | None]): -log_prob / (input_dim ln 2) per row; null when it is not finite.
        logdet (DensityScoreResponseLogdet): The log-determinant these scores used (the request's, or what 'auto'
            chose).
    """

    model: str
    version: int
    log_prob: list[float | None]
    bits_per_dim: list[float | None]
    logdet: DensityScoreResponseLogdet
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        model = self.model

        version = self.version

        log_prob = []
        for log_prob_item_data in self.log_prob:
            log_prob_item: float | None
            log_prob_item = log_prob_item_data
            log_prob.append(log_prob_item)

        bits_per_dim = []
        for bits_per_dim_item_data in self.bits_per_dim:
            bits_per_dim_item: float | None
            bits_per_dim_item = bits_per_dim_item_data
            bits_per_dim.append(bits_per_dim_item)

        logdet = self.logdet.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "model": model,
                "version": version,
                "log_prob": log_prob,
                "bits_per_dim": bits_per_dim,
                "logdet": logdet,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        model = d.pop("model")

        version = d.pop("version")

        log_prob = []
        _log_prob = d.pop("log_prob")
        for log_prob_item_data in _log_prob:

            def _parse_log_prob_item(data: object) -> float | None:
                if data is None:
                    return data
                return cast(float | None, data)

            log_prob_item = _parse_log_prob_item(log_prob_item_data)

            log_prob.append(log_prob_item)

        bits_per_dim = []
        _bits_per_dim = d.pop("bits_per_dim")
        for bits_per_dim_item_data in _bits_per_dim:

            def _parse_bits_per_dim_item(data: object) -> float | None:
                if data is None:
                    return data
                return cast(float | None, data)

            bits_per_dim_item = _parse_bits_per_dim_item(bits_per_dim_item_data)

            bits_per_dim.append(bits_per_dim_item)

        logdet = DensityScoreResponseLogdet(d.pop("logdet"))

        density_score_response = cls(
            model=model,
            version=version,
            log_prob=log_prob,
            bits_per_dim=bits_per_dim,
            logdet=logdet,
        )

        density_score_response.additional_properties = d
        return density_score_response

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
