"""/playground in a real browser (Debian's Chromium, driven by Playwright) against a real server of
tiny models (tests/conftest.py's `tiny_server`): each panel is used as a person would, and what
the page shows is checked against what the API answers for the same request. Every request the
page makes is recorded; one to another host is aborted and fails the test.

The tiny server's small limits (MAX_INPUTS 8, MAX_DENSITY_SAMPLES 16, MAX_NEW_TOKENS 16) are
part of the test: the page must work within them (it splits a density grid into requests of
MAX_INPUTS rows) or say what the server refused.

Screenshots go to the test's temporary folder and are checked there; with
PLAYGROUND_SCREENSHOTS=<folder> (e.g. docs/img) they are written there as playground-*.png.
Needs `chromium` (apt-get install chromium) and, for legible Chinese in the screenshots, a CJK
font (apt-get install fonts-wqy-zenhei); skipped without Chromium, except in CI (CI=true).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.test_docs_browser import CHROMIUM, CHROMIUM_FLAGS, IN_CI, MISSING, NAMED_HOST
from tests.tiny_store import TINY_MODELS

pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(MISSING) and not IN_CI, reason=MISSING)]

TIMEOUT_MS = 60_000
SCREENSHOTS = os.environ.get("PLAYGROUND_SCREENSHOTS")
VIEWPORT = {"width": 1280, "height": 1000}
LOGGED_STATUS = "Failed to load resource: the server responded with a status of"


@dataclass
class Seen:
    """What the browser asked for while it showed the page."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    sent_elsewhere: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def api_calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if urlsplit(r["url"]).path == path]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if MISSING:
        pytest.fail(f"{MISSING}; CI must run the browser test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh profile per test (its own sessionStorage)."""
    made = browser.new_context(viewport=VIEWPORT)
    made.set_default_timeout(TIMEOUT_MS)
    try:
        yield made
    finally:
        made.close()


def open_playground(
    context: Any, origin: str, tab: str = "", routes: tuple[tuple[str, Any], ...] = ()
) -> tuple[Any, Seen]:
    """A new tab on `origin`/playground (`#tab`: which panel shows), once it has read the models.
    Every request it makes is recorded; one to another host is aborted. `routes`: (pattern,
    handler) pairs that answer some of its requests in the browser instead."""
    seen = Seen()
    page = context.new_page()

    def elsewhere(route: Any) -> None:
        if route.request.url.startswith((origin + "/", "data:", "blob:")):
            route.continue_()
        else:
            seen.sent_elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", elsewhere)
    for pattern, handler in routes:
        page.route(pattern, handler)
    page.on(
        "request",
        lambda request: seen.requests.append(
            {
                "url": request.url,
                "method": request.method,
                "headers": request.headers,
                "body": request.post_data,
            }
        ),
    )
    # Chromium logs each answer of status 400 or more ("Failed to load resource"): the page
    # shows those itself. Any other error (a script's, the policy's) is kept.
    page.on(
        "console",
        lambda message: (
            seen.console_errors.append(message.text)
            if message.type == "error" and not message.text.startswith(LOGGED_STATUS)
            else None
        ),
    )
    page.goto(f"{origin}/playground" + (f"#{tab}" if tab else ""))
    page.wait_for_selector("body[data-ready=true]")
    return page, seen


def assert_only_own_host(seen: Seen, origin: str) -> None:
    assert seen.requests, "the browser recorded no request"
    assert seen.sent_elsewhere == [], f"the page asked other hosts for {seen.sent_elsewhere}"
    assert all(r["url"].startswith(origin + "/") for r in seen.requests)


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """A full-page screenshot, checked: a rendered page, not a blank or unstyled one."""
    from PIL import Image

    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"playground-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width == VIEWPORT["width"] and image.height >= VIEWPORT["height"] // 2
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        # Text, buttons and tables, antialiased: hundreds of colours; a blank page has a few.
        assert colours is not None and len(colours) > 200, len(colours or [])
    return path


def post(base: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{base}{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def origin(tiny_server: str) -> str:
    return tiny_server


# ------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("host", ["127.0.0.1", NAMED_HOST])
def test_the_page_lists_the_models_and_asks_only_its_own_host(
    context: Any, tiny_server: str, host: str
) -> None:
    origin = f"http://{host}:{urlsplit(tiny_server).port}"
    page, seen = open_playground(context, origin)
    listed = httpx.get(f"{tiny_server}/v1/models", timeout=30).json()["data"]
    shown = page.eval_on_selector_all(
        "#models-table tbody tr",
        "rows => rows.map(r => [...r.cells].slice(0, 4).map(c => c.textContent))",
    )
    assert shown == [[m["name"], m["task"], m["family"], str(m["serving_version"])] for m in listed]
    assert {m["name"] for m in listed} == set(TINY_MODELS.values())
    # Each panel offers its task's models.
    for panel, task in [("embeddings", "embedding"), ("qa", "qa"), ("generation", "generation")]:
        options = page.eval_on_selector_all(
            f"#{panel}-panel .model-select option", "os => os.map(o => o.value)"
        )
        assert options == [m["name"] for m in listed if m["task"] == task]
    # The page, its script and stylesheet, the models and openapi.json: all from this origin.
    paths = {urlsplit(r["url"]).path for r in seen.requests}
    assert {"/playground", "/playground/static/playground.js", "/v1/models"} <= paths
    page.close()
    assert_only_own_host(seen, origin)
    assert seen.console_errors == []


def test_the_page_is_served_with_a_policy_that_allows_only_its_origin(tiny_server: str) -> None:
    response = httpx.get(f"{tiny_server}/playground", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    # No host but this one named anywhere in the page or its assets.
    for path in ["/playground", "/playground/static/playground.js",
                 "/playground/static/playground.css"]:  # fmt: skip
        text = httpx.get(f"{tiny_server}{path}", timeout=30).text
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path
    openapi = httpx.get(f"{tiny_server}/openapi.json", timeout=30).json()
    assert not any(p.startswith("/playground") for p in openapi["paths"])


# --------------------------------------------------------------------------------- embeddings


def test_embeddings_show_the_cosine_matrix_of_the_apis_vectors(
    context: Any, origin: str, tmp_path: Path
) -> None:
    page, seen = open_playground(context, origin, "embeddings")
    sentences = ["我很喜欢这本书", "这本书很好看", "服务太差了", "房间很干净"]
    page.fill("#embeddings-panel textarea[name=input]", "\n".join(sentences))
    page.click("#embeddings-panel button[type=submit]")
    page.wait_for_selector("#embeddings-panel table.matrix td")
    shown = page.eval_on_selector_all(
        "#embeddings-panel table.matrix td",
        "cells => cells.map(c => [+c.dataset.row, +c.dataset.col, +c.dataset.value,"
        " c.textContent, getComputedStyle(c).backgroundColor])",
    )
    answer = post(origin, "/v1/embeddings", {"model": TINY_MODELS["embedding"], "input": sentences})
    vectors = [d["embedding"] for d in answer["data"]]
    assert len(shown) == len(sentences) ** 2
    for row, col, value, text, background in shown:
        a, b = vectors[row], vectors[col]
        expected = sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
            sum(x * x for x in a) * sum(y * y for y in b)
        )
        assert value == pytest.approx(expected, abs=1e-6)
        assert text == f"{expected:.3f}"
        assert background != "rgba(0, 0, 0, 0)"  # coloured by its value
    # The page sent what the API was asked here.
    (call,) = seen.api_calls("/v1/embeddings")
    assert json.loads(call["body"]) == {"model": TINY_MODELS["embedding"], "input": sentences}
    screenshot(page, "embeddings", tmp_path)
    page.close()
    assert_only_own_host(seen, origin)
    assert seen.console_errors == []


# ------------------------------------------------------------------------ question answering

QUESTION = "张伟住在哪里？"
PASSAGES = ["张伟今年35岁。张伟住在北京。", "李娜住在上海。李娜的职业是医生。"]


def ask(page: Any) -> None:
    page.fill("#qa-panel input[name=question]", QUESTION)
    boxes = page.locator("#qa-panel .passage-inputs textarea")
    for i, passage in enumerate(PASSAGES):
        boxes.nth(i).fill(passage)
    page.check("#qa-panel input[name=extractive]")
    page.check("#qa-panel input[name=force_answer]")
    page.fill("#qa-panel input[name=beam_size]", "2")
    page.click("#qa-panel button[type=submit]")
    page.wait_for_selector("#qa-panel .candidates tbody tr")


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def test_qa_shows_the_answer_in_its_passage_and_the_candidates(
    context: Any, origin: str, tmp_path: Path
) -> None:
    page, seen = open_playground(context, origin, "qa")
    ask(page)
    request = {
        "model": TINY_MODELS["qa"], "question": QUESTION, "passages": PASSAGES,
        "extractive": True, "force_answer": True, "beam_size": 2,
    }  # fmt: skip
    answer = post(origin, "/v1/qa", request)
    assert answer["answer"] is not None  # force_answer
    shown = page.locator("#qa-panel .answer-text").get_attribute("data-answer")
    assert shown == answer["answer"]
    # Highlighted in the passage it came from, and only there. The mark may be cut into several
    # runs where the evidence weight changes inside the answer (the server returns evidence now).
    marks = page.locator("#qa-panel mark.answer")
    assert marks.count() >= 1
    passage = page.locator("#qa-panel .passage", has=page.locator("mark.answer"))
    assert passage.count() == 1
    assert passage.get_attribute("data-index") == str(answer["passage_index"])
    assert squeezed("".join(marks.all_inner_texts())) == squeezed(answer["answer"])
    rows = page.eval_on_selector_all(
        "#qa-panel .candidates tbody tr",
        "rows => rows.map(r => [r.querySelector('.candidate-text').textContent,"
        " r.querySelector('.candidate-score').textContent])",
    )
    assert rows == [[c["text"], f"{c['score']:.3f}"] for c in answer["candidates"]]
    # return_evidence went only with a server whose openapi.json lists it.
    listed = "return_evidence" in json.dumps(
        httpx.get(f"{origin}/openapi.json", timeout=30).json()["components"]["schemas"]["QARequest"]
    )
    sent = [json.loads(c["body"]) for c in seen.api_calls("/v1/qa")]
    assert len(sent) == 1 and sent[0].get("return_evidence", False) is listed
    assert {k: v for k, v in sent[0].items() if k != "return_evidence"} == request
    screenshot(page, "qa", tmp_path)
    page.close()
    assert_only_own_host(seen, origin)
    assert seen.console_errors == []


# What each passage character of the page's QA panel is shaded with: its evidence weight, or 0.
SHADES_JS = """() => [...document.querySelectorAll('#qa-panel .passage')].map(passage => {
  const weights = [];
  const walker = document.createTreeWalker(passage, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('.tag')) continue;
    const span = node.parentElement.closest('.evidence');
    for (let i = 0; i < node.textContent.length; i++) weights.push(span ? +span.dataset.weight : 0);
  }
  return weights;
})"""


def test_qa_evidence_spans_are_shaded_by_weight(context: Any, origin: str, tmp_path: Path) -> None:
    """The evidence of the candidate shown ({passage_index, start, end, text, weight} each)
    shaded in the passages, darker for a larger weight. A server that returns no evidence gets
    some added to its answer on the way to the page, so that the drawing is tested either way."""
    added = [
        {"passage_index": 0, "start": 8, "end": 10, "text": PASSAGES[0][8:10], "weight": 0.3},
        {"passage_index": 0, "start": 12, "end": 14, "text": PASSAGES[0][12:14], "weight": 0.6},
        {"passage_index": 1, "start": 0, "end": 2, "text": PASSAGES[1][0:2], "weight": 0.1},
    ]
    answers: list[dict[str, Any]] = []

    def add_evidence(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        for candidate in body["candidates"]:
            candidate.setdefault("evidence", added)
        answers.append(body)
        route.fulfill(response=response, json=body)

    page, seen = open_playground(context, origin, "qa", routes=(("**/v1/qa", add_evidence),))
    ask(page)
    (answer,) = answers
    best = (answer["answer"], answer["passage_index"])
    shown = [c for c in answer["candidates"] if (c["text"], c["passage_index"]) == best]
    evidence = shown[0]["evidence"] if shown else []
    assert evidence, "no candidate of the answer's text and passage, or it has no evidence"
    expected = [[0.0] * len(p) for p in PASSAGES]
    for span in evidence:
        weights = expected[span["passage_index"]]
        for c in range(span["start"], span["end"]):
            weights[c] = max(weights[c], span["weight"])
    shades = page.evaluate(SHADES_JS)
    assert len(shades) == len(expected)
    for shown_weights, expected_weights in zip(shades, expected, strict=True):
        assert shown_weights == pytest.approx(expected_weights)
    # Darker for a larger weight.
    opacity = page.eval_on_selector_all(
        "#qa-panel .evidence",
        "spans => spans.map(s => [+s.dataset.weight,"
        " +getComputedStyle(s).backgroundColor.match(/[\\d.]+/g)[3]])",
    )
    by_weight = sorted({(weight, alpha) for weight, alpha in opacity})
    assert len({w for w, _ in by_weight}) == len(by_weight)  # one shade a weight
    alphas = [alpha for _, alpha in by_weight]
    assert alphas == sorted(alphas) and len(set(alphas)) == len(alphas)
    assert page.locator("#qa-panel .evidence-legend").is_visible()
    screenshot(page, "qa-evidence", tmp_path)
    page.close()
    assert_only_own_host(seen, origin)


def test_qa_asks_again_without_evidence_when_the_server_refuses_the_field(
    context: Any, origin: str
) -> None:
    """openapi.json unreadable: the page asks for evidence, and on a 422 naming the field asks
    again without it."""
    page, seen = open_playground(
        context,
        origin,
        "qa",
        routes=(("**/openapi.json", lambda r: r.fulfill(status=404, json={"detail": "no"})),),
    )
    assert page.is_checked("#qa-panel input[name=return_evidence]")
    ask(page)
    sent = [json.loads(c["body"]) for c in seen.api_calls("/v1/qa")]
    assert sent[0]["return_evidence"] is True
    refused = httpx.post(f"{origin}/v1/qa", json=sent[0], timeout=60).status_code == 422
    if refused:
        assert len(sent) == 2 and "return_evidence" not in sent[1]
        assert page.locator("#qa-panel .evidence-note").inner_text() != ""
    else:
        assert len(sent) == 1
    assert page.locator("#qa-panel > .error").is_hidden()
    page.close()
    assert_only_own_host(seen, origin)


# --------------------------------------------------------------------------------- generation


def test_generation_streams_the_apis_texts_token_by_token(
    context: Any, origin: str, tmp_path: Path
) -> None:
    page, seen = open_playground(context, origin, "generation")
    page.select_option("#generation-panel .model-select", TINY_MODELS["generation"])
    page.select_option("#generation-panel select[name=label]", "pos")
    page.fill("#generation-panel input[name=num_samples]", "2")
    page.fill("#generation-panel input[name=seed]", "7")
    # Past the tiny server's MAX_NEW_TOKENS (16): the service's error, shown with its code.
    page.fill("#generation-panel input[name=max_new_tokens]", "32")
    page.click("#generation-panel button[type=submit]")
    error = page.locator("#generation-panel > .error")
    error.wait_for(state="visible")
    assert error.get_attribute("data-code") == "payload_too_large"
    assert "MAX_NEW_TOKENS" in error.inner_text() and "413" in error.inner_text()

    page.fill("#generation-panel input[name=max_new_tokens]", "16")
    page.click("#generation-panel button[type=submit]")
    page.wait_for_selector("#generation-panel .samples[data-done=true]")
    assert error.is_hidden()
    texts = page.eval_on_selector_all(
        "#generation-panel .sample",
        "boxes => boxes.map(b => [b.querySelector('.written').textContent, +b.dataset.chunks,"
        " +b.dataset.tokens, b.dataset.finish])",
    )
    answer = post(
        origin,
        "/v1/generate",
        {"model": TINY_MODELS["generation"], "condition": {"label": "pos"}, "num_samples": 2,
         "max_new_tokens": 16, "seed": 7},
    )  # fmt: skip
    assert [t[0] for t in texts] == [s["text"] for s in answer["samples"]]
    for (_, chunks, tokens, finish), sample in zip(texts, answer["samples"], strict=True):
        assert tokens == sample["tokens"] and finish == sample["finish_reason"]
        assert chunks >= sample["tokens"]  # a chunk a token (and one that ends it)
    (call,) = [json.loads(c["body"]) for c in seen.api_calls("/v1/generate")][1:]
    assert call["stream"] is True
    screenshot(page, "generation", tmp_path)
    page.close()
    assert_only_own_host(seen, origin)


# The page's fetch of /v1/generate, answered by the server as usual but handed to the page one
# event at a time, when the test calls window.releaseEvent() (the test sets the pace; a real
# stream of a tiny model may arrive in one read).
PACED_FETCH_JS = """() => {
  const realFetch = window.fetch;
  window.pendingEvents = null;
  window.fetch = async (url, init) => {
    const response = await realFetch(url, init);
    if (!String(url).endsWith('/v1/generate') || !response.ok) return response;
    const events = (await response.text()).split('\\n\\n').filter(Boolean);
    window.allEvents = [...events];
    const encoder = new TextEncoder();
    const body = new ReadableStream({
      start(controller) {
        init.signal.addEventListener('abort', () => {
          window.aborted = true;
          controller.error(new DOMException('stopped', 'AbortError'));
        });
      },
      pull(controller) {
        return new Promise(resolve => {
          window.releaseEvent = () => {
            const event = events.shift();
            if (event === undefined) controller.close();
            else controller.enqueue(encoder.encode(event + '\\n\\n'));
            resolve();
          };
        });
      },
    });
    return new Response(body, {status: response.status, headers: response.headers});
  };
}"""


def test_generation_shows_each_event_as_it_arrives(context: Any, origin: str) -> None:
    page, seen = open_playground(context, origin, "generation")
    page.select_option("#generation-panel .model-select", TINY_MODELS["generation"])
    page.select_option("#generation-panel select[name=label]", "pos")
    page.fill("#generation-panel input[name=num_samples]", "1")
    page.fill("#generation-panel input[name=max_new_tokens]", "8")
    page.fill("#generation-panel input[name=seed]", "7")  # 8 tokens, no early stop
    page.evaluate(PACED_FETCH_JS)
    page.click("#generation-panel button[type=submit]")
    page.wait_for_function("() => typeof window.releaseEvent === 'function'")
    events = page.evaluate("() => window.allEvents")
    assert events[-1] == "data: [DONE]" and len(events) >= 3
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    sample = page.locator("#generation-panel .sample")
    shown = []
    for count in range(1, len(chunks) + 1):
        page.evaluate("() => window.releaseEvent()")
        page.wait_for_function(
            "n => +document.querySelector('#generation-panel .sample').dataset.chunks === n",
            arg=count,
        )
        shown.append(sample.locator(".written").inner_text())
        assert page.locator("#generation-panel .samples[data-done]").count() == 0
    # The text after each event is the text of the events so far: shown as they came.
    assert shown == ["".join(c["text"] for c in chunks[:n]) for n in range(1, len(chunks) + 1)]
    assert len(set(shown)) > 2
    page.evaluate("() => window.releaseEvent()")  # [DONE]
    page.evaluate("() => window.releaseEvent()")  # the end of the body
    page.wait_for_selector("#generation-panel .samples[data-done=true]")
    assert sample.get_attribute("data-finish") == chunks[-1]["finish_reason"]
    page.close()
    assert_only_own_host(seen, origin)


def test_stop_ends_the_stream_and_keeps_what_was_written(context: Any, origin: str) -> None:
    page, seen = open_playground(context, origin, "generation")
    page.select_option("#generation-panel .model-select", TINY_MODELS["generation"])
    page.select_option("#generation-panel select[name=label]", "pos")
    page.fill("#generation-panel input[name=num_samples]", "1")
    page.fill("#generation-panel input[name=max_new_tokens]", "8")
    page.fill("#generation-panel input[name=seed]", "7")
    page.evaluate(PACED_FETCH_JS)
    page.click("#generation-panel button[type=submit]")
    page.wait_for_function("() => typeof window.releaseEvent === 'function'")
    first = json.loads(page.evaluate("() => window.allEvents")[0].removeprefix("data: "))
    page.evaluate("() => window.releaseEvent()")
    sample = page.locator("#generation-panel .sample")
    page.wait_for_function(
        "() => +document.querySelector('#generation-panel .sample').dataset.chunks === 1"
    )
    assert page.is_disabled("#generation-panel button[type=submit]")
    page.click("#generation-panel button.stop")
    page.wait_for_function(
        "() => document.querySelector('#generation-panel .status').textContent.includes('stopped')"
    )
    assert page.evaluate("() => window.aborted") is True  # the request's signal fired
    assert sample.locator(".written").inner_text() == first["text"]
    assert page.locator("#generation-panel > .error").is_hidden()
    assert page.is_enabled("#generation-panel button[type=submit]")
    assert page.is_disabled("#generation-panel button.stop")
    page.close()
    assert_only_own_host(seen, origin)


def test_generation_with_a_vector_condition(context: Any, origin: str) -> None:
    page, seen = open_playground(context, origin, "generation")
    page.select_option("#generation-panel .model-select", TINY_MODELS["generation-vector"])
    assert page.locator("#generation-panel select[name=label]").is_hidden()
    vector = page.locator("#generation-panel input[name=vector]")
    assert vector.input_value() == "0, 0, 0, 0"  # the manifest's condition_dim
    page.fill("#generation-panel input[name=max_new_tokens]", "8")
    # A vector of the wrong size: the service's 400, shown.
    vector.fill("1, 2")
    page.click("#generation-panel button[type=submit]")
    error = page.locator("#generation-panel > .error")
    error.wait_for(state="visible")
    assert error.get_attribute("data-code") == "bad_input"
    vector.fill("0.5, -1, 0, 2")
    page.click("#generation-panel button[type=submit]")
    page.wait_for_selector("#generation-panel .samples[data-done=true]")
    assert error.is_hidden()
    last = json.loads(seen.api_calls("/v1/generate")[-1]["body"])
    assert last["condition"] == {"vector": [0.5, -1, 0, 2]}
    assert all(b for b in page.eval_on_selector_all(
        "#generation-panel .sample", "bs => bs.map(b => b.dataset.finish)"))  # fmt: skip
    page.close()
    assert_only_own_host(seen, origin)


# ------------------------------------------------------------------------------------ density


def test_density_heat_map_samples_and_scores_match_the_api(
    context: Any, origin: str, tmp_path: Path
) -> None:
    from PIL import Image, ImageStat

    page, seen = open_playground(context, origin, "density")
    page.select_option("#density-panel .model-select", TINY_MODELS["density"])
    page.fill("#density-panel input[name=grid]", "40")
    # More than the tiny server's MAX_DENSITY_SAMPLES (16): the page draws what it may.
    page.fill("#density-panel input[name=num_samples]", "50")
    page.click("#density-panel .map-form button[type=submit]")
    canvas = page.locator("#density-canvas[data-scored]")
    canvas.wait_for()
    assert canvas.get_attribute("data-scored") == str(40 * 40)
    assert canvas.get_attribute("data-samples") == "16"
    assert int(canvas.get_attribute("data-samples-inside") or 0) > 8
    # The grid went in requests of MAX_INPUTS (8) rows, after the first, larger one was refused.
    sizes = [len(json.loads(c["body"])["inputs"]) for c in seen.api_calls("/v1/density/score")]
    assert sizes[0] > 8 and set(sizes[1:]) == {8} and sum(sizes[1:]) == 1600
    sample_calls = [json.loads(c["body"]) for c in seen.api_calls("/v1/density/sample")]
    assert sample_calls[-1]["num_samples"] == 16
    assert page.locator("#density-panel > .error").is_hidden()

    # The canvas is a heat-map: many colours, bright where the model puts its mass.
    canvas_png = tmp_path / "canvas.png"
    canvas.screenshot(path=str(canvas_png))
    with Image.open(canvas_png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 100, len(colours or [])
        grey = rgb.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 20
        width, height = grey.size
        centre = grey.crop((width // 3, height // 3, 2 * width // 3, 2 * height // 3))
        corner = grey.crop((0, 0, width // 8, height // 8))
        assert ImageStat.Stat(centre).mean[0] > ImageStat.Stat(corner).mean[0] + 40

    # A grid cell's value, read by pointing at it, is the API's log p at the cell's centre.
    box = [float(page.input_value(f"#density-panel input[name={n}]"))
           for n in ("x_min", "x_max", "y_min", "y_max")]  # fmt: skip
    bounds = page.locator("#density-canvas").bounding_box()
    i, j = 13, 22  # column, row (row 0 at the top)
    page.mouse.move(bounds["x"] + (i + 0.5) * bounds["width"] / 40,
                    bounds["y"] + (j + 0.5) * bounds["height"] / 40)  # fmt: skip
    hover = page.locator("#density-panel .hover").inner_text()
    value = float(re.search(r"log p ≈ (-?[\d.]+)", hover).group(1))  # type: ignore[union-attr]
    x = box[0] + (i + 0.5) * (box[1] - box[0]) / 40
    y = box[3] - (j + 0.5) * (box[3] - box[2]) / 40
    scored = post(
        origin, "/v1/density/score", {"model": TINY_MODELS["density"], "inputs": [[x, y]]}
    )
    assert value == pytest.approx(scored["log_prob"][0], abs=2e-3)

    # Clicking the map scores that exact point in the rows table.
    page.mouse.click(bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 3)
    page.wait_for_selector("#density-panel .scores tbody tr")
    row = [float(v) for v in page.input_value("#density-panel textarea[name=rows]").split(",")]
    shown = float(page.locator("#density-panel .scores tbody tr").get_attribute("data-log-prob"))
    scored = post(origin, "/v1/density/score", {"model": TINY_MODELS["density"], "inputs": [row]})
    assert shown == pytest.approx(scored["log_prob"][0], abs=1e-9)
    screenshot(page, "density", tmp_path)
    page.close()
    assert_only_own_host(seen, origin)
    assert seen.console_errors == []


def test_density_scores_pasted_rows_and_shows_a_refusal(context: Any, origin: str) -> None:
    page, seen = open_playground(context, origin, "density")
    page.select_option("#density-panel .model-select", TINY_MODELS["density"])
    rows = [[0.5, 0.25], [1.0, -0.5], [-2.0, 3.0]]
    page.fill("#density-panel textarea[name=rows]", "\n".join(f"{a}, {b}" for a, b in rows))
    page.click("#density-panel .rows-form button[type=submit]")
    page.wait_for_selector("#density-panel .scores tbody tr:nth-child(3)")
    shown = page.eval_on_selector_all(
        "#density-panel .scores tbody tr", "rows => rows.map(r => +r.dataset.logProb)"
    )
    scored = post(origin, "/v1/density/score", {"model": TINY_MODELS["density"], "inputs": rows})
    assert shown == pytest.approx(scored["log_prob"], abs=1e-9)
    # A row of the wrong length: the service's 400 with its detail.
    page.fill("#density-panel textarea[name=rows]", "1, 2, 3")
    page.click("#density-panel .rows-form button[type=submit]")
    error = page.locator("#density-panel > .error")
    error.wait_for(state="visible")
    assert error.get_attribute("data-code") == "bad_input"
    assert error.get_attribute("data-status") == "400"
    # Sampled rows fill the box, ready to score.
    page.click("#density-panel button.sample-rows")
    page.wait_for_function(
        "() => document.querySelector('#density-panel textarea[name=rows]').value"
        ".split('\\n').length === 5"
    )
    page.close()
    assert_only_own_host(seen, origin)


# ------------------------------------------------------------------------------------ API key


def test_the_api_key_is_sent_as_a_bearer_token_and_kept_for_the_tab(
    context: Any, origin: str
) -> None:
    page, seen = open_playground(context, origin)
    assert all("authorization" not in r["headers"] for r in seen.requests)
    page.fill("#api-key", "playground-test-key")
    before = len(seen.requests)
    page.click("#key-save")
    page.wait_for_function(
        "() => document.querySelector('#key-state').textContent.includes('kept')"
    )
    page.click("#embeddings-panel button[type=submit]")
    page.wait_for_selector("#embeddings-panel table.matrix td")
    after = len(seen.requests)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#api-key") == "playground-test-key"  # sessionStorage
    assert len(seen.requests) > after
    api = [
        r for r in seen.requests[before:]
        if urlsplit(r["url"]).path.startswith(("/v1/", "/openapi"))
    ]  # fmt: skip
    # Every API call since the key was given carried it: embeddings, and the reload's calls.
    assert {urlsplit(r["url"]).path for r in api} >= {"/v1/embeddings", "/v1/models"}
    assert all(r["headers"].get("authorization") == "Bearer playground-test-key" for r in api)
    # Another tab has its own sessionStorage: no key there.
    other, _ = open_playground(context, origin)
    assert other.input_value("#api-key") == ""
    other.close()
    page.click("#key-clear")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#api-key") == ""
    page.close()
    assert_only_own_host(seen, origin)


def test_a_refused_model_list_is_shown_with_what_to_do(context: Any, origin: str) -> None:
    """A server with API_KEYS refuses the list without a key: its 401 body is shown, with where
    the key goes, and the panels say why they offer no model."""
    refusal = {"detail": "an API key is needed", "code": "unauthorized"}

    def refuse_without_key(route: Any) -> None:
        if route.request.headers.get("authorization") == "Bearer right-key":
            route.continue_()
        else:
            route.fulfill(status=401, json=refusal)

    page, seen = open_playground(context, origin, routes=(("**/v1/models", refuse_without_key),))
    error = page.locator("#models-panel > .error")
    assert error.is_visible() and error.get_attribute("data-code") == "unauthorized"
    assert "an API key is needed" in error.inner_text() and "API key" in error.inner_text()
    assert "could not be read" in page.locator("#embeddings-panel > .error").inner_text()
    assert page.is_disabled("#embeddings-panel button[type=submit]")
    page.fill("#api-key", "right-key")
    page.click("#key-save")
    page.wait_for_selector("#models-table tbody tr")
    assert error.is_hidden() and page.locator("#embeddings-panel > .error").is_hidden()
    assert page.is_enabled("#embeddings-panel button[type=submit]")
    page.close()
    assert_only_own_host(seen, origin)
