from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.density_score_request_logdet import DensityScoreRequestLogdet
from ..types import UNSET, Unset

T = TypeVar("T", bound="DensityScoreRequest")


@_attrs_define
class DensityScoreRequest:
    """
    Attributes:
        inputs (list[list[float]]): Rows of the model's `input_dim` numbers each, finite in float32, in data units (400
            for another length or a number beyond float32); at most MAX_INPUTS rows (413 past it).
        model (None | str | Unset): Model name; may be left out when the store holds one density model.
        version (int | None | str | Unset): Which version of the model answers: a version number, or a label of the
            model's labels.json (`stable`, `canary`, ...). Only a loaded version answers (404 `version_not_found` otherwise,
            naming its state); VERSION_POLICY says how many are loaded. Left out: the newest loaded version. The response's
            `version` says which answered.
        logdet (DensityScoreRequestLogdet | Unset): The residual blocks' log-determinant: 'exact' (full Jacobians;
            refused with 400 when input_dim is over MAX_EXACT_LOGDET_DIM), 'series' (truncated power series with fixed
            Hutchinson probes: deterministic, an estimate off by up to about 2 nats a row on the demo's models, cheaper only
            for large inputs), or 'auto' (the default): exact when input_dim is at most MAX_EXACT_LOGDET_DIM, else series.
            The response's `logdet` says which was used. Default: DensityScoreRequestLogdet.AUTO.
    """

    inputs: list[list[float]]
    model: None | str | Unset = UNSET
    version: int | None | str | Unset = UNSET
    logdet: DensityScoreRequestLogdet | Unset = DensityScoreRequestLogdet.AUTO

    def to_dict(self) -> dict[str, Any]:
        inputs = []
        for inputs_item_data in self.inputs:
            inputs_item = inputs_item_data

            inputs.append(inputs_item)

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

        logdet: str | Unset = UNSET
        if not isinstance(self.logdet, Unset):
            logdet = self.logdet.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "inputs": inputs,
            }
        )
        if model is not UNSET:
            field_dict["model"] = model
        if version is not UNSET:
            field_dict["version"] = version
        if logdet is not UNSET:
            field_dict["logdet"] = logdet

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        inputs = []
        _inputs = d.pop("inputs")
        for inputs_item_data in _inputs:
            inputs_item = cast(list[float], inputs_item_data)

            inputs.append(inputs_item)

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

        _logdet = d.pop("logdet", UNSET)
        logdet: DensityScoreRequestLogdet | Unset
        if isinstance(_logdet, Unset):
            logdet = UNSET
        else:
            logdet = DensityScoreRequestLogdet(_logdet)

        density_score_request = cls(
            inputs=inputs,
            model=model,
            version=version,
            logdet=logdet,
        )

        return density_score_request
