"""docs/api.md, the API reference users read, is what `make openapi` writes from openapi.json,
and it carries every operation, status code and request field of the document."""

from __future__ import annotations

import json

from service.api_reference import render, settings_named
from service.settings import Settings
from tests.live_server import ROOT

OPENAPI = ROOT / "openapi.json"
API_REFERENCE = ROOT / "docs" / "api.md"


def test_the_committed_reference_is_written_from_openapi_json() -> None:
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert API_REFERENCE.read_text(encoding="utf-8") == render(document), (
        "docs/api.md is stale: run `make openapi` (it rewrites openapi.json and docs/api.md)"
    )


def test_the_reference_has_every_operation_status_and_field() -> None:
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    reference = render(document)
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            start = reference.index(f"### `{method.upper()} {path}`")
            end = reference.find("\n### ", start + 1)
            section = reference[start:end]
            for status in op["responses"]:
                assert f"\n| {status} " in section, (path, status)
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                for field in schemas[ref.rsplit("/", 1)[-1]]["properties"]:
                    assert f"| `{field}` |" in section, (path, field)
                # Every body is bounded by the body size, the queue and the deadline.
                for setting in ("MAX_BODY_BYTES", "MAX_QUEUE", "REQUEST_TIMEOUT_S"):
                    assert f"| `{setting}` |" in section, (path, setting)
    for name in schemas:
        assert f'<a id="schema-{name.lower()}"></a>' in reference, name


def test_the_settings_a_description_names_are_listed_with_their_defaults() -> None:
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    named = settings_named(document)
    # A description wraps lines: a name after a line break counts too.
    assert {"MAX_INPUTS", "MAX_TEXT_CHARS", "MAX_NEW_TOKENS", "MAX_PASSAGES"} <= set(named)
    reference = render(document)
    for name in named:
        default = Settings.model_fields[name.lower()].default
        shown = "unset" if default is None else f"`{default}`"
        assert f"| `{name}` | {shown} |" in reference, name
