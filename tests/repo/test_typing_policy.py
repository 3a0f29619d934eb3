"""The typing rules of docs/testing.md ("Type checking") that mypy itself cannot enforce."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "proxycore", ROOT / "api", ROOT / "addons"]
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[a-z-, ]+\])?(?P<rest>.*)$")


def _ignores() -> list[tuple[str, int, str, str]]:
    """(file, line number, the line, the line before) of every ``type: ignore``."""
    found = []
    for top in SOURCES:
        for path in sorted(top.rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, 1):
                if IGNORE.search(line):
                    before = lines[number - 2] if number > 1 else ""
                    found.append((str(path.relative_to(ROOT)), number, line, before))
    return found


def test_the_scan_finds_ignores() -> None:
    # a few explained ones exist (typeshed gaps); finding none would mean the scan is broken
    assert len(_ignores()) >= 3


def test_every_type_ignore_names_its_error_code() -> None:
    bare = [f"{f}:{n}" for f, n, line, _ in _ignores() if not IGNORE.search(line)["codes"]]
    assert not bare, f"type: ignore without [code]: {bare}"


def test_every_type_ignore_says_why() -> None:
    """A reason after it on the same line, or a comment line right above it."""
    unexplained = []
    for f, n, line, before in _ignores():
        rest = IGNORE.search(line)["rest"]
        if not re.match(r"\s*#\s*\S", rest) and not before.strip().startswith("#"):
            unexplained.append(f"{f}:{n}")
    assert not unexplained, f"type: ignore without a reason: {unexplained}"


def test_mypy_is_pinned_and_strict_for_kernel_and_layers() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dev = config["project"]["optional-dependencies"]["dev"]
    assert any(re.fullmatch(r"mypy==\d+\.\d+(\.\d+)?", d) for d in dev), dev
    mypy = config["tool"]["mypy"]
    assert mypy["check_untyped_defs"] is True
    strict = [o for o in mypy["overrides"] if "proxycore.layers.*" in o["module"]]
    assert strict and "proxycore.proxy.*" in strict[0]["module"]
    for flag in ("disallow_untyped_defs", "disallow_any_generics", "warn_return_any", "strict_equality"):
        assert strict[0][flag] is True, flag


def _type_text(typespec: object) -> str:
    if isinstance(typespec, type):
        return typespec.__name__
    return repr(typespec).replace("collections.abc.", "")


def test_options_annotations_match_their_declarations() -> None:
    """Options lists each core option's type for mypy; a new option or a changed type must
    be listed too (a missing one would silently read as Any)."""
    from proxycore.options import Options

    declared = {name: _type_text(o.typespec) for name, o in Options()._options.items()}
    annotated = dict(Options.__annotations__)
    assert annotated == declared
