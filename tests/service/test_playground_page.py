"""/playground names only its own script and stylesheet, under the request's root path, serves
them, and is installed with the package. (tests/test_playground_browser.py uses it in a browser.)"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.playground import ASSETS_URL, PLAYGROUND_URL
from service.settings import Settings
from tests.live_server import ROOT
from tests.service.fakes import fake_factory

ASSET_REFERENCE = re.compile(r"""<(?:script|link)[^>]*(?:src|href)="([^"]*)\"""")
STATIC = ROOT / "service" / "playground" / "static"


@pytest.mark.parametrize("root_path", ["", "/kexue"])
def test_the_page_names_its_assets_under_the_root_path_and_they_are_served(
    tmp_path: Path, root_path: str
) -> None:
    settings = Settings(model_store=tmp_path, poll_interval_s=0)
    client = TestClient(create_app(settings, runtime_factory=fake_factory), root_path=root_path)
    response = client.get(PLAYGROUND_URL)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert f'data-root="{root_path}"' in response.text
    assert "{{root}}" not in response.text
    assets = [a for a in ASSET_REFERENCE.findall(response.text) if not a.startswith("data:")]
    assert sorted(a.rsplit("/", 1)[-1] for a in assets) == ["playground.css", "playground.js"]
    for asset in assets:
        assert asset.startswith(f"{root_path}{ASSETS_URL}/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.content == (STATIC / asset.rsplit("/", 1)[-1]).read_bytes()
    script = client.get(f"{root_path}{ASSETS_URL}/playground.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    # The browser may load and call nothing but this origin, and run no inline script.
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert "*" not in policy and "http" not in policy, policy


def test_the_page_is_not_an_operation_of_the_api(tmp_path: Path) -> None:
    settings = Settings(model_store=tmp_path, poll_interval_s=0)
    client = TestClient(create_app(settings, runtime_factory=fake_factory))
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(PLAYGROUND_URL)]


def test_the_assets_are_package_data() -> None:
    """`pip install .` (the image) copies only the package data pyproject names: each file the
    page needs must match it, or the installed service serves a page without its script."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["service.playground"]
    files = sorted(p.relative_to(STATIC.parent).as_posix() for p in STATIC.iterdir())
    assert files == ["static/playground.css", "static/playground.html", "static/playground.js"]
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
