"""The README is a front door and the docs hold together: short, first commands true, no dead links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
# [text](target) and ![alt](target); a target ends at whitespace or ")" (an optional "title" is dropped)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_readme_is_at_most_250_lines():
    n = len(README.read_text().splitlines())
    assert n <= 250, f"README.md has {n} lines; move details to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_existing_files(page):
    assert page.is_file(), page
    dead = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not dead, f"{page.relative_to(REPO)}: links to missing files {dead}"


def test_docs_pages_exist_and_are_linked_from_the_readme():
    linked = {(REPO / t.split("#")[0]).resolve() for t in relative_links(README)}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"README.md does not link these pages: {missing}"


def test_readme_first_commands_are_make_run_and_make_test():
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", README.read_text(), flags=re.S)
    assert block, "README.md has no code block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c][:2] == ["make run", "make test"]
