"""The test suite's layout (docs/testing.md): test files in folders, old module names mapped."""

from __future__ import annotations

import importlib
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_every_folder_of_tests_is_a_package():
    """Without __init__.py two folders' test_x.py would clash under pytest's default import mode."""
    folders = {p.parent for p in TESTS.glob("*/test_*.py")}
    assert folders and all((folder / "__init__.py").exists() for folder in folders)


def test_a_module_name_from_before_the_folders_is_the_moved_module():
    old = importlib.import_module("tests.test_e2e")
    assert old is importlib.import_module("tests.e2e.test_e2e")
    assert old.__name__ == "tests.e2e.test_e2e"


def test_a_name_no_folder_has_is_still_an_import_error():
    try:
        importlib.import_module("tests.test_no_such_module")
    except ModuleNotFoundError:
        return
    raise AssertionError("tests.test_no_such_module imported")
