"""The test suite's layout (docs/testing.md): test files in folders."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_every_folder_of_tests_is_a_package():
    """Without __init__.py two folders' test_x.py would clash under pytest's default import mode."""
    folders = {p.parent for p in TESTS.glob("*/test_*.py")}
    assert folders and all((folder / "__init__.py").exists() for folder in folders)


def test_no_test_file_outside_a_folder():
    """Every test file is in a folder by concern (docs/testing.md)."""
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == []
