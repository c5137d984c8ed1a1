"""POST /v1/embeddings: OpenAI-compatible request and response."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints, field_validator

from service.schemas.common import (
    HARD_MAX_INPUTS,
    HARD_MAX_TEXT_CHARS,
    ModelName,
    VersionSelector,
    blank_text,
    version_field,
)

Text = Annotated[str, StringConstraints(max_length=HARD_MAX_TEXT_CHARS)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EmbeddingRequest(BaseModel):
    model: ModelName | None = Field(
        None, description="Model name; may be left out when the store holds one embedding model."
    )
    version: VersionSelector | None = version_field()
    input: (
        Text
        | Annotated[list[Text], Field(min_length=1, max_length=HARD_MAX_INPUTS, fail_fast=True)]
    ) = Field(
        description="A text or a list of texts. At most MAX_INPUTS texts of MAX_TEXT_CHARS "
        "characters each (413 past them); a text that is empty, only whitespace or only "
        "invisible characters (U+FEFF, U+200B, NUL) is 422."
    )
    normalize: StrictBool = Field(True, description="Scale each vector to unit length.")
    method: Literal["fold_in", "average", "mean"] | None = Field(
        None,
        description="How a text becomes one vector. JoSE: 'fold_in' (default) optimises a "
        "document vector against the fixed word vectors, as the paper does; 'average' is the "
        "normalised mean of word vectors. BERT encoders: 'mean' pooling of token states (default).",
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'base64': little-endian float32 bytes, as the OpenAI API sends them."
    )
    dimensions: StrictInt | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="The length of the vectors (OpenAI's `dimensions`). No model served here is "
        "trained to be cut shorter (Matryoshka), so only the model's own length is taken, and "
        "changes nothing; any other is 400 naming that length (never ignored). "
        "GET /v1/models/{name} shows it as the manifest's `dim`.",
    )
    truncate: StrictBool = Field(
        False,
        description="Cut a text longer than the model takes to that length and embed the rest, "
        "instead of refusing it (413). The length is the model's: JoSE, the largest of "
        "LENGTH_BUCKETS in known words; BERT encoders, the smaller of that and max_seq_len in "
        "WordPiece tokens, [CLS] and [SEP] included. `usage` counts the tokens embedded. "
        "MAX_TEXT_CHARS applies before any cut (text-embeddings-inference's `truncate`).",
    )
    truncation_direction: Literal["right", "left"] = Field(
        "right",
        description="With `truncate`, which end is cut: 'right' keeps the start of the text, "
        "'left' its end. 'Right' and 'Left' are taken too, as text-embeddings-inference does.",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: object) -> object:
        # OpenAI's API also takes token ids (a list of integers, or a list of such lists); they
        # index OpenAI's tokenizer, not these models' vocabularies: say so rather than "Input
        # should be a valid string" twice.
        def ids(item: object) -> bool:
            return isinstance(item, list) and bool(item) and all(_is_int(i) for i in item)

        if ids(value) or (isinstance(value, list) and bool(value) and all(ids(v) for v in value)):
            raise ValueError(
                "token ids are not taken: send text (a string or a list of strings); the model "
                "splits it with its own tokenizer, whose ids are not OpenAI's"
            )
        return value

    @field_validator("input")
    @classmethod
    def _no_blank_text(cls, value: str | list[str]) -> str | list[str]:
        # "" was embedded as a vector of zeros (JoSE) or as [CLS] [SEP] alone (BERT) with 200:
        # an answer for no text at all. OpenAI's API and text-embeddings-inference refuse it.
        # So was a text of invisible characters only (a BOM, U+200B, NUL): BERT's tokenizer drops
        # format and control characters, and JoSE knows no word of them.
        texts = [value] if isinstance(value, str) else value
        for i, text in enumerate(texts):
            if (what := blank_text(text)) is not None:
                which = "the text" if isinstance(value, str) else f"text {i}"
                raise ValueError(
                    f"{which} {what}: there is nothing to embed; leave it out of the request"
                )
        return value

    @field_validator("truncation_direction", mode="before")
    @classmethod
    def _either_case(cls, value: object) -> object:
        # text-embeddings-inference's clients send "Right"/"Left" (its enum's names).
        return value.lower() if isinstance(value, str) else value

    model_config = {
        "extra": "ignore",  # OpenAI clients send fields such as `user`
        "json_schema_extra": {"examples": [{"input": ["我很喜欢这本书", "服务太差了"]}]},
    }


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    version: int | None = None
    data: list[Embedding]
    usage: Usage
