"""The README and docs/ say what a user who cloned the repository can follow: every link they make
leads to a file in the repository, and every setting is in the README's table with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings
from tests.live_server import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) with a relative target; anchors and web addresses are not files.
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_in_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text, "users do not have ../shared"
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        resolved = (page.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        assert resolved.exists(), f"{page.name}: {target} does not exist"


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]+) \|", readme, flags=re.M)
    }
    for name, field in Settings.model_fields.items():
        key = name.upper()
        assert key in rows, f"{key} is not in the README's settings table"
        default = field.default
        shown = rows[key].strip()
        if default is None:
            assert shown == "unset", key
        elif isinstance(default, bool):
            assert shown == f"`{str(default).lower()}`", key
        elif isinstance(default, float) and default.is_integer():
            assert shown in (f"`{int(default)}`", f"`{default}`"), key
        else:
            assert shown == f"`{default}`", key
