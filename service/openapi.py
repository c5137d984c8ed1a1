"""The service's OpenAPI document, as committed in `openapi.json` (`make openapi` rewrites it).

    python -m service.openapi > openapi.json

The document is built from the routes and schemas alone, with the default settings (no `.env`,
no environment), so it is the same on every machine; clients are generated from the file.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from service.app import create_app
from service.settings import Settings


def openapi_document() -> dict[str, Any]:
    """The document the app serves at /openapi.json under default settings."""
    settings = Settings(_env_file=None)
    return create_app(settings).openapi()


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dumps(openapi_document()))
