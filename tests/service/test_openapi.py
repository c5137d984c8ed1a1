"""The committed OpenAPI document is what the app serves, it is complete (ids, descriptions,
examples, error statuses), and the committed client is what `make client` generates from it."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from service.openapi import dumps, openapi_document
from tests.live_server import ROOT

OPENAPI = ROOT / "openapi.json"
CLIENT = ROOT / "clients" / "python"
PACKAGE = "kexue_serve_client"


def test_the_committed_document_is_the_served_one() -> None:
    assert OPENAPI.read_text(encoding="utf-8") == dumps(openapi_document()), (
        "openapi.json is stale: run `make client` (it rewrites openapi.json and clients/python)"
    )


def test_every_operation_is_described_with_its_errors() -> None:
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    ids = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            ids.append(op["operationId"])
            assert op.get("description") and op.get("tags"), where
            assert "200" in op["responses"], where
            for status, response in op["responses"].items():
                # /readyz's 503 is its report of what is not ready, not an error.
                if status.startswith(("4", "5")) and path != "/readyz":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[-1] in {"ErrorBody", "HTTPValidationError"}, where
            if "requestBody" not in op:
                continue
            # Every JSON body: an example, validation errors (422), and the errors of a model call.
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            body = schemas[ref.rsplit("/", 1)[-1]]
            assert body.get("examples"), f"{where}: no request example"
            assert {"400", "404", "413", "422", "429", "500", "503", "504"} <= set(
                op["responses"]
            ), where
            # The limits that are settings are named where a client reads them.
            assert "Limits (settings)" in op["description"], where
    assert len(ids) == len(set(ids)) == 11


def test_the_committed_client_is_generated_from_the_document(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    generator = shutil.which("openapi-python-client", path=str(bin_dir))
    assert generator, "openapi-python-client is a dev dependency: `make install`"
    out = tmp_path / "python"
    subprocess.run(
        [
            generator, "generate", "--path", str(OPENAPI), "--output-path", str(out),
            "--meta", "setup", "--config", str(ROOT / "clients" / "openapi-python-client.yaml"),
        ],
        cwd=tmp_path, check=True, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip

    def differences(a: Path, b: Path) -> list[str]:
        compared = filecmp.dircmp(a, b, ignore=["__pycache__", ".ruff_cache"])
        found = [str(a / n) for n in compared.left_only + compared.right_only]
        found += [str(a / n) for n in compared.diff_files]
        for sub in compared.common_dirs:
            found += differences(a / sub, b / sub)
        return found

    stale = differences(CLIENT / PACKAGE, out / PACKAGE)
    assert not stale, f"clients/python is stale ({stale[:5]}): run `make client`"


def test_integer_bounds_admit_exactly_what_the_server_takes() -> None:
    """Bounds are written as floats: past 2**53 a declared `maximum` rounds (2**63 - 1 read back
    as 2**63), so a client would send a seed the server refuses. Each such bound must still
    admit the largest value the schema takes and refuse the next."""
    from pydantic import TypeAdapter, ValidationError

    from service.schemas.density import DensitySampleRequest
    from service.schemas.generation import GenerateRequest

    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    for model in (DensitySampleRequest, GenerateRequest):
        [bound] = [
            option
            for option in document["components"]["schemas"][model.__name__]["properties"]["seed"][
                "anyOf"
            ]
            if option.get("type") == "integer"
        ]
        largest = 2**63 - 1
        adapter = TypeAdapter(model)
        base = (
            {"num_samples": 1} if model is DensitySampleRequest else {"condition": {"label": "a"}}
        )
        adapter.validate_python({**base, "seed": largest})
        try:
            adapter.validate_python({**base, "seed": largest + 1})
        except ValidationError:
            pass
        else:
            raise AssertionError(f"{model.__name__} takes seed 2**63")
        if "maximum" in bound:
            assert largest <= bound["maximum"] and not largest + 1 <= bound["maximum"], bound
        else:
            assert largest < bound["exclusiveMaximum"] <= largest + 1, bound


def test_request_examples_work_against_the_demo_models() -> None:
    """/docs' Try it out sends each request's example: against the demo store it must answer
    200. The density example was a 2-D row, and demo-digits takes 64 values (400)."""
    from sklearn.datasets import load_digits

    from service.schemas.density import DensityScoreRequest
    from service.schemas.generation import GenerateRequest
    from training.demo import DEMO_TOPICS

    digits = load_digits().data  # what demo-digits is trained on (builtin:digits)
    [example] = DensityScoreRequest.model_config["json_schema_extra"]["examples"]  # type: ignore[index]
    for row in example["inputs"]:
        assert len(row) == digits.shape[1] == 64
        assert all(0 <= value <= 16 and value == int(value) for value in row)
    [example] = GenerateRequest.model_config["json_schema_extra"]["examples"]  # type: ignore[index]
    assert example["condition"]["label"] in DEMO_TOPICS
