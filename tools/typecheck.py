"""Run mypy over proxycore, api/ and addons/ under their installed names.

``api/`` and ``addons/`` install as ``proxycore.api`` and ``proxycore.addons`` (the
``package-dir`` table in pyproject.toml), a mapping mypy cannot express and cannot read from
the editable install's import hook.  So this script builds a tree of symbolic links in
``.cache/typecheck/`` that has the installed shape, runs mypy there with the settings of
``[tool.mypy]`` in pyproject.toml, and prints the findings with their paths in this checkout.

Usage: ``python tools/typecheck.py [extra mypy arguments]``; the exit status is mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".cache" / "typecheck"
# installed package path -> directory in the repository (same table as setup.py)
MAPPED = {"proxycore/api": "api", "proxycore/addons": "addons"}


def link(target: Path, name: Path) -> None:
    """Make ``name`` a symbolic link to ``target``, replacing whatever was there."""
    if name.is_symlink() and os.readlink(name) == str(target):
        return
    if name.is_symlink() or name.exists():
        name.unlink()
    name.symlink_to(target)


def build_tree() -> None:
    """The installed layout: every entry of proxycore/ plus api/ and addons/ inside it."""
    pkg = TREE / "proxycore"
    pkg.mkdir(parents=True, exist_ok=True)
    wanted = {entry.name: entry for entry in (ROOT / "proxycore").iterdir()}
    for installed, directory in MAPPED.items():
        wanted[Path(installed).name] = ROOT / directory
    for stale in pkg.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name, target in wanted.items():
        if name != "__pycache__":
            link(target, pkg / name)


def repo_path(line: str) -> str:
    """Rewrite a finding's path from the link tree back to this checkout."""
    for installed, directory in MAPPED.items():
        if line.startswith(installed + "/"):
            return directory + line[len(installed) :]
    return line


def main(argv: list[str]) -> int:
    build_tree()
    command = [
        sys.executable, "-m", "mypy",
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(TREE / ".mypy_cache"),
        "-p", "proxycore",
        *argv,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=TREE, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        print(repo_path(line))
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
