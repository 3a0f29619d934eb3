"""Real mitmproxy 11.0.2 and 12.3.1, each in its own venv under .cache/, to read back the
flow files proxycore writes (docs/testing.md, "What the first run downloads").

Both wheels are sha256-pinned (tests/downloads.py); their dependencies come from the
package index pip uses.  mitmproxy 12 needs Python >= 3.12, which ``python312()`` finds
(``PROXYCORE_PY312``, then the PATH, then pyenv's versions).
"""

from __future__ import annotations

import base64
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.downloads import announce, pinned_wheel

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("11.0.2", "12.3.1")

# Runs inside mitmproxy's venv: read flows and print their state (and filter matches) as JSON.
READER = r"""
import base64, json, sys
from mitmproxy import flowfilter, io

def plain(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value

with open(sys.argv[1], "rb") as f:
    flows = list(io.FlowReader(f).stream())
expressions = json.loads(sys.argv[2])
print(json.dumps({
    "states": [plain(f.get_state()) for f in flows],
    "matches": {e: [i for i, f in enumerate(flows) if flowfilter.parse(e)(f)] for e in expressions},
}))
"""


def plain(value: object) -> object:
    """A flow state as JSON can carry it (bytes as base64), the way READER prints it."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def python312() -> str | None:
    """An interpreter >= 3.12 (mitmproxy 12 and mitmproxy-rs 0.12 need one), or None."""
    candidates = [os.environ.get("PROXYCORE_PY312", ""), sys.executable, "python3.13", "python3.12"]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3.1[2-9]")))
    for candidate in candidates:
        path = shutil.which(candidate) if candidate else None
        if path is None:
            continue
        try:
            ok = subprocess.run([path, "-c", "import sys; sys.exit(sys.version_info < (3, 12))"],
                                capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok:
            return path
    return None


def mitmproxy_python(version: str, config: pytest.Config) -> Path:
    """The interpreter of a venv with real mitmproxy ``version`` (built once, under a lock:
    another pytest-xdist worker may be building it at the same time)."""
    venv = ROOT / ".cache" / f"mitmproxy-{version}"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not python.exists():
            base = sys.executable
            if version.startswith("12"):
                found = python312()
                if found is None:
                    pytest.skip("mitmproxy 12 needs Python >= 3.12 (none found; set PROXYCORE_PY312)")
                base = found
            wheel = pinned_wheel(f"mitmproxy-{version}-py3-none-any.whl", config)
            announce(config, f"tests: installing {wheel.name} and its dependencies into {venv} (once)")
            subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                           check=True, timeout=900)
    return python


def mitmproxy_reads(python: Path, path: Path, expressions: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """What real mitmproxy makes of a flow file: each flow's state, and which flows each
    filter expression selects."""
    r = subprocess.run(
        [str(python), "-c", READER, str(path), json.dumps(list(expressions))],
        capture_output=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert r.returncode == 0, r.stderr.decode()
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def assert_mitmproxy_reads_back(pythons: dict[str, Path], path: Path) -> list[Any]:
    """Every real mitmproxy in ``pythons`` reads the file at ``path`` to the states we read
    from it; our flows, for the test to look at."""
    from proxycore.io import FlowReader

    with path.open("rb") as f:
        flows = list(FlowReader(f).stream())
    ours = [plain(flow.get_state()) for flow in flows]
    for version, python in pythons.items():
        theirs = mitmproxy_reads(python, path)["states"]
        assert len(theirs) == len(ours), version
        for mine, read in zip(ours, theirs, strict=True):
            assert read == mine, version
    return flows
