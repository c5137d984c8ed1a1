from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="DensitySampleRequest")


@_attrs_define
class DensitySampleRequest:
    """
    Attributes:
        num_samples (int): At most MAX_DENSITY_SAMPLES (413 past it).
        model (None | str | Unset): Model name; may be left out when the store holds one density model.
        version (int | None | str | Unset): Which version of the model answers: a version number, or a label of the
            model's labels.json (`stable`, `canary`, ...). Only a loaded version answers (404 `version_not_found` otherwise,
            naming its state); VERSION_POLICY says how many are loaded. Left out: the newest loaded version. The response's
            `version` says which answered.
        seed (int | None | Unset): The same seed, the same samples; random if unset.
    """

    num_samples: int
    model: None | str | Unset = UNSET
    version: int | None | str | Unset = UNSET
    seed: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        num_samples = self.num_samples

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        version: int | None | str | Unset
        if isinstance(self.version, Unset):
            version = UNSET
        else:
            version = self.version

        seed: int | None | Unset
        if isinstance(self.seed, Unset):
            seed = UNSET
        else:
            seed = self.seed

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "num_samples": num_samples,
            }
        )
        if model is not UNSET:
            field_dict["model"] = model
        if version is not UNSET:
            field_dict["version"] = version
        if seed is not UNSET:
            field_dict["seed"] = seed

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        num_samples = d.pop("num_samples")

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

        def _parse_version(data: object) -> int | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | str | Unset, data)

        version = _parse_version(d.pop("version", UNSET))

        def _parse_seed(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        seed = _parse_seed(d.pop("seed", UNSET))

        density_sample_request = cls(
            num_samples=num_samples,
            model=model,
            version=version,
            seed=seed,
        )

        return density_sample_request
