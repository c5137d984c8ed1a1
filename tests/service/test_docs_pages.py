"""/docs and /redoc name no asset of another host, and every asset they name is served here,
under the request's root path too. (tests/test_docs_browser.py renders them in a browser.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.fakes import fake_factory

# What a page makes the browser fetch: <script src>, <link href>, and the document's URL.
ASSET_REFERENCE = re.compile(r"""(?:src|href)="([^"]*)"|url: '([^']*)'|spec-url="([^"]*)\"""")


def page_assets(html: str) -> list[str]:
    return [next(filter(None, groups)) for groups in ASSET_REFERENCE.findall(html)]


@pytest.fixture
def app_client(tmp_path: Path) -> TestClient:
    settings = Settings(model_store=tmp_path, poll_interval_s=0)
    return TestClient(create_app(settings, runtime_factory=fake_factory))


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "openapi.json"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png", "openapi.json"}),
    ],
)
@pytest.mark.parametrize("root_path", ["", "/kexue"])
def test_the_pages_name_only_assets_of_this_service(
    tmp_path: Path, page: str, expected: set[str], root_path: str
) -> None:
    settings = Settings(model_store=tmp_path, poll_interval_s=0)
    client = TestClient(create_app(settings, runtime_factory=fake_factory), root_path=root_path)
    response = client.get(page)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assets = page_assets(response.text)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} == expected, assets
    # Not "//cdn...", not "https://...": a path on this host, under the root path.
    assert all(a.startswith(f"{root_path}/") and not a.startswith("//") for a in assets), assets
    # As uvicorn --root-path passes them: the path with the prefix, and the prefix as root_path.
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 100, asset
    # The browser refuses whatever the page's scripts would still fetch from elsewhere.
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "*" not in policy and "http" not in policy, policy
    # Google's fonts are a request to another host; Swagger UI's validator badge too.
    assert "fonts.googleapis.com" not in response.text
    assert '"validatorUrl": null' in response.text or page == "/redoc"


def test_the_assets_have_their_types(app_client: TestClient) -> None:
    types = {
        "/docs/assets/swagger-ui-bundle.js": "javascript",
        "/docs/assets/redoc.standalone.js": "javascript",
        "/docs/assets/swagger-ui.css": "text/css",
        "/docs/assets/favicon.png": "image/png",
    }
    for path, kind in types.items():
        response = app_client.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path


def test_the_pages_are_not_operations_of_the_api(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
    assert app_client.get("/docs/assets/nothing-here.js").status_code == 404
