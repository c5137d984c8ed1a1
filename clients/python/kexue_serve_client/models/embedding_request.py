from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.embedding_request_encoding_format import EmbeddingRequestEncodingFormat
from ..models.embedding_request_method_type_0 import EmbeddingRequestMethodType0
from ..models.embedding_request_truncation_direction import EmbeddingRequestTruncationDirection
from ..types import UNSET, Unset

T = TypeVar("T", bound="EmbeddingRequest")


@_attrs_define
class EmbeddingRequest:
    """
    Attributes:
        input_ (list[str] | str): A text or a list of texts. At most MAX_INPUTS texts of MAX_TEXT_CHARS characters each
            (413 past them); a text that is empty, only whitespace or only invisible characters (U+FEFF, U+200B, NUL) is
            422.
        model (None | str | Unset): Model name; may be left out when the store holds one embedding model.
        version (int | None | str | Unset): Which version of the model answers: a version number, or a label of the
            model's labels.json (`stable`, `canary`, ...). Only a loaded version answers (404 `version_not_found` otherwise,
            naming its state); VERSION_POLICY says how many are loaded. Left out: the newest loaded version. The response's
            `version` says which answered.
        normalize (bool | Unset): Scale each vector to unit length. Default: True.
        method (EmbeddingRequestMethodType0 | None | Unset): How a text becomes one vector. JoSE: 'fold_in' (default)
            optimises a document vector against the fixed word vectors, as the paper does; 'average' is the normalised mean
            of word vectors. BERT encoders: 'mean' pooling of token states (default).
        encoding_format (EmbeddingRequestEncodingFormat | Unset): 'base64': little-endian float32 bytes, as the OpenAI
            API sends them. Default: EmbeddingRequestEncodingFormat.FLOAT.
        dimensions (int | None | Unset): The length of the vectors (OpenAI's `dimensions`). No model served here is
            trained to be cut shorter (Matryoshka), so only the model's own length is taken, and changes nothing; any other
            is 400 naming that length (never ignored). GET /v1/models/{name} shows it as the manifest's `dim`.
        truncate (bool | Unset): Cut a text longer than the model takes to that length and embed the rest, instead of
            refusing it (413). The length is the model's: JoSE, the largest of LENGTH_BUCKETS in known words; BERT encoders,
            the smaller of that and max_seq_len in WordPiece tokens, [CLS] and [SEP] included. `usage` counts the tokens
            embedded. MAX_TEXT_CHARS applies before any cut (text-embeddings-inference's `truncate`). Default: False.
        truncation_direction (EmbeddingRequestTruncationDirection | Unset): With `truncate`, which end is cut: 'right'
            keeps the start of the text, 'left' its end. 'Right' and 'Left' are taken too, as text-embeddings-inference
            does. Default: EmbeddingRequestTruncationDirection.RIGHT.
    """

    input_: list[str] | str
    model: None | str | Unset = UNSET
    version: int | None | str | Unset = UNSET
    normalize: bool | Unset = True
    method: EmbeddingRequestMethodType0 | None | Unset = UNSET
    encoding_format: EmbeddingRequestEncodingFormat | Unset = EmbeddingRequestEncodingFormat.FLOAT
    dimensions: int | None | Unset = UNSET
    truncate: bool | Unset = False
    truncation_direction: EmbeddingRequestTruncationDirection | Unset = EmbeddingRequestTruncationDirection.RIGHT
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        input_: list[str] | str
        if isinstance(self.input_, list):
            input_ = self.input_

        else:
            input_ = self.input_

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

        normalize = self.normalize

        method: None | str | Unset
        if isinstance(self.method, Unset):
            method = UNSET
        elif isinstance(self.method, EmbeddingRequestMethodType0):
            method = self.method.value
        else:
            method = self.method

        encoding_format: str | Unset = UNSET
        if not isinstance(self.encoding_format, Unset):
            encoding_format = self.encoding_format.value

        dimensions: int | None | Unset
        if isinstance(self.dimensions, Unset):
            dimensions = UNSET
        else:
            dimensions = self.dimensions

        truncate = self.truncate

        truncation_direction: str | Unset = UNSET
        if not isinstance(self.truncation_direction, Unset):
            truncation_direction = self.truncation_direction.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "input": input_,
            }
        )
        if model is not UNSET:
            field_dict["model"] = model
        if version is not UNSET:
            field_dict["version"] = version
        if normalize is not UNSET:
            field_dict["normalize"] = normalize
        if method is not UNSET:
            field_dict["method"] = method
        if encoding_format is not UNSET:
            field_dict["encoding_format"] = encoding_format
        if dimensions is not UNSET:
            field_dict["dimensions"] = dimensions
        if truncate is not UNSET:
            field_dict["truncate"] = truncate
        if truncation_direction is not UNSET:
            field_dict["truncation_direction"] = truncation_direction

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_input_(data: object) -> list[str] | str:
            try:
                if not isinstance(data, list):
                    raise TypeError()
                input_type_1 = cast(list[str], data)

                return input_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | str, data)

        input_ = _parse_input_(d.pop("input"))

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

        normalize = d.pop("normalize", UNSET)

        def _parse_method(data: object) -> EmbeddingRequestMethodType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                method_type_0 = EmbeddingRequestMethodType0(data)

                return method_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(EmbeddingRequestMethodType0 | None | Unset, data)

        method = _parse_method(d.pop("method", UNSET))

        _encoding_format = d.pop("encoding_format", UNSET)
        encoding_format: EmbeddingRequestEncodingFormat | Unset
        if isinstance(_encoding_format, Unset):
            encoding_format = UNSET
        else:
            encoding_format = EmbeddingRequestEncodingFormat(_encoding_format)

        def _parse_dimensions(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        dimensions = _parse_dimensions(d.pop("dimensions", UNSET))

        truncate = d.pop("truncate", UNSET)

        _truncation_direction = d.pop("truncation_direction", UNSET)
        truncation_direction: EmbeddingRequestTruncationDirection | Unset
        if isinstance(_truncation_direction, Unset):
            truncation_direction = UNSET
        else:
            truncation_direction = EmbeddingRequestTruncationDirection(_truncation_direction)

        embedding_request = cls(
            input_=input_,
            model=model,
            version=version,
            normalize=normalize,
            method=method,
            encoding_format=encoding_format,
            dimensions=dimensions,
            truncate=truncate,
            truncation_direction=truncation_direction,
        )

        embedding_request.additional_properties = d
        return embedding_request

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
