"""proxycore on Python >= 3.12 with mitmproxy-rs 0.12, in a venv under .cache/, for what the
suite's own interpreter may lack: Linux local capture and process listing came with
mitmproxy-rs 0.11, whose Linux wheels (mitmproxy-linux) are for Python >= 3.12 only.

The venv holds an editable install of this checkout, so it runs the code under test; it is
made once (under a lock, for pytest-xdist) and its dependencies come from the package
index pip uses.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.downloads import announce
from tests.real_mitmproxy import ROOT, python312

VENV = ROOT / ".cache" / "proxycore-py312"


def proxycore_py312(config: pytest.Config) -> Path:
    """The venv's interpreter; skips (saying why) where no Python >= 3.12 exists."""
    if sys.version_info >= (3, 12):
        return Path(sys.executable)  # the suite itself already runs on one
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.with_name(VENV.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = VENV / ".installed"
        wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
        if not stamp.exists() or stamp.read_text() != wanted:  # new dependencies: install again
            base = python312()
            if base is None:
                pytest.skip("needs Python >= 3.12 for mitmproxy-rs 0.12 (none found; set PROXYCORE_PY312)")
            announce(config, f"tests: installing proxycore (editable) with Python {base} into {VENV} (once)")
            subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(ROOT)],
                           check=True, timeout=900)
            stamp.write_text(wanted)
    return python
