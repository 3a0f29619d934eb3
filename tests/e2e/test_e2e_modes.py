"""End-to-end proxy modes: real proxydump processes, curl, local servers on 127.0.0.1.

- upstream: curl -> proxydump (upstream mode) -> proxydump (regular) -> origin
- reverse: curl (HTTP/2 too) -> proxydump (reverse:https/http/tcp) -> origin
- socks5: curl --socks5/--socks5-hostname, with and without credentials
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_servers import free_port, start_h2, start_http
from tests.processes import Proxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]

# A stand-in for proxy authentication on the next proxy in the chain: CONNECT and plain
# requests need Proxy-Authorization for user:pass, requests inside a tunnel do not.
REQUIRE_PROXY_AUTH = '''
from proxycore.http import Response

EXPECTED = "Basic dXNlcjpwYXNz"


def _refuse(flow):
    if flow.request.headers.get("Proxy-Authorization") != EXPECTED:
        flow.response = Response.make(407, b"who are you?", {"Proxy-Authenticate": 'Basic realm="chain"'})


def http_connect(flow):
    _refuse(flow)


def requestheaders(flow):
    if flow.server_conn.address is None:  # absolute-form request to us as a proxy
        _refuse(flow)
'''

def run_curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=timeout)


def logged(proxy: Proxy, needle: str, timeout: float = 5) -> None:
    """Wait until ``needle`` shows up in the proxy's log (the terminal log writes to stderr)."""
    deadline = time.monotonic() + timeout
    while needle not in proxy.stderr():
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not logged:\n{proxy.stderr()}")
        time.sleep(0.05)


def stop(proxy: Proxy) -> None:
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server, port = start_http()
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    directory = tmp_path_factory.mktemp("tls-origin")
    server, port = start_http(directory)
    yield port, directory / "upstream.crt"
    server.shutdown()


