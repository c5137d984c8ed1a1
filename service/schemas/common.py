"""Types shared by every route: the error body and the model-name rule."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, model_validator

from models.store import LABEL_PATTERN

# DESIGN.md: model names are letters, digits, '-', '_', '.'; never a path. One rule for the store,
# the training jobs and the service's URLs and request fields.
# The largest version number a request may name is the store's: the largest integer a JSON number
# keeps exactly in every client (2**53 - 1); a folder past it is no version, so every version
# served can be named.
from models.store import MAX_VERSION as MAX_VERSION
from models.store import MODEL_NAME_PATTERN as MODEL_NAME_PATTERN
from models.store import ModelName as ModelName

# Hard caps of the schema (422 past them). The configured limits (MAX_INPUTS, MAX_TEXT_CHARS, ...)
# are lower and answer 413; these caps only stop absurd requests before any work is done.
HARD_MAX_INPUTS = 4096

# Unicode categories of the characters no model reads: control (NUL, U+0001 ...) and format
# characters (U+200B zero-width space, U+FEFF byte order mark, U+200D ...), which BERT drops, and
# nonspacing marks (U+0301, U+FE0F ...), which an uncased BERT strips: alone, they sit on nothing.
INVISIBLE = frozenset({"Cc", "Cf", "Mn"})


def blank_text(text: str) -> str | None:
    """Why a text gives a model nothing to read (empty, only whitespace, only invisible
    characters), or None when it holds something visible."""
    if not text:
        return "is empty"
    if text.isspace():
        return "is only whitespace"
    if all(c.isspace() or unicodedata.category(c) in INVISIBLE for c in text):
        codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in text})[:4])
        return (
            "holds only invisible characters (whitespace, format or control characters, "
            f"combining marks with no letter to sit on, such as {codes})"
        )
    return None


HARD_MAX_TEXT_CHARS = 1_000_000
# Seeds are 64-bit: declared `< 2**63` rather than `<= 2**63 - 1`, since FastAPI writes the bound
# into the OpenAPI document as a float, and 2**63 - 1 as a float is 2**63, which a client would
# read as allowed.
SEED_BOUND = 2**63
# The request lists of numbers or texts (rows, vectors, passages, inputs) are validated with
# pydantic's fail_fast: a list's first wrong item is its error. A 1 MB body of 200,000 wrong
# numbers made 200,000 errors, about 0.4 s of the event loop before the 422 even began.


def _digits_are_a_number(value: Any) -> Any:
    # "2" means version 2 (TF Serving's REST URLs carry it as text); a label never starts with a
    # digit, so nothing is lost.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


# A request's `version`: a number (strict: `true` and `1.0` are no version) or a label.
VersionSelector = Annotated[
    Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION)]
    | Annotated[str, StringConstraints(pattern=LABEL_PATTERN)],
    BeforeValidator(_digits_are_a_number),
]

VERSION_DESCRIPTION = (
    "Which version of the model answers: a version number, or a label of the model's "
    "labels.json (`stable`, `canary`, ...). Only a loaded version answers (404 "
    "`version_not_found` otherwise, naming its state); VERSION_POLICY says how many are loaded. "
    "Left out: the newest loaded version. The response's `version` says which answered."
)


def version_field() -> Any:
    """The `version` field of every inference request."""
    return Field(None, description=VERSION_DESCRIPTION, examples=[2, "stable"])


# Most fields a request object may carry: past it the object is refused with one error. Unknown
# fields are errors (extra="forbid"), one each: a 1 MB body of 66,000 of them made 66,000 errors,
# 0.2 s of the event loop.
MAX_REQUEST_FIELDS = 64


class RequestBody(BaseModel):
    """A request object whose unknown fields are refused: one error for too many of them."""

    @model_validator(mode="before")
    @classmethod
    def _not_too_many_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) > MAX_REQUEST_FIELDS:
            unknown = [key for key in data if key not in cls.model_fields]
            named = ", ".join(repr(str(key)[:40]) for key in unknown[:3])
            raise ValueError(
                f"{len(unknown)} fields that are not this request's ({named}, ...): it takes "
                f"{', '.join(cls.model_fields)}"
            )
        return data


class OpenAIError(BaseModel):
    """The error as the OpenAI API words it: what the OpenAI SDKs show and set on their
    exceptions (`message`, `type`, `code`, `param`)."""

    message: str = Field(description="The same text as `detail`.")
    type: str = Field(
        description="invalid_request_error (4xx), authentication_error (401), permission_error "
        "(403), rate_limit_error (429) or server_error (5xx)."
    )
    code: str = Field(description="The same code as the body's `code`.")
    param: str | None = Field(None, description="The request field at fault, where one is.")


class ErrorBody(BaseModel):
    """The body of every error the service raises itself."""

    detail: str = Field(description="What went wrong, for a person to read.")
    code: str = Field(
        description="A stable machine-readable code: bad_input, evidence_unsupported, "
        "unauthorized, forbidden, model_not_found, version_not_found, payload_too_large, "
        "overloaded, not_ready, deadline_exceeded, backend_error, internal_error; for requests "
        "refused before they reach an operation: bad_request (a body that is not readable "
        "JSON), unsupported_media_type (415: a body not sent as JSON, or compressed), "
        "not_found (no such path), method_not_allowed, request_timeout (408: a request "
        "head not sent in time), request_header_fields_too_large (431). A 422's "
        "`error.code` is validation_error."
    )
    error: OpenAIError = Field(
        description="`detail` and `code` again, in the OpenAI API's error shape, so that "
        "OpenAI-compatible clients show the service's text."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "detail": "unknown model 'x'",
                    "code": "model_not_found",
                    "error": {
                        "message": "unknown model 'x'",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                        "param": "model",
                    },
                }
            ]
        }
    }
