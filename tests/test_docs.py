"""The front door and the manual: a short README whose links resolve, and every page of the
manual in the site's navigation (``make docs`` builds it with ``--strict`` in CI)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def _links(text: str) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"(https?:|mailto:|#)", t)]


def test_the_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 220
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", readme), "measurements are dated in experiments/, not here"
    for target in _links(readme):
        assert (ROOT / target.split("#", 1)[0]).exists(), target


def test_every_manual_page_is_in_the_navigation():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(items):
        for item in items:
            for value in item.values():
                yield from (pages(value) if isinstance(value, list) else [value])

    listed = set(pages(nav))
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= listed
    assert all((ROOT / "docs" / page).exists() for page in listed)
