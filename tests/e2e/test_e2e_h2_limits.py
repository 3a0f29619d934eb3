"""End-to-end HTTP/2 hardening: a real rapid-reset client through proxydump to a real h2 origin.

The attacker and the canary are h2-library clients over real sockets (CONNECT,
then TLS with ALPN h2, intercepted by the proxy); the origin is the h2 server of
tests/e2e_servers.py, which records every request whose headers reach it.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.e2e_servers import start_h2
from tests.h2_clients import h2_get, h2_upload, rapid_reset, rss_kib
from tests.processes import Proxy

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


@pytest.fixture(scope="module")
def streaming_proxy(tmp_path_factory):
    proxy = Proxy(["-k", "--set", "stream_large_bodies=1m"], tmp_path_factory.mktemp("h2stream"))
    yield proxy
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_big_h2_upload_is_streamed_not_buffered(streaming_proxy, origin):
    port, _seen = origin
    size = 128 * 2**20
    before = rss_kib(streaming_proxy.proc.pid)
    result = h2_upload(streaming_proxy.port, "localhost", port, "/sink", size)
    assert result.status == 200 and json.loads(result.body)["received"] == size, result
    # Before: the proxy granted a 2 GiB window and queued what the origin had not taken yet
    # (a 500 MB upload peaked at 521 MB of RSS); now about the windows' worth.
    assert rss_kib(streaming_proxy.proc.pid, "VmHWM") - before < 48 * 1024


def test_h2_upload_to_a_slow_origin_stops_the_client(streaming_proxy, origin):
    """The origin hands back credit slowly: the client must be held back by flow control."""
    port, _seen = origin
    result = h2_upload(streaming_proxy.port, "localhost", port, "/slow-sink", 64 * 2**20, give_up_after=3)
    assert result.status == 0  # still uploading when it gave up
    # What the origin took in those seconds, plus a stream window and a queue's worth in the
    # proxy (4 MiB measured); before, the proxy took all 64 MiB at once.
    assert result.sent < 12 * 2**20, result.sent
    assert h2_get(streaming_proxy.port, "localhost", port, "/after")[0] == 200
