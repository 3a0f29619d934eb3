"""conformance/summarize.py: per-file figures and the list of failures from junit files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_summary_counts_passes_and_lists_each_failure(tmp_path):
    (tmp_path / "addons__test_x.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="a" name="test_ok"/>'
        '<testcase classname="a" name="test_bad"><failure message="AssertionError: 1 != 2&#10;more"/></testcase>'
        '<testcase classname="a" name="test_broken"><error message="ImportError: nope"/></testcase>'
        '<testcase classname="a" name="test_skip"><skipped message="no"/></testcase>'
        "</testsuite></testsuites>"
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "conformance" / "summarize.py"), str(tmp_path),
         "test/mitmproxy/addons/test_x.py", "test/mitmproxy/test_missing.py"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "| test/mitmproxy/addons/test_x.py | 1/4 | 25% |" in out
    assert "| test/mitmproxy/test_missing.py | not run | |" in out
    assert "| **total** | **1/4** | **25.0%** |" in out
    assert "`test_bad` | AssertionError: 1 != 2 |" in out and "`test_broken` | ImportError: nope |" in out
    assert "test_skip" not in out
