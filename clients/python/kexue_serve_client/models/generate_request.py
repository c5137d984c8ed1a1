from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.label_condition import LabelCondition
    from ..models.vector_condition import VectorCondition


T = TypeVar("T", bound="GenerateRequest")


@_attrs_define
class GenerateRequest:
    """
    Attributes:
        condition (LabelCondition | VectorCondition): What to write about: {"label": name} or {"vector": [numbers]}.
        model (None | str | Unset): Model name; may be left out when the store holds one generation model.
        version (int | None | str | Unset): Which version of the model answers: a version number, or a label of the
            model's labels.json (`stable`, `canary`, ...). Only a loaded version answers (404 `version_not_found` otherwise,
            naming its state); VERSION_POLICY says how many are loaded. Left out: the newest loaded version. The response's
            `version` says which answered.
        prompt (str | Unset): Text to continue (at most MAX_TEXT_CHARS characters); empty: from scratch. Default: ''.
        num_samples (int | Unset): Texts to write; at most MAX_NUM_SAMPLES. Default: 1.
        max_new_tokens (int | None | Unset): Most tokens per text (default and most: MAX_NEW_TOKENS); a text also ends
            at the model's own length.
        temperature (float | None | Unset): Sampling temperature; under 0.0001 (0 included) greedy, the most likely
            token each step. Default: the model's.
        top_k (int | None | Unset): Keep the k most likely tokens; 0 turns it off.
        top_p (float | None | Unset): Nucleus: keep the most likely tokens up to this mass.
        seed (int | None | Unset): Same seed, same request, same model version: the same texts.
        guidance_scale (float | None | Unset): Label-conditioned models: sample from log p(label) + s (log p(label) -
            log p(other labels)), which holds the text to its label more firmly (classifier-free guidance; 0 or null: off).
            Each sample then takes two rows of the decoding batch.
        stream (bool | Unset): Send Server-Sent Events as tokens are written: `data: GenerateChunk` per token or end of
            a sample, then `data: [DONE]`. Default: False.
    """

    condition: LabelCondition | VectorCondition
    model: None | str | Unset = UNSET
    version: int | None | str | Unset = UNSET
    prompt: str | Unset = ""
    num_samples: int | Unset = 1
    max_new_tokens: int | None | Unset = UNSET
    temperature: float | None | Unset = UNSET
    top_k: int | None | Unset = UNSET
    top_p: float | None | Unset = UNSET
    seed: int | None | Unset = UNSET
    guidance_scale: float | None | Unset = UNSET
    stream: bool | Unset = False

    def to_dict(self) -> dict[str, Any]:
        from ..models.label_condition import LabelCondition  # noqa: PLC0415

        condition: dict[str, Any]
        if isinstance(self.condition, LabelCondition):
            condition = self.condition.to_dict()
        else:
            condition = self.condition.to_dict()

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

        prompt = self.prompt

        num_samples = self.num_samples

        max_new_tokens: int | None | Unset
        if isinstance(self.max_new_tokens, Unset):
            max_new_tokens = UNSET
        else:
            max_new_tokens = self.max_new_tokens

        temperature: float | None | Unset
        if isinstance(self.temperature, Unset):
            temperature = UNSET
        else:
            temperature = self.temperature

        top_k: int | None | Unset
        if isinstance(self.top_k, Unset):
            top_k = UNSET
        else:
            top_k = self.top_k

        top_p: float | None | Unset
        if isinstance(self.top_p, Unset):
            top_p = UNSET
        else:
            top_p = self.top_p

        seed: int | None | Unset
        if isinstance(self.seed, Unset):
            seed = UNSET
        else:
            seed = self.seed

        guidance_scale: float | None | Unset
        if isinstance(self.guidance_scale, Unset):
            guidance_scale = UNSET
        else:
            guidance_scale = self.guidance_scale

        stream = self.stream

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "condition": condition,
            }
        )
        if model is not UNSET:
            field_dict["model"] = model
        if version is not UNSET:
            field_dict["version"] = version
        if prompt is not UNSET:
            field_dict["prompt"] = prompt
        if num_samples is not UNSET:
            field_dict["num_samples"] = num_samples
        if max_new_tokens is not UNSET:
            field_dict["max_new_tokens"] = max_new_tokens
        if temperature is not UNSET:
            field_dict["temperature"] = temperature
        if top_k is not UNSET:
            field_dict["top_k"] = top_k
        if top_p is not UNSET:
            field_dict["top_p"] = top_p
        if seed is not UNSET:
            field_dict["seed"] = seed
        if guidance_scale is not UNSET:
            field_dict["guidance_scale"] = guidance_scale
        if stream is not UNSET:
            field_dict["stream"] = stream

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.label_condition import LabelCondition  # noqa: PLC0415
        from ..models.vector_condition import VectorCondition  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_condition(data: object) -> LabelCondition | VectorCondition:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                condition_type_0 = LabelCondition.from_dict(data)

                return condition_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            condition_type_1 = VectorCondition.from_dict(data)

            return condition_type_1

        condition = _parse_condition(d.pop("condition"))

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

        prompt = d.pop("prompt", UNSET)

        num_samples = d.pop("num_samples", UNSET)

        def _parse_max_new_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_new_tokens = _parse_max_new_tokens(d.pop("max_new_tokens", UNSET))

        def _parse_temperature(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        temperature = _parse_temperature(d.pop("temperature", UNSET))

        def _parse_top_k(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        top_k = _parse_top_k(d.pop("top_k", UNSET))

        def _parse_top_p(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        top_p = _parse_top_p(d.pop("top_p", UNSET))

        def _parse_seed(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        seed = _parse_seed(d.pop("seed", UNSET))

        def _parse_guidance_scale(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        guidance_scale = _parse_guidance_scale(d.pop("guidance_scale", UNSET))

        stream = d.pop("stream", UNSET)

        generate_request = cls(
            condition=condition,
            model=model,
            version=version,
            prompt=prompt,
            num_samples=num_samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            guidance_scale=guidance_scale,
            stream=stream,
        )

        return generate_request
