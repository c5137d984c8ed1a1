"""CORS_ALLOW_ORIGINS in a real browser (Debian's Chromium, driven by Playwright): a page served
from another origin (a static file server on another port) calls the API with `fetch`, an API
key and a JSON body, which makes Chromium send its own preflight first. From the listed origin
the answer, its `X-Model-Version` and a 401's body are readable; from an origin not listed the
browser refuses the answer (`fetch` fails). Skipped without Chromium, except in CI (CI=true)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests import test_playground_browser
from tests.live_server import live_server
from tests.test_docs_browser import IN_CI, MISSING, NAMED_HOST
from tests.tiny_store import TINY_MODELS, tiny_versions

pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(MISSING) and not IN_CI, reason=MISSING)]

# The playground test's module fixture `browser` (one headless Chromium), here as `chromium`.
chromium = test_playground_browser.browser
MODEL = TINY_MODELS["embedding"]
KEY = "cors-browser-key"
# What the page runs: the API's answer as the page can see it, or the error `fetch` threw.
FETCH = """async ([api, model, key]) => {
  const headers = {"Content-Type": "application/json"};
  if (key) headers["Authorization"] = "Bearer " + key;
  try {
    const r = await fetch(api + "/v1/embeddings", {
      method: "POST", headers, body: JSON.stringify({model, input: ["a text"]}),
    });
    return {status: r.status, version: r.headers.get("X-Model-Version"), body: await r.json()};
  } catch (e) {
    return {error: String(e)};
  }
}"""


@pytest.fixture(scope="module")
def page_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A static server of one empty page on a free loopback port: the pages' origin."""
    folder = tmp_path_factory.mktemp("cors-page")
    (folder / "index.html").write_text("<!doctype html><title>app</title>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield int(server.server_address[1])
        finally:
            server.shutdown()
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, page_port: int) -> Iterator[str]:
    """The service with API keys, allowing the page's 127.0.0.1 origin only."""
    store = tiny_versions(tmp_path_factory, ["embedding"], tmp_path_factory.mktemp("cors-b") / "s")
    allowed = f"http://127.0.0.1:{page_port}"
    with live_server(store, CORS_ALLOW_ORIGINS=allowed, API_KEYS=KEY) as url:
        yield url


def call_from(chromium: Any, page_origin: str, api: str, key: str | None) -> dict[str, Any]:
    context = chromium.new_context()
    context.set_default_timeout(60_000)
    try:
        page = context.new_page()
        page.goto(f"{page_origin}/index.html")
        result: dict[str, Any] = page.evaluate(FETCH, [api, MODEL, key])
        return result
    finally:
        context.close()


def test_a_page_of_the_allowed_origin_reads_the_answer_and_the_401(
    chromium: Any, api: str, page_port: int
) -> None:
    origin = f"http://127.0.0.1:{page_port}"
    answer = call_from(chromium, origin, api, KEY)
    assert answer.get("status") == 200, answer
    assert answer["version"] == "1"  # an exposed header
    assert len(answer["body"]["data"]) == 1
    refused = call_from(chromium, origin, api, None)
    assert refused.get("status") == 401, refused
    assert refused["body"]["code"] == "unauthorized"


def test_a_page_of_another_origin_cannot_read_the_answer(
    chromium: Any, api: str, page_port: int
) -> None:
    # The same page under another name for 127.0.0.1 (CHROMIUM_FLAGS map it): another origin.
    answer = call_from(chromium, f"http://{NAMED_HOST}:{page_port}", api, KEY)
    assert "Failed to fetch" in answer.get("error", ""), answer
