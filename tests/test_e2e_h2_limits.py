"""End-to-end HTTP/2 hardening: a real rapid-reset client through proxydump to a real h2 origin.

The attacker and the canary are h2-library clients over real sockets (CONNECT,
then TLS with ALPN h2, intercepted by the proxy); the origin is the h2 server of
tests/e2e_servers.py, which records every request whose headers reach it.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.e2e_servers import start_h2
from tests.h2_rapid_reset import h2_get, rapid_reset, rss_kib
from tests.test_e2e import Proxy

pytestmark = pytest.mark.e2e

ENHANCE_YOUR_CALM = 0xB


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    seen: list[str] = []
    _loop, port = start_h2(tmp_path_factory.mktemp("h2origin"), seen)
    return port, seen


def resets_seen(seen: list[str]) -> int:
    return sum(1 for path in seen if path.startswith("/reset/"))


def test_rapid_reset_gets_goaway_and_spares_other_connections(tmp_path, origin):
    port, seen = origin
    proxy = Proxy(["-k"], tmp_path)
    try:
        assert h2_get(proxy.port, "localhost", port, "/warmup")[0] == 200
        before = resets_seen(seen)
        rss_before = rss_kib(proxy.proc.pid)
        canary: dict[str, object] = {}

        def run_canary() -> None:
            time.sleep(0.05)  # while the attack is under way
            t0 = time.monotonic()
            canary["status"] = h2_get(proxy.port, "localhost", port, "/canary")[0]
            canary["seconds"] = time.monotonic() - t0

        thread = threading.Thread(target=run_canary)
        thread.start()
        result = rapid_reset(proxy.port, "localhost", port, 20_000)
        thread.join(30)
        assert result.goaway_code == ENHANCE_YOUR_CALM, result
        assert result.streams_sent < 20_000  # the proxy hung up long before the end
        # Only a stream whose RST_STREAM had not been read yet when it was forwarded can
        # reach the origin: a handful at most (one per read that split a HEADERS+RST pair).
        assert resets_seen(seen) - before <= 20
        assert canary.get("status") == 200, canary
        assert canary["seconds"] < 3, canary  # before the fix: 7 s here, 23 s under a profiler
        assert rss_kib(proxy.proc.pid) - rss_before < 20_000
        # The proxy serves new connections as before.
        assert h2_get(proxy.port, "localhost", port, "/after")[0] == 200
        assert "(rapid reset): closing the connection" in proxy.stderr()
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_without_the_limit_reset_streams_still_do_not_reach_the_origin(tmp_path, origin):
    port, seen = origin
    proxy = Proxy(["-k", "--set", "http2_max_resets=0"], tmp_path)
    try:
        before = resets_seen(seen)
        result = rapid_reset(proxy.port, "localhost", port, 3_000)
        assert result.goaway_code is None and result.streams_sent == 3_000
        assert resets_seen(seen) - before <= 20, resets_seen(seen) - before
        assert h2_get(proxy.port, "localhost", port, "/after")[0] == 200
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
