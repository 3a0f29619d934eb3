"""End-to-end: the proxydump process resumes TLS sessions toward a real Python ``ssl`` server
(which counts the connections that were resumed), one per server name."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_servers import Handler, start_http
from tests.processes import Proxy, curl

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]


class ResumptionHandler(Handler):
    """Notes, per request, the server name the client sent and whether its session was resumed."""

    seen: list[tuple[str, bool]] = []

    def do_GET(self) -> None:
        self.seen.append((self.headers.get("Host", ""), self.connection.session_reused))
        super().do_GET()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[int]:
    ResumptionHandler.seen = []
    server, port = start_http(tmp_path, handler=ResumptionHandler)
    yield port
    server.shutdown()


def _wait_for_server_disconnects(proxy: Proxy, count: int) -> None:
    """Until the proxy has logged ``count`` server disconnects (at most 5 s)."""
    deadline = time.monotonic() + 5
    while proxy.stderr().count("server disconnect") < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # the line is logged before the server_disconnected hook runs


def test_later_connections_to_the_same_server_resume_their_session(tmp_path: Path, upstream: int) -> None:
    proxy = Proxy(["--set", "ssl_insecure=true"], tmp_path)
    try:
        hosts = ["127.0.0.1", "127.0.0.1", "127.0.0.1", "localhost", "localhost"]
        for done, host in enumerate(hosts, 1):
            # Connection: close: the server ends the connection and the proxy answers with its
            # close_notify (for a client that just leaves, see the next test).
            r = curl(proxy, "--cacert", proxy.ca, "-H", "Connection: close", f"https://{host}:{upstream}/get")
            assert r.returncode == 0, r.stderr
            # The session is kept once the proxy has closed that server connection.
            _wait_for_server_disconnects(proxy, done)
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
    resumed = [reused for _host, reused in ResumptionHandler.seen]
    # A new name (localhost) starts with a full handshake: sessions are kept per server name.
    assert resumed == [False, True, True, False, True], ResumptionHandler.seen


def test_a_keep_alive_client_that_left_leaves_a_resumable_session(tmp_path: Path, upstream: int) -> None:
    """No Connection: close: the server connection is still open when the client leaves, and
    the proxy ends TLS toward it with close_notify before dropping it (OpenSSL refuses to
    resume the session of a connection freed without one)."""
    proxy = Proxy(["--set", "ssl_insecure=true"], tmp_path)
    try:
        for done in range(1, 4):
            r = curl(proxy, "--cacert", proxy.ca, f"https://127.0.0.1:{upstream}/get")
            assert r.returncode == 0, r.stderr
            _wait_for_server_disconnects(proxy, done)
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
    assert [reused for _host, reused in ResumptionHandler.seen] == [False, True, True], ResumptionHandler.seen
