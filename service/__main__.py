"""`python -m service`: serve on HOST:PORT with uvicorn (one process; the batcher wants one)."""

from __future__ import annotations

import os

import uvicorn

from service.app import create_app


def main() -> None:
    uvicorn.run(
        create_app(),
        host=os.environ.get("HOST", "0.0.0.0"),
        port=int(os.environ.get("PORT", "8000")),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        timeout_graceful_shutdown=int(float(os.environ.get("REQUEST_TIMEOUT_S", "30"))) + 5,
    )


if __name__ == "__main__":
    main()
