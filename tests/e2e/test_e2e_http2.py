"""End-to-end HTTP/2: curl (nghttp2) through proxydump with TLS interception to local servers."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e_servers import start_h2, start_http
from tests.processes import Proxy

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def h2_upstream(tmp_path_factory) -> int:
    _loop, port = start_h2(tmp_path_factory.mktemp("h2"))
    return port


@pytest.fixture(scope="module")
def h1_tls_upstream(tmp_path_factory):
    server, port = start_http(tmp_path_factory.mktemp("h1tls"))
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def h2_proxy(tmp_path_factory):
    p = Proxy(["-k"], tmp_path_factory.mktemp("h2proxy"))
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def curl(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--cacert", proxy.ca, "-x", proxy.url, *args],
        capture_output=True,
        timeout=60,
    )


def test_h2_client_to_h2_server(h2_proxy, h2_upstream):
    r = curl(h2_proxy, "--http2", "-w", "\\n%{http_version}", f"https://localhost:{h2_upstream}/hello?x=1")
    assert r.returncode == 0, r.stderr
    body, version = r.stdout.rsplit(b"\n", 1)
    assert version == b"2"
    assert json.loads(body) == {"path": "/hello?x=1", "method": "GET", "protocol": "h2", "body": ""}
    out = h2_proxy.wait_output("/hello?x=1")
    assert "GET https://localhost" in out and "HTTP/2.0" in out


def test_h2_post_body_and_large_download(h2_proxy, h2_upstream):
    r = curl(h2_proxy, "--http2", "--data-binary", "a=1&b=2", f"https://localhost:{h2_upstream}/post")
    assert json.loads(r.stdout)["body"] == "a=1&b=2"
    size = 5 * 1024 * 1024  # several times the initial 64 KiB windows: flow control both ways
    r = curl(h2_proxy, "--http2", "-o", "-", f"https://localhost:{h2_upstream}/size/{size}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"x" * size


def test_h2_trailers_reach_the_client(h2_proxy, h2_upstream):
    r = curl(h2_proxy, "--http2", "-v", f"https://localhost:{h2_upstream}/with-trailers")
    assert r.returncode == 0, r.stderr
    assert b"x-trailer: yes" in r.stderr.lower()


def test_hundred_concurrent_streams_on_one_connection(h2_proxy, h2_upstream, tmp_path):
    urls = [f"https://localhost:{h2_upstream}/stream/{i}" for i in range(100)]
    args = ["--http2", "--parallel", "--parallel-max", "100", "-w", "%{num_connects} "]
    for i, url in enumerate(urls):
        args += ["-o", str(tmp_path / f"out{i}"), url]
    r = curl(h2_proxy, *args)
    assert r.returncode == 0, r.stderr
    for i in range(100):
        assert json.loads((tmp_path / f"out{i}").read_text())["path"] == f"/stream/{i}"
    assert sum(int(n) for n in r.stdout.split()) == 1  # one connection carried all 100 streams


def test_h2_client_to_http1_only_server(tmp_path, h1_tls_upstream):
    """Lazy strategy: the client picks h2 before the server is known, which speaks HTTP/1.1 only."""
    p = Proxy(["-k", "--set", "connection_strategy=lazy"], tmp_path)
    try:
        r = curl(p, "--http2", "-w", "\\n%{http_version}", "--data-binary", "x=y",
                 "-H", "Cookie: a=1", "-H", "Cookie: b=2", f"https://localhost:{h1_tls_upstream}/post")
        assert r.returncode == 0, r.stderr
        body, version = r.stdout.rsplit(b"\n", 1)
        assert version == b"2"
        info = json.loads(body)
        assert info["path"] == "/post" and info["body"] == "x=y"
        assert info["headers"]["host"] == f"localhost:{h1_tls_upstream}"
        assert info["headers"]["cookie"] == "a=1; b=2"
    finally:
        assert p.stop() == 0


def test_http1_client_to_h2_only_server(tmp_path, h2_upstream):
    """An addon offers h2 upstream: the HTTP/1.1 client is translated to HTTP/2 and back."""
    script = tmp_path / "offer_h2.py"
    script.write_text(
        "def tls_start_server(data):\n"
        "    data.context.server.alpn_offers = [b'h2']\n"
    )
    p = Proxy(["-k", "-s", str(script)], tmp_path)
    try:
        r = curl(p, "--http1.1", "-w", "\\n%{http_version}", f"https://localhost:{h2_upstream}/translated")
        assert r.returncode == 0, r.stderr
        body, version = r.stdout.rsplit(b"\n", 1)
        assert version == b"1.1"
        assert json.loads(body)["protocol"] == "h2"
    finally:
        assert p.stop() == 0
