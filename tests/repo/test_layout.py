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


def test_property_budgets_follow_the_hypothesis_profile():
    """A bare ``@settings(max_examples=n)`` pins n under every profile, so ``HYPOTHESIS_PROFILE=deep``
    would not search that property further: budgets go through tests/hypothesis_budget.py."""
    pinned = [
        str(p.relative_to(TESTS))
        for p in TESTS.rglob("*.py")
        if "@settings(max_examples=" in p.read_text() and p != Path(__file__)
    ]
    assert pinned == []


def test_a_budget_grows_with_a_deeper_profile():
    import os

    from hypothesis import settings

    from tests.hypothesis_budget import budget

    try:
        settings.load_profile("fast")
        assert budget(30).max_examples == 30 and budget(300).max_examples == 300
        settings.load_profile("deep")
        assert budget(30).max_examples == 5000 and budget(9000).max_examples == 9000
    finally:
        settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))
