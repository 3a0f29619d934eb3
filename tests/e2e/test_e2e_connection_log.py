"""The connection lines of the event log, as mitmdump prints them and mitmweb lists them:
client connect / server connect / client disconnect / server disconnect, and connect errors."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e_servers import free_port
from tests.processes import Proxy, ProxyWeb, curl
from tests.webapi import request

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]

HOOKS_SCRIPT = """
import logging

def server_disconnected(data):
    logging.info("hook server_disconnected %s:%s", *data.server.address)

def client_disconnected(client):
    logging.info("hook client_disconnected")
"""


def wait_stderr(proxy: Proxy, pattern: str, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, proxy.stderr()):
        assert time.monotonic() < deadline, f"{pattern!r} not in:\n{proxy.stderr()}"
        time.sleep(0.05)
    return proxy.stderr()


def test_proxydump_logs_each_connection_as_mitmdump(tmp_path: Path, upstream: int) -> None:
    script = tmp_path / "hooks.py"
    script.write_text(HOOKS_SCRIPT)
    proxy = Proxy(["-s", str(script)], tmp_path)
    try:
        assert curl(proxy, f"http://localhost:{upstream}/get").returncode == 0
        log = wait_stderr(proxy, r"hook server_disconnected")
        server = rf"localhost:{upstream} \(127\.0\.0\.1:{upstream}\)"
        # A name that resolved elsewhere shows the peer's address too, as in mitmdump.
        client = re.search(rf"\]\[(127\.0\.0\.1:\d+)\] server connect {server}\n", log)
        assert client, log
        prefix = rf"\[\d\d:\d\d:\d\d\.\d{{3}}\]\[{re.escape(client.group(1))}\] "
        for line in ("client connect", "client disconnect", f"server disconnect {server}"):
            assert re.search(prefix + line + "\n", log), (line, log)
        # The server side's hook runs even though the client's side ended first.
        assert log.index("hook client_disconnected") < log.index("hook server_disconnected")

        closed = free_port()
        assert curl(proxy, f"http://127.0.0.1:{closed}/").returncode == 0  # the 502 page
        log = wait_stderr(proxy, "error establishing server connection")
        assert "error establishing server connection: Connection refused\n" in log, log
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_quiet_proxydump_prints_no_connection_lines(tmp_path: Path, upstream: int) -> None:
    proxy = Proxy(["-q"], tmp_path)
    try:
        assert curl(proxy, f"http://127.0.0.1:{upstream}/get").returncode == 0
    finally:
        assert proxy.stop() == 0
    assert "client connect" not in proxy.stderr() and "server connect" not in proxy.stderr()


def test_the_web_event_log_lists_the_connection_lines(tmp_path: Path, upstream: int) -> None:
    pw = ProxyWeb(tmp_path)
    try:
        token = re.search(r"token=([0-9a-f]{32})", pw.web_url)
        assert token, pw.web_url
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        assert curl(pw, f"http://127.0.0.1:{upstream}/get").returncode == 0
        # As mitmweb's: each message carries its time and the client's address.
        wanted = ["client connect", f"server connect 127.0.0.1:{upstream}", "client disconnect",
                  f"server disconnect 127.0.0.1:{upstream}"]
        line = re.compile(r"\[\d\d:\d\d:\d\d\.\d{3}\]\[127\.0\.0\.1:\d+\] (.*)")
        deadline = time.monotonic() + 5
        while True:
            events = request(pw.web_port, "GET", "/events", headers=headers, auth=False).json()
            found = {m.group(1): e["level"] for e in events if (m := line.fullmatch(e["message"]))}
            if set(wanted) <= set(found) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert set(wanted) <= set(found), events
        assert all(found[w] == "info" for w in wanted)
    finally:
        assert pw.stop() == 0
