from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="DensitySampleResponse")


@_attrs_define
class DensitySampleResponse:
    """
    Attributes:
        model (str):
        version (int):
        seed (int): The seed the samples were drawn with.
        samples (list[list[float]]): num_samples rows of input_dim, data units.
        iterations (list[int]): Fixed-point steps each residual block's inverse took, in forward order.
    """

    model: str
    version: int
    seed: int
    samples: list[list[float]]
    iterations: list[int]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        model = self.model

        version = self.version

        seed = self.seed

        samples = []
        for samples_item_data in self.samples:
            samples_item = samples_item_data

            samples.append(samples_item)

        iterations = self.iterations

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "model": model,
                "version": version,
                "seed": seed,
                "samples": samples,
                "iterations": iterations,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        model = d.pop("model")

        version = d.pop("version")

        seed = d.pop("seed")

        samples = []
        _samples = d.pop("samples")
        for samples_item_data in _samples:
            samples_item = cast(list[float], samples_item_data)

            samples.append(samples_item)

        iterations = cast(list[int], d.pop("iterations"))

        density_sample_response = cls(
            model=model,
            version=version,
            seed=seed,
            samples=samples,
            iterations=iterations,
        )

        density_sample_response.additional_properties = d
        return density_sample_response

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