def script(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


# upstream ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory, tls_origin) -> Iterator[tuple[Proxy, Proxy]]:
    """next_hop: a regular proxydump that wants Proxy-Authorization; front: upstream mode to it."""
    _, origin_ca = tls_origin
    tmp = tmp_path_factory.mktemp("chain")
    next_hop = Proxy(
        ["-s", script(tmp, "auth.py", REQUIRE_PROXY_AUTH), "--set", f"ssl_verify_upstream_trusted_ca={origin_ca}"],
        tmp_path_factory.mktemp("next-hop"),
    )
    front = Proxy(
        [
            "--mode", f"upstream:http://127.0.0.1:{next_hop.port}",
            "--set", "upstream_auth=user:pass",
            "--set", f"ssl_verify_upstream_trusted_ca={next_hop.ca}",
        ],
        tmp_path_factory.mktemp("front"),
    )
    yield front, next_hop
    stop(front)
    stop(next_hop)


def test_upstream_plain_http_goes_through_the_next_proxy(chain, origin):
    front, next_hop = chain
    r = run_curl("-x", front.url, f"http://127.0.0.1:{origin}/get?via=chain")
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["path"] == "/get?via=chain"
    next_hop.wait_output(f"GET http://127.0.0.1:{origin}/get?via=chain")
    front.wait_output(f"GET http://127.0.0.1:{origin}/get?via=chain")
    logged(front, f"HTTP(S) proxy (upstream mode) listening at 127.0.0.1:{front.port}.")


def test_upstream_https_is_intercepted_through_a_connect_to_the_next_proxy(chain, tls_origin):
    front, next_hop = chain
    port, _ = tls_origin
    r = run_curl("-x", front.url, "--cacert", front.ca, f"https://localhost:{port}/get?tls=1")
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["path"] == "/get?tls=1"
    assert "proxy-authorization" not in seen["headers"]  # went to the proxy, not the origin
    front.wait_output(f"GET https://localhost:{port}/get?tls=1")
    next_hop.wait_output(f"GET https://localhost:{port}/get?tls=1")


def test_upstream_post_body_over_https(chain, tls_origin):
    front, _ = chain
    port, _ = tls_origin
    r = run_curl("-x", front.url, "--cacert", front.ca, "--data-binary", "a=1&b=2", f"https://localhost:{port}/post")
    assert json.loads(r.stdout)["body"] == "a=1&b=2"


def test_upstream_without_credentials(tmp_path, chain, origin, tls_origin):
    """The next proxy refuses: its 407 comes back for plain HTTP, a 502 naming it for HTTPS."""
    _, next_hop = chain
    port, _ = tls_origin
    front = Proxy(
        ["--mode", f"upstream:http://127.0.0.1:{next_hop.port}", "--set", f"ssl_verify_upstream_trusted_ca={next_hop.ca}"],
        tmp_path,
    )
    try:
        r = run_curl("-x", front.url, "-i", f"http://127.0.0.1:{origin}/get")
        assert r.stdout.startswith(b"HTTP/1.1 407"), r.stdout
        r = run_curl("-x", front.url, "--cacert", front.ca, "-w", "%{http_code}", f"https://localhost:{port}/get")
        assert r.stdout.endswith(b"502"), r
        assert f"Upstream proxy 127.0.0.1:{next_hop.port} refused HTTP CONNECT request: 407 Proxy Authentication Required".encode() in r.stdout
    finally:
        stop(front)


def test_upstream_proxy_unreachable_gives_502(tmp_path, origin):
    dead = free_port()
    front = Proxy(["--mode", f"upstream:http://127.0.0.1:{dead}"], tmp_path)
    try:
        r = run_curl("-x", front.url, "-i", f"http://127.0.0.1:{origin}/get")
        assert r.stdout.startswith(b"HTTP/1.1 502"), r.stdout
        assert f"upstream proxy 127.0.0.1:{dead}: Connection refused".encode() in r.stdout
    finally:
        stop(front)


def test_https_upstream_proxy(tmp_path_factory, origin, tls_origin):
    """upstream:https:// speaks TLS to the next proxy (a secure web proxy) before anything else."""
    port, origin_ca = tls_origin
    next_hop = Proxy(["--set", f"ssl_verify_upstream_trusted_ca={origin_ca}"], tmp_path_factory.mktemp("swp"))
    front = Proxy(
        ["--mode", f"upstream:https://127.0.0.1:{next_hop.port}", "--set", f"ssl_verify_upstream_trusted_ca={next_hop.ca}"],
        tmp_path_factory.mktemp("swp-front"),
    )
    try:
        r = run_curl("-x", front.url, f"http://127.0.0.1:{origin}/plain")
        assert json.loads(r.stdout)["path"] == "/plain", r
        r = run_curl("-x", front.url, "--cacert", front.ca, f"https://localhost:{port}/secure")
        assert json.loads(r.stdout)["path"] == "/secure", r
        next_hop.wait_output(f"GET https://localhost:{port}/secure")
    finally:
        stop(front)
        stop(next_hop)


# reverse ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def h2_origin(tmp_path_factory) -> tuple[int, Path]:
    directory = tmp_path_factory.mktemp("h2-origin")
    _loop, port = start_h2(directory)
    return port, directory / "upstream.crt"


@contextlib.contextmanager
def reverse_https_proxy(tmp: Path, port: int, origin_ca: Path) -> Iterator[Proxy]:
    """proxydump in reverse:https mode to the local TLS origin on ``port`` (trusting its CA)."""
    proxy = Proxy(
        ["--mode", f"reverse:https://localhost:{port}", "--set", f"ssl_verify_upstream_trusted_ca={origin_ca}"],
        tmp,
    )
    try:
        yield proxy
    finally:
        stop(proxy)


def test_reverse_https_with_http2_client(tmp_path, h2_origin):
    port, origin_ca = h2_origin
    with reverse_https_proxy(tmp_path, port, origin_ca) as proxy:
        url = f"https://localhost:{proxy.port}/rev?h2=1"
        r = run_curl("--http2", "--cacert", proxy.ca, "-w", "\\n%{http_version}", url)
        assert r.returncode == 0, r.stderr
        body, version = r.stdout.rsplit(b"\n", 1)
        assert version == b"2"
        assert json.loads(body) == {"path": "/rev?h2=1", "method": "GET", "protocol": "h2", "body": ""}
        proxy.wait_output(f"GET https://localhost:{port}/rev?h2=1 HTTP/2.0")
        logged(proxy, f"reverse proxy to https://localhost:{port} listening at 127.0.0.1:{proxy.port}.")


def test_reverse_https_accepts_tls_and_plain_clients(tmp_path, tls_origin):
    port, origin_ca = tls_origin
    with reverse_https_proxy(tmp_path, port, origin_ca) as proxy:
        r = run_curl("--cacert", proxy.ca, f"https://localhost:{proxy.port}/over-tls")
        seen = json.loads(r.stdout)
        assert seen["path"] == "/over-tls" and seen["headers"]["host"] == f"localhost:{port}"
        r = run_curl(f"http://127.0.0.1:{proxy.port}/plain-client")
        seen = json.loads(r.stdout)
        assert seen["path"] == "/plain-client" and seen["headers"]["host"] == f"localhost:{port}"
        proxy.wait_output(f"GET https://localhost:{port}/plain-client")


@pytest.mark.parametrize("keep_host_header", [False, True])
def test_reverse_http_and_keep_host_header(tmp_path, origin, keep_host_header):
    args = ["--mode", f"reverse:http://127.0.0.1:{origin}"]
    if keep_host_header:
        args += ["--set", "keep_host_header=true"]
    proxy = Proxy(args, tmp_path)
    try:
        r = run_curl("-H", "Host: shop.example", f"http://127.0.0.1:{proxy.port}/cart")
        seen = json.loads(r.stdout)
        assert seen["path"] == "/cart"
        assert seen["headers"]["host"] == ("shop.example" if keep_host_header else f"127.0.0.1:{origin}")
    finally:
        stop(proxy)


def test_reverse_tcp_relays_bytes_untouched(tmp_path, origin):
    proxy = Proxy(["--mode", f"reverse:tcp://127.0.0.1:{origin}"], tmp_path)
    try:
        r = run_curl("-H", "Host: untouched.example", f"http://127.0.0.1:{proxy.port}/raw")
        seen = json.loads(r.stdout)
        assert seen["path"] == "/raw" and seen["headers"]["host"] == "untouched.example"
        proxy.wait_output(f"-> tcp -> 127.0.0.1:{origin}")
    finally:
        stop(proxy)


def test_several_listeners_in_one_process(tmp_path, origin):
    socks_port, reverse_port = free_port(), free_port()
    proxy = Proxy(
        ["--mode", "regular", "--mode", f"socks5@{socks_port}",
         "--mode", f"reverse:http://127.0.0.1:{origin}@{reverse_port}"],
        tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{origin}/get"
        assert json.loads(run_curl("-x", proxy.url, url).stdout)["path"] == "/get"
        assert json.loads(run_curl("--socks5", f"127.0.0.1:{socks_port}", url).stdout)["path"] == "/get"
        assert json.loads(run_curl(f"http://127.0.0.1:{reverse_port}/get").stdout)["path"] == "/get"
        logged(proxy, f"HTTP(S) proxy listening at 127.0.0.1:{proxy.port}.")
        logged(proxy, f"SOCKS v5 proxy listening at 127.0.0.1:{socks_port}.")
        logged(proxy, f"reverse proxy to http://127.0.0.1:{origin} listening at 127.0.0.1:{reverse_port}.")
    finally:
        stop(proxy)


# socks5 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def socks(tmp_path_factory, tls_origin) -> Iterator[Proxy]:
    _, origin_ca = tls_origin
    proxy = Proxy(
        ["--mode", "socks5", "--set", f"ssl_verify_upstream_trusted_ca={origin_ca}"],
        tmp_path_factory.mktemp("socks"),
    )
    yield proxy
    stop(proxy)


def test_socks5_hostname_http(socks, origin):
    r = run_curl("--socks5-hostname", f"127.0.0.1:{socks.port}", f"http://localhost:{origin}/by-name")
    assert json.loads(r.stdout)["path"] == "/by-name", r
    socks.wait_output(f"GET http://localhost:{origin}/by-name")


def test_socks5_ipv4_https_is_intercepted(socks, tls_origin):
    port, _ = tls_origin
    r = run_curl("--socks5", f"127.0.0.1:{socks.port}", "--cacert", socks.ca, f"https://localhost:{port}/by-ip")
    assert json.loads(r.stdout)["path"] == "/by-ip", r
    socks.wait_output(f"GET https://127.0.0.1:{port}/by-ip")  # curl resolved the name itself


def test_socks5_connection_refused_reply(socks):
    r = run_curl("--socks5", f"127.0.0.1:{socks.port}", f"http://127.0.0.1:{free_port()}/")
    assert r.returncode == 97, r
    assert b"(5)" in r.stderr  # reply code 5: connection refused


def test_socks5_with_credentials_checked_by_proxyauth(tmp_path, origin):
    proxy = Proxy(["--mode", "socks5", "--proxyauth", "user:pass"], tmp_path)
    try:
        url = f"http://localhost:{origin}/secret"
        r = run_curl("--socks5-hostname", f"user:pass@127.0.0.1:{proxy.port}", url)
        assert json.loads(r.stdout)["path"] == "/secret", r
        r = run_curl("--socks5-hostname", f"user:wrong@127.0.0.1:{proxy.port}", url)
        assert r.returncode == 97 and b"User was rejected" in r.stderr, r
        r = run_curl("--socks5-hostname", f"127.0.0.1:{proxy.port}", url)
        assert r.returncode == 97 and b"No authentication method was acceptable" in r.stderr, r
        logged(proxy, "authentication failed")
    finally:
        stop(proxy)


def test_socks5_ipv6_target(socks):
    try:
        server, port = start_http(host="::1")
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    try:
        r = run_curl("--socks5", f"127.0.0.1:{socks.port}", f"http://[::1]:{port}/v6")
        assert json.loads(r.stdout)["path"] == "/v6", r
        socks.wait_output(f"GET http://[::1]:{port}/v6")
    finally:
        server.shutdown()
        server.server_close()
