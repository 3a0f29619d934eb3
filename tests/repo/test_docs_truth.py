"""Docs that are true: every repository path README.md, docs/*.md (and every other .md) cite exists, and the
test suite's downloads docs/testing.md lists are the pinned ones.

A path is a `code span` or a link target that is relative and slash-separated, like
`proxycore/layers/http/_http1.py`, `bench/` or `docs/web.md`, and that either starts with a
top-level entry of the repository or names a file by its extension.  Not checked: URLs,
absolute and home paths, paths in the user's confdir or in other projects (`mitmproxy/...`),
and `.cache/` (made by the tests).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# README.md, docs/*.md and every other Markdown file of the tree (bench/, tests/data/...).
SKIP_DIRS = {".venv", ".git", ".cache", "node_modules", "build", "dist"}
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(
        p
        for p in ROOT.rglob("*.md")
        if p.parent not in (ROOT, ROOT / "docs") and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)
    ),
]
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK_TARGET = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
PATH = re.compile(r"(?:\./)?[\w.-]+(?:/[\w.-]+)*/?")
FILE_EXTENSIONS = {".py", ".md", ".txt", ".toml", ".sh", ".go", ".mjs", ".json", ".mitm", ".har", ".lua", ".conf", ".cfg"}
NOT_OURS = ("mitmproxy/", ".cache/", "../")
TOP_LEVEL = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"}


def cited_paths(text: str) -> set[str]:
    candidates = CODE_SPAN.findall(text) + LINK_TARGET.findall(text)
    found = set()
    for candidate in candidates:
        candidate = candidate.strip()
        if "/" not in candidate or not PATH.fullmatch(candidate) or candidate.startswith(NOT_OURS):
            continue
        first = candidate.removeprefix("./").split("/")[0]
        if first in TOP_LEVEL or Path(candidate.rstrip("/")).suffix in FILE_EXTENSIONS:
            found.add(candidate)
    return found


def test_the_extraction_finds_paths_and_skips_the_rest() -> None:
    text = (
        "See `proxycore/layers/http/_http1.py`, [web](docs/web.md#token), `bench/`, "
        "`tests/data/corpus-all.mitm`. Not: `http://x/y.py`, `~/.proxycore/web/`, `/etc/a.txt`, "
        "`mitmproxy/tools/web`, `static/`, `a | b`, `.cache/downloads/`, `image/png`."
    )
    assert cited_paths(text) == {
        "proxycore/layers/http/_http1.py", "docs/web.md", "bench/", "tests/data/corpus-all.mitm",
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_path_exists(doc: Path) -> None:
    missing = sorted(
        p for p in cited_paths(doc.read_text())
        if not (ROOT / p).exists() and not (doc.parent / p).exists()
    )
    assert missing == [], f"{doc.name} cites paths that do not exist: {missing}"


def test_docs_cite_paths_at_all() -> None:
    """The check above is not vacuous."""
    assert sum(len(cited_paths(d.read_text())) for d in DOCS) > 30


def test_testing_md_lists_every_pinned_download() -> None:
    """docs/testing.md's table of first-run downloads is the list tests/downloads.py pins."""
    from tests.downloads import PINNED

    text = (ROOT / "docs" / "testing.md").read_text()
    for filename, sha256 in PINNED.items():
        assert f"`{filename}`" in text and sha256 in text, filename
