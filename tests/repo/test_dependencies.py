"""Runtime dependencies are the ones the package imports: h11 serves only as the test
oracle of HTTP/1 framing (tests/layers/test_http1_oracle.py), so it is a ``dev`` extra."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_top_names(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def requirement_names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in requirements}


def test_h11_is_a_test_oracle_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = requirement_names(project["dependencies"])
    dev = requirement_names(project["optional-dependencies"]["dev"])
    package_imports = set().union(*(imported_top_names(ROOT / d) for d in ("proxycore", "addons", "api")))
    assert "h11" not in package_imports
    assert "h11" not in runtime and "h11" in dev
    assert "h11" in imported_top_names(ROOT / "tests")
