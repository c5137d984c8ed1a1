"""/docs and /redoc in a real browser (Debian's Chromium, driven by Playwright) against a real
server: the page shows every operation of openapi.json, and nothing went to another host.

Two origins: 127.0.0.1, and a host name that is not localhost (mapped to 127.0.0.1 inside the
browser), as a deployment has; Swagger UI treats localhost differently (its validator badge).
Requests to other hosts are caught twice: the browser resolves no other name, and a route
handler aborts and records anything bound elsewhere that reached the network layer.

Needs `chromium` (apt-get install chromium; .ci/run installs it). Without it the test is skipped,
except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.live_server import ROOT

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
NAMED_HOST = "kexue-serve.test"
# The flags a headless run on a server wants, and none of Chromium's own calls home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Only the service's addresses resolve: a request to any other host cannot leave.
    f"--host-resolver-rules=MAP {NAMED_HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
OPERATIONS = [
    op["operationId"]
    for path in json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))["paths"].values()
    for op in path.values()
]
PAGE_TIMEOUT_MS = 120_000


def _missing() -> str:
    """What the test lacks to run, or ''."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (a dev dependency: make install)"
    return ""


MISSING = _missing()
IN_CI = os.environ.get("CI") == "true"
# Skipped at collection, before the server's store is built; in CI the fixture fails instead.
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(MISSING) and not IN_CI, reason=MISSING)]


def _browser_or_fail() -> Any:
    """Playwright's sync API, or a failure saying what is missing (CI must run this test)."""
    if MISSING:
        pytest.fail(f"{MISSING}; CI must run the browser test")
    from playwright.sync_api import sync_playwright

    return sync_playwright


@dataclass
class Visit:
    """What the browser asked for while it showed one page."""

    requests: list[str] = field(default_factory=list)
    blocked_by_policy: list[str] = field(default_factory=list)
    sent_elsewhere: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_playwright = _browser_or_fail()
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        # A persistent context on a fresh folder: Chromium's --user-data-dir, made here.
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def visit(context: Any, url: str, ready_selector: str, screenshot: Path) -> tuple[Any, Visit]:
    """Open `url`, wait for `ready_selector`, screenshot it; the page stays open."""
    seen = Visit()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    page = context.new_page()

    def route(route: Any) -> None:
        if route.request.url.startswith((origin + "/", "blob:", "data:")):
            route.continue_()
        else:
            seen.sent_elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on(
        "requestfailed",
        lambda request: (
            seen.blocked_by_policy.append(request.url) if request.failure == "csp" else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            seen.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.goto(url, wait_until="networkidle", timeout=PAGE_TIMEOUT_MS)
    # Said at once: a page that loads its scripts from a CDN would only time out below.
    assert seen.sent_elsewhere == [], f"{url} asked other hosts for {seen.sent_elsewhere}"
    page.wait_for_selector(ready_selector, timeout=PAGE_TIMEOUT_MS)
    page.screenshot(path=str(screenshot))
    return page, seen


def assert_nothing_from_another_host(seen: Visit, origin: str) -> None:
    assert seen.requests, "the browser recorded no request"
    elsewhere = [u for u in seen.requests if not u.startswith((origin + "/", "blob:", "data:"))]
    # Nothing bound elsewhere reached the network layer; what was asked for, the page's
    # Content-Security-Policy stopped inside the browser.
    assert seen.sent_elsewhere == [], seen.sent_elsewhere
    assert sorted(elsewhere) == sorted(seen.blocked_by_policy), (elsewhere, seen.blocked_by_policy)


def assert_not_blank(screenshot: Path) -> None:
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.format == "PNG"
        assert image.size == (1280, 1000)
        # A blank (or unstyled) page has a handful of colours; the rendered one, text, coloured
        # method badges and icons, antialiased: hundreds.
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 200, len(colours or [])


@pytest.fixture(params=["127.0.0.1", NAMED_HOST])
def origin(request: pytest.FixtureRequest, tiny_server: str) -> str:
    port = urlsplit(tiny_server).port
    return f"http://{request.param}:{port}"


@pytest.mark.slow
def test_swagger_ui_shows_every_operation_offline(
    browser_context: Any, origin: str, tmp_path: Path
) -> None:
    screenshot = tmp_path / "docs.png"
    page, seen = visit(browser_context, f"{origin}/docs", ".opblock", screenshot)
    # Swagger UI's id of an operation's block: operations-<tag>-<operationId>.
    shown = page.eval_on_selector_all(".opblock", "blocks => blocks.map(b => b.id)")
    assert len(shown) == len(OPERATIONS)
    assert sorted(block_id.rsplit("-", 1)[-1] for block_id in shown) == sorted(OPERATIONS)
    assert page.locator(".info .title").inner_text().startswith("kexue-serve")
    page.close()
    assert_nothing_from_another_host(seen, origin)
    assert seen.blocked_by_policy == []
    assert seen.console_errors == []
    assert_not_blank(screenshot)


@pytest.mark.slow
def test_redoc_shows_every_operation_offline(
    browser_context: Any, origin: str, tmp_path: Path
) -> None:
    screenshot = tmp_path / "redoc.png"
    page, seen = visit(
        browser_context, f"{origin}/redoc", '[data-section-id^="operation/"]', screenshot
    )
    sections = page.eval_on_selector_all(
        '[data-section-id^="operation/"]', "s => s.map(e => e.dataset.sectionId)"
    )
    assert sorted(s.removeprefix("operation/") for s in sections) == sorted(OPERATIONS)
    page.close()
    assert_nothing_from_another_host(seen, origin)
    # ReDoc's menu always shows Redocly's logo from its CDN: the page's policy stops it.
    assert all(urlsplit(u).hostname == "cdn.redoc.ly" for u in seen.blocked_by_policy)
    assert_not_blank(screenshot)
