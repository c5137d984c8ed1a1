"""docs/api.md, the API reference in Markdown, written from the committed `openapi.json`.

    python -m service.api_reference openapi.json > docs/api.md      (`make openapi` runs it)

Every operation with its method, path, parameters, request fields (types, limits, defaults),
responses and status codes, the error bodies, and the settings that limit it with their defaults
(read from `service.settings.Settings`). A test fails when docs/api.md differs from what this
writes, so the reference a user reads is the contract the server answers by.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from service.settings import Settings

# Limits every operation with a JSON body has, whatever its description names.
BODY_LIMITS = ["MAX_BODY_BYTES", "MAX_QUEUE", "REQUEST_TIMEOUT_S"]
SETTING_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
SCHEMA_REF = "#/components/schemas/"
STATUS_PHRASES = {
    "200": "OK",
    "400": "Bad Request",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "Not Found",
    "413": "Content Too Large",
    "422": "Unprocessable Content",
    "429": "Too Many Requests",
    "500": "Internal Server Error",
    "503": "Service Unavailable",
    "504": "Gateway Timeout",
}


def ref_name(ref: str) -> str:
    return ref.removeprefix(SCHEMA_REF)


def schema_link(name: str) -> str:
    return f"[`{name}`](#schema-{name.lower()})"


def cell(text: str) -> str:
    """Text for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def type_of(schema: dict[str, Any]) -> str:
    """The type a person reads: `string`, `array of number`, a link to a schema, `A or B`."""
    if "$ref" in schema:
        return schema_link(ref_name(schema["$ref"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kinds = [type_of(s) for s in schema[key] if s.get("type") != "null"]
            nullable = any(s.get("type") == "null" for s in schema[key])
            return " or ".join(kinds) + (" or null" if nullable else "")
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    if kind == "array":
        items = type_of(schema.get("items", {}))
        return f"array of ({items})" if " or " in items else f"array of {items}"
    if kind == "object" and "additionalProperties" in schema:
        values = schema["additionalProperties"]
        return "object" if values is True else f"object of {type_of(values)}"
    return str(kind)


def limits_of(schema: dict[str, Any]) -> str:
    """The schema's hard bounds (a request past them gets 422), of the field or its items."""
    parts = []
    for option in [schema, *schema.get("anyOf", [])]:
        for key, label in (
            ("minLength", "chars ≥"),
            ("maxLength", "chars ≤"),
            ("minItems", "items ≥"),
            ("maxItems", "items ≤"),
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        ):
            if key in option:
                value = option[key]
                parts.append(f"{label} {int(value) if float(value).is_integer() else value}")
        if "pattern" in option:
            parts.append(f"pattern `{option['pattern']}`")
        items = option.get("items")
        if isinstance(items, dict) and "$ref" not in items and limits_of(items):
            parts.append(f"each: {limits_of(items)}")
    return ", ".join(parts)


def fields_table(schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    if not properties:
        return []
    required = set(schema.get("required", []))
    lines = [
        "| field | type | required | limits | default | description |",
        "|---|---|---|---|---|---|",
    ]
    for name, field in properties.items():
        default = (
            f"`{json.dumps(field['default'], ensure_ascii=False)}`" if "default" in field else ""
        )
        lines.append(
            f"| `{name}` | {cell(type_of(field))} | {'yes' if name in required else ''} "
            f"| {cell(limits_of(field))} | {cell(default)} | {cell(field.get('description', ''))} |"
        )
    return lines


def texts_in(document: Any) -> list[str]:
    """Every string in a JSON value, depth first."""
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        document = list(document.values())
    if isinstance(document, list):
        return [text for value in document for text in texts_in(value)]
    return []


def settings_named(document: Any) -> list[str]:
    """The settings a description names (MAX_TEXT_CHARS...), in order of first mention."""
    known = {name.upper() for name in Settings.model_fields}
    names: list[str] = []
    for text in texts_in(document):
        for found in SETTING_NAME.findall(text):
            if found in known and found not in names:
                names.append(found)
    return names


# What the "Keys" section lists: every setting that says who may call.
KEY_SETTINGS = ("API_KEYS", "API_KEYS_FILE", "METRICS_REQUIRE_KEY", "ADMIN_TOKEN")


def setting_row(name: str) -> str:
    field = Settings.model_fields[name.lower()]
    default = field.default
    shown = "unset" if default is None else f"`{default}`"
    return f"| `{name}` | {shown} | {cell(field.description or '')} |"


def referenced(schema: Any, schemas: dict[str, Any], seen: list[str]) -> None:
    """Adds to `seen` every schema `schema` refers to, depth first."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = ref_name(schema["$ref"])
            if name not in seen:
                seen.append(name)
                referenced(schemas[name], schemas, seen)
        for value in schema.values():
            referenced(value, schemas, seen)
    elif isinstance(schema, list):
        for value in schema:
            referenced(value, schemas, seen)


def response_body(response: dict[str, Any]) -> str:
    bodies = [
        f"{type_of(body['schema'])} ({media})" if body.get("schema") else media
        for media, body in response.get("content", {}).items()
    ]
    return "; ".join(bodies)


def operation_section(path: str, method: str, op: dict[str, Any], document: dict) -> list[str]:
    schemas = document["components"]["schemas"]
    lines = [
        f'<a id="op-{op["operationId"]}"></a>',
        f"### `{method.upper()} {path}`",
        "",
        f"{op.get('summary', '')} (operation id `{op['operationId']}`).",
        "",
        op.get("description", "").strip(),
        "",
    ]
    for requirement in op.get("security", []):
        schemes = document["components"].get("securitySchemes", {})
        for name in requirement:
            scheme = schemes.get(name, {})
            if scheme.get("scheme") == "bearer" and "403" in op.get("responses", {}):
                lines += [
                    "Admin: needs `Authorization: Bearer <ADMIN_TOKEN>` (see the 401 and 403 "
                    "below).",
                    "",
                ]
            elif scheme.get("scheme") == "bearer":
                lines += [
                    "When the service has API keys (`API_KEYS`, `API_KEYS_FILE`), needs "
                    "`Authorization: Bearer <key>` (see the 401 below).",
                    "",
                ]
            else:
                lines += [f"Needs the `{name}` credentials ({scheme.get('type', '')}).", ""]
    parameters = op.get("parameters", [])
    if parameters:
        lines += [
            "Parameters:",
            "",
            "| name | in | type | limits | description |",
            "|---|---|---|---|---|",
        ]
        for p in parameters:
            lines.append(
                f"| `{p['name']}` | {p['in']} | {cell(type_of(p['schema']))} "
                f"| {cell(limits_of(p['schema']))} | {cell(p.get('description', ''))} |"
            )
        lines.append("")
    body_schema = None
    if "requestBody" in op:
        media, body = next(iter(op["requestBody"]["content"].items()))
        body_schema = body["schema"]
        name = ref_name(body_schema["$ref"])
        lines += [f"Request body ({media}): {schema_link(name)}", ""]
        lines += fields_table(schemas[name])
        lines.append("")
        for example in schemas[name].get("examples", [])[:1]:
            lines += [
                "Example:",
                "",
                "```json",
                json.dumps(example, indent=2, ensure_ascii=False),
                "```",
                "",
            ]
    lines += ["Responses:", "", "| status | when | body |", "|---|---|---|"]
    for status, response in op["responses"].items():
        phrase = STATUS_PHRASES.get(status, "")
        lines.append(
            f"| {status} {phrase} | {cell(response.get('description', ''))} "
            f"| {cell(response_body(response))} |"
        )
    lines.append("")
    named = [op.get("description", "")]
    if body_schema is not None:
        used: list[str] = []
        referenced(body_schema, schemas, used)
        named += [schemas[n] for n in used]
    limits = settings_named(named) + (BODY_LIMITS if body_schema is not None else [])
    if limits:
        lines += ["Settings that limit it:", "", "| setting | default | meaning |", "|---|---|---|"]
        lines += [setting_row(name) for name in dict.fromkeys(limits)]
        lines.append("")
    return lines


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    schemas = document["components"]["schemas"]
    operations = [
        (path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()
    ]
    lines = [
        f"# {info['title']} HTTP API reference (version {info['version']})",
        "",
        "<!-- Written by `make openapi` (python -m service.api_reference openapi.json) from "
        "openapi.json; do not edit by hand. -->",
        "",
        info.get("summary", ""),
        "",
        "JSON in and out. The running service also serves this contract as `/openapi.json`, "
        "and as pages to read and try it at `/docs` (Swagger UI) and `/redoc` (ReDoc), with "
        "no asset from another host. Lists in a request are batches: one request may carry "
        "several inputs. Settings are environment variables of the server (see the README); "
        "the limits below name them with their defaults.",
        "",
        "## Operations",
        "",
        "| method and path | operation | summary |",
        "|---|---|---|",
    ]
    for path, method, op in operations:
        lines.append(
            f"| [`{method.upper()} {path}`](#op-{op['operationId']}) | `{op['operationId']}` "
            f"| {cell(op.get('summary', ''))} |"
        )
    lines += [
        "",
        "## Errors",
        "",
        "Every error the service raises itself has one body, "
        f'{schema_link("ErrorBody")}: `{{"detail": str, "code": str, "error": {{...}}}}`, '
        "where `error` says the same in the OpenAI API's shape (`message`, `type`, `code`, "
        "`param`), the text OpenAI-compatible clients show. A request that fails validation "
        "(a missing field, a wrong type, a value past a schema bound) gets 422 with FastAPI's "
        f"standard body, {schema_link('HTTPValidationError')}, and such an `error` beside its "
        "`detail`. A 401 carries `WWW-Authenticate: Bearer`, a 429 `Retry-After`. The "
        "statuses, as the operations declare them:",
        "",
        "| status | when |",
        "|---|---|",
    ]
    meanings: dict[str, list[str]] = {}
    for _, _, op in operations:
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                text = response.get("description", "")
                meanings.setdefault(status, [])
                if text not in meanings[status]:
                    meanings[status].append(text)
    for status in sorted(meanings):
        phrase = STATUS_PHRASES.get(status, "")
        lines.append(f"| {status} {phrase} | {cell('; '.join(meanings[status]))} |")
    lines.append("")
    schemes = document["components"].get("securitySchemes", {})
    if schemes:
        lines += [
            "## Keys",
            "",
            "The operations that name a security scheme below want `Authorization: Bearer "
            "<key>` when the service has API keys; without keys every operation is open. The "
            "others (`/healthz`, `/readyz`, `/metrics` unless `METRICS_REQUIRE_KEY`), this "
            "document and its pages are always open. The admin operations want `ADMIN_TOKEN` "
            "instead. The settings:",
            "",
            "| setting | default | meaning |",
            "|---|---|---|",
        ]
        lines += [setting_row(name) for name in KEY_SETTINGS]
        lines.append("")
    tag = None
    for path, method, op in operations:
        if op.get("tags", [None])[0] != tag:
            tag = op.get("tags", [None])[0]
            lines += [f"## {tag}", ""]
        lines += operation_section(path, method, op, document)
    lines += ["## Schemas", ""]
    for name, schema in schemas.items():
        lines += [f'<a id="schema-{name.lower()}"></a>', f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"].strip(), ""]
        table = fields_table(schema)
        lines += table or [f"Type: {type_of(schema)}"]
        lines.append("")
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else Path("openapi.json")
    sys.stdout.write(render(json.loads(source.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main(sys.argv[1:])
