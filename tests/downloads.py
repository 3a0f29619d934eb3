"""The few files the tests download: announced once, cached in .cache/downloads, sha256-pinned.

docs/testing.md lists them.  A cached file whose sha256 is not the pinned one is fetched
again; a download whose sha256 is not the pinned one fails the test that needs it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from proxycore.api import frontend

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "downloads"

# filename -> sha256 (the same values PyPI publishes for these files)
PINNED = {
    # the web front end proxyweb fetches on first use (tests/api/test_web_frontend.py, the browser check);
    # also real mitmproxy 12.3.1 reading our flow files (tests/real_mitmproxy.py)
    frontend.WHEEL: frontend.WHEEL_SHA256,
    # real mitmproxy 11.0.2 for the flow-file interop tests (tests/real_mitmproxy.py)
    "mitmproxy-11.0.2-py3-none-any.whl": "95db7b57b21320a0c76e59e1d6644daaa431291cdf89419608301424651199b4",
}


def pinned_wheel(filename: str, config: pytest.Config) -> Path:
    """``filename`` from .cache/downloads, fetched from the package index pip uses if missing."""
    sha256 = PINNED[filename]
    path = CACHE / filename
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return path
    index = frontend.index_url()
    announce(config, f"tests: downloading {filename} from {frontend.shown(index)} into {CACHE} (once; sha256 {sha256[:12]}...)")
    project = filename.split("-")[0]
    try:
        url = frontend.wheel_url(index, project, filename)
        data = frontend.download(url)
    except frontend.FrontendUnavailable as e:
        pytest.fail(f"cannot download {filename} (needs the package index): {e}")
    digest = hashlib.sha256(data).hexdigest()
    assert digest == sha256, f"{filename} from {url} has sha256 {digest}, not the pinned {sha256}"
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")  # two workers may fetch it at once
    partial.write_bytes(data)
    partial.replace(path)
    return path


def announce(config: pytest.Config, message: str) -> None:
    """Print past pytest's output capture, so that a first run says what it fetches."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(message, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{message}", file=sys.stderr, flush=True)
