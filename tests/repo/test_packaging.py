"""The built wheel holds every module and data file of the tree, under its installed name.

The package list is computed by setup.py; this test is what notices when a module, a
subpackage or a file read at run time would be missing from ``pip install .`` (the editable
install that ``make`` uses cannot show it).  .ci/run goes further: it installs the wheel into
a fresh venv and runs the tools from it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# repository directory -> installed package path (see package-dir in pyproject.toml)
PACKAGE_DIRS = {"proxycore": "proxycore", "api": "proxycore/api", "addons": "proxycore/addons"}
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", *PACKAGE_DIRS]


def tree_files() -> set[str]:
    """Every file of the three package directories, as its path inside the wheel."""
    files = set()
    for directory, installed in PACKAGE_DIRS.items():
        for path in (ROOT / directory).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"{installed}/{path.relative_to(ROOT / directory).as_posix()}")
    return files


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the inputs, so the checkout gets no build/ or egg-info."""
    source = tmp_path / "src"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (built,) = out.iterdir()
    return built


def test_wheel_holds_every_module_and_data_file(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = {n for n in z.namelist() if ".dist-info/" not in n}
        entry_points = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    tree = tree_files()
    assert sorted(tree - names) == [], "in the tree but missing from the wheel"
    assert sorted(names - tree) == [], "in the wheel but not in the tree"
    assert "proxycore/py.typed" in names
    assert "proxycore/contentviews/__init__.py" in names
    assert "proxydump = proxycore.tools.dump:main" in entry_points
    assert "proxyweb = proxycore.tools.web:main" in entry_points


def test_tree_files_notices_a_missing_module(tmp_path: Path) -> None:
    """The comparison above is not vacuous: the tree's list has the modules the bug report named."""
    files = tree_files()
    assert "proxycore/contentviews/__init__.py" in files
    assert "proxycore/api/app.py" in files and "proxycore/addons/core.py" in files
    assert not any("__pycache__" in f for f in files)
