"""mitmproxy 12.3.1's own web front end against proxyweb, in headless Chromium.

Runs tests/ui/ui_check.mjs (node + playwright-core + Debian chromium) against proxyweb as
``make run`` starts it: no ``web_static``, so proxyweb fetches mitmproxy's front end itself on
first use, through the package index in ``PIP_INDEX_URL``.  Here that index is a loopback one
(tests/package_index.py) serving the pinned wheel from .cache/downloads, the same bytes PyPI
serves.  The test corpus is loaded and live traffic (HTTP GET and POST, HTTPS, a WebSocket
session) goes through the proxy port.  Screenshots and the front end's traffic log stay in
.cache/ui-shots/ after the run.

The tools are looked for where .ci/run installs them; when one is missing the test is
skipped on a developer machine but fails under CI (``CI`` or ``PROXYCORE_UI_CHECK`` set).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.server import ServerConnection, serve

from proxycore.api import frontend
from tests.downloads import pinned_wheel
from tests.e2e_servers import start_http
from tests.flows import CORPUS
from tests.package_index import serve_index
from tests.processes import ProxyWeb

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
SCRIPT = Path(__file__).parents[1] / "ui" / "ui_check.mjs"
SHOTS = CACHE / "ui-shots"
CHECKS = ["page-load", "flow-list", "flow-detail", "other-flow-views", "filter", "live-update",
          "options-dialog", "capture-tab", "no-js-errors"]
# one WebSocket session through the proxy: argv = ws URL, proxy URL
WS_CLIENT = (
    "import sys\n"
    "from websockets.sync.client import connect\n"
    "with connect(sys.argv[1], proxy=sys.argv[2], open_timeout=10) as ws:\n"
    "    ws.send('live text')\n"
    "    assert ws.recv(timeout=10) == 'live text'\n"
)


def unavailable(why: str) -> None:
    """Skip on a developer machine; fail in CI, where .ci/run provides every tool."""
    if os.environ.get("CI") or os.environ.get("PROXYCORE_UI_CHECK"):
        pytest.fail(f"{why} (.ci/run installs it)")
    pytest.skip(f"{why}; .ci/run installs it")


def find_tools() -> tuple[str, str, Path]:
    """node, chromium and the playwright-core module directory (and curl for the traffic)."""
    if shutil.which("curl") is None:
        unavailable("curl is not installed")
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        unavailable("chromium is not installed")
    candidates = [os.environ.get("PLAYWRIGHT_CORE"), str(CACHE / "node" / "node_modules" / "playwright-core")]
    for candidate in filter(None, candidates):
        if (Path(candidate) / "package.json").is_file():
            return str(node), chromium, Path(candidate)
    unavailable("playwright-core is not installed (set PLAYWRIGHT_CORE or npm install it into .cache/node)")
    raise AssertionError("unreachable")


@pytest.fixture
def ws_echo() -> Iterator[int]:
    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.socket.getsockname()[1]
        server.shutdown()
    thread.join(5)


@pytest.mark.timeout(360)
def test_mitmproxy_front_end_in_chromium(
    tmp_path: Path, ws_echo: int, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, chromium, playwright = find_tools()
    wheel = pinned_wheel(frontend.WHEEL, request.config).read_bytes()
    http_server, http_port = start_http()
    https_server, https_port = start_http(tmp_path)
    with serve_index(wheel) as index:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        pw = ProxyWeb(tmp_path, "-r", str(CORPUS), "--set", "ssl_insecure=true", fetch_frontend=True)
    assert "Fetching the web front end once" in pw.stderr(), pw.stderr()
    try:
        base, _, token = pw.web_url.partition("?token=")
        assert token, pw.web_url
        curl = f"curl -sS --max-time 15 -o /dev/null -x {pw.url}"
        traffic = " && ".join([
            f"{curl} http://127.0.0.1:{http_port}/get?live=1",
            f"{curl} -d live=post http://127.0.0.1:{http_port}/post",
            f"{curl} --cacert {shlex.quote(pw.ca)} https://127.0.0.1:{https_port}/get?live=https",
            shlex.join([sys.executable, "-c", WS_CLIENT, f"ws://127.0.0.1:{ws_echo}/live", pw.url]),
        ])
        shutil.rmtree(SHOTS, ignore_errors=True)
        run = subprocess.run(
            [node, str(SCRIPT), base, str(SHOTS), "--token", token, "--traffic-cmd", traffic,
             "--expect-new", "4", "--chromium", chromium, "--playwright", str(playwright),
             "--profile-root", str(tmp_path)],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        status = pw.stop()
        http_server.shutdown()
        https_server.shutdown()
    print(run.stdout, run.stderr, f"screenshots and traffic log: {SHOTS}", sep="\n")
    lines = run.stdout.splitlines()
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nscreenshots: {SHOTS}"
    assert lines[-1] == f"{len(CHECKS)} passed, 0 failed", run.stdout
    assert [line.split()[1] for line in lines[:-1]] == CHECKS, run.stdout
    assert all(line.startswith("PASS ") for line in lines[:-1]), run.stdout
    assert "4 new flow(s) appeared" in run.stdout, run.stdout
    assert status == 0 and "Traceback" not in pw.stderr(), pw.stderr()
