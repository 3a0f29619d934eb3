"""End-to-end: the real proxydump process, real curl, real local servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e_servers import free_port
from tests.processes import Proxy, curl

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Iterator[Proxy]:
    p = Proxy([], tmp_path_factory.mktemp("proxy"))
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def test_get(proxy, upstream):
    r = curl(proxy, f"http://127.0.0.1:{upstream}/get?a=1", "-H", "X-Test: yes")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["path"] == "/get?a=1" and info["headers"]["x-test"] == "yes"
    out = proxy.wait_output(f"GET http://127.0.0.1:{upstream}/get?a=1")
    assert " << 200 OK" in out


def test_post_form(proxy, upstream):
    r = curl(proxy, "-d", "name=proxy&x=1", f"http://127.0.0.1:{upstream}/post")
    info = json.loads(r.stdout)
    assert info["body"] == "name=proxy&x=1"
    assert info["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_chunked_upload(proxy, upstream, tmp_path):
    data = tmp_path / "upload.bin"
    data.write_bytes(bytes(range(256)) * 300)
    r = curl(
        proxy,
        "-H", "Transfer-Encoding: chunked",
        "--data-binary", f"@{data}",
        f"http://127.0.0.1:{upstream}/post",
    )
    info = json.loads(r.stdout)
    assert info["body"].encode("latin-1") == data.read_bytes()
    assert info["headers"]["transfer-encoding"] == "chunked"


def test_head(proxy, upstream):
    r = curl(proxy, "-I", f"http://127.0.0.1:{upstream}/big/5000")
    assert r.returncode == 0, r.stderr
    assert b"200 OK" in r.stdout and b"Content-Length: 5000" in r.stdout


def test_404(proxy, upstream):
    r = curl(proxy, "-w", "%{http_code}", "-o", "/dev/null", f"http://127.0.0.1:{upstream}/status/404")
    assert r.stdout == b"404"
    assert " << 404 Not Found" in proxy.wait_output("/status/404")


def test_keep_alive_reuses_both_connections(proxy, upstream):
    url = f"http://127.0.0.1:{upstream}/get"
    r = curl(proxy, "-v", url, url, url)
    assert r.returncode == 0, r.stderr
    bodies = [json.loads(x) for x in r.stdout.replace(b"}{", b"}\n{").splitlines()]
    assert len(bodies) == 3
    # one upstream connection served all three requests ...
    assert len({b["client_port"] for b in bodies}) == 1
    # ... and curl reused its connection to the proxy
    assert r.stderr.count(b"Connected to") == 1 or b"Re-using existing connection" in r.stderr


def test_large_body(proxy, upstream):
    r = curl(proxy, f"http://127.0.0.1:{upstream}/big/3000000")
    assert r.stdout == b"x" * 3000000


def test_refused_upstream_gives_502(proxy):
    dead = free_port()
    r = curl(proxy, "-w", "\n%{http_code}", f"http://127.0.0.1:{dead}/")
    body, _, code = r.stdout.rpartition(b"\n")
    assert code == b"502"
    assert b"Cannot connect to 127.0.0.1" in body
    assert f"127.0.0.1:{dead}" in proxy.wait_output(f"http://127.0.0.1:{dead}/")


def test_garbage_request_gives_400_and_proxy_keeps_serving(proxy, upstream):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    r = curl(proxy, f"http://127.0.0.1:{upstream}/get")
    assert r.returncode == 0 and json.loads(r.stdout)["method"] == "GET"


@pytest.fixture(scope="module")
def insecure_proxy(tmp_path_factory) -> Iterator[Proxy]:
    """A proxy that accepts the test upstream's self-signed certificate."""
    p = Proxy(["--set", "ssl_insecure=true"], tmp_path_factory.mktemp("insecure"))
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def test_https_is_intercepted_with_our_ca(insecure_proxy, tls_upstream):
    r = curl(insecure_proxy, "--cacert", insecure_proxy.ca, "-v", f"https://127.0.0.1:{tls_upstream}/get?tls=1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/get?tls=1"
    assert b"issuer: CN=proxycore; O=proxycore" in r.stderr
    # The upstream negotiates no ALPN, so neither do we (mirrored, as mitmproxy does).
    assert b"ALPN: server did not agree" in r.stderr, r.stderr
    out = insecure_proxy.wait_output("tls=1")
    assert f"GET https://127.0.0.1:{tls_upstream}/get?tls=1" in out


def test_https_by_hostname_passes_python_default_verification(insecure_proxy, tls_upstream):
    """Python's ssl with hostname checking on accepts our leaf for a DNS name (SNI)."""
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=insecure_proxy.ca)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    conn = http.client.HTTPSConnection("127.0.0.1", insecure_proxy.port, context=context, timeout=10)
    conn.set_tunnel("localhost", tls_upstream)
    conn.request("GET", "/get?pyssl=1")
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["path"] == "/get?pyssl=1"
    cert = conn.sock.getpeercert()
    assert ("DNS", "localhost") in cert["subjectAltName"]
    assert dict(x[0] for x in cert["issuer"])["commonName"] == "proxycore"
    conn.close()


def test_leaf_copies_the_upstream_certificate_names(insecure_proxy, tls_upstream):
    """Eager strategy: the server handshake comes first, so our leaf carries its CN and SANs."""
    r = curl(insecure_proxy, "--cacert", insecure_proxy.ca, "-v", f"https://127.0.0.1:{tls_upstream}/get")
    assert r.returncode == 0, r.stderr
    assert b"subject: CN=upstream.e2e" in r.stderr


def test_secure_web_proxy(insecure_proxy, upstream):
    """TLS to the proxy port itself, then plain proxying inside it."""
    r = subprocess.run(
        [
            "curl", "-sS", "--max-time", "15", "--proxy", f"https://127.0.0.1:{insecure_proxy.port}",
            "--proxy-cacert", insecure_proxy.ca, f"http://127.0.0.1:{upstream}/get?swp=1",
        ],
        capture_output=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/get?swp=1"


def test_sslkeylogfile(tmp_path, tls_upstream):
    keylog = tmp_path / "keys.log"
    os.environ["SSLKEYLOGFILE"] = str(keylog)
    try:
        p = Proxy(["--set", "ssl_insecure=true"], tmp_path)
    finally:
        del os.environ["SSLKEYLOGFILE"]
    try:
        r = curl(p, "--cacert", p.ca, f"https://127.0.0.1:{tls_upstream}/get")
        assert r.returncode == 0, r.stderr
    finally:
        assert p.stop() == 0
    lines = keylog.read_text().splitlines()
    assert any(line.startswith(("CLIENT_RANDOM ", "CLIENT_TRAFFIC_SECRET_0 ")) for line in lines), lines


def test_upstream_with_untrusted_certificate_gives_502_with_reason(proxy, tls_upstream):
    r = curl(proxy, "--cacert", proxy.ca, f"https://localhost:{tls_upstream}/get", "-w", "\n%{http_code}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\n502")
    assert b"Certificate verify failed: self-signed certificate" in r.stdout
    deadline = time.monotonic() + 5
    while "Certificate verify failed" not in proxy.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Server TLS handshake failed with localhost" in proxy.stderr()


def test_client_that_rejects_our_certificate_is_logged_with_a_hint(insecure_proxy, tls_upstream):
    r = curl(insecure_proxy, f"https://127.0.0.1:{tls_upstream}/get?untrusted=1")
    assert r.returncode == 60  # curl: peer certificate cannot be authenticated
    deadline = time.monotonic() + 5
    while "Client TLS handshake failed" not in insecure_proxy.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "does not trust the proxycore CA" in insecure_proxy.stderr()


def test_ignore_hosts_passes_tls_through_untouched(tmp_path, tls_upstream):
    p = Proxy(["--ignore-hosts", "^127\\.0\\.0\\.1:"], tmp_path)
    try:
        r = curl(p, "-k", "-v", f"https://127.0.0.1:{tls_upstream}/get")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["path"] == "/get"
        assert b"upstream.e2e" in r.stderr  # the upstream's own certificate reached curl
    finally:
        assert p.stop() == 0


def test_ignore_hosts_matches_sni(tmp_path, tls_upstream):
    p = Proxy(["--set", "ignore_hosts=^localhost:"], tmp_path)
    try:
        r = curl(p, "-k", "-v", f"https://localhost:{tls_upstream}/get")
        assert r.returncode == 0, r.stderr
        assert b"upstream.e2e" in r.stderr
        r = curl(p, "-k", "-v", "--connect-to", f"other.test:{tls_upstream}:localhost:{tls_upstream}",
                 f"https://127.0.0.1:{tls_upstream}/get")
        assert b"issuer: CN=proxycore" in r.stderr  # not ignored: intercepted (and 502, untrusted)
    finally:
        assert p.stop() == 0


def test_custom_certificate_with_certs_flag(tmp_path, tls_upstream):
    """--certs domain=path serves that certificate (and its key) for the domain."""
    from tests.e2e_servers import make_self_signed

    cert, key = make_self_signed(tmp_path, "custom.e2e", ("localhost",))
    pem = tmp_path / "custom.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    p = Proxy(["-k", "--certs", f"localhost={pem}"], tmp_path)
    try:
        r = curl(p, "--cacert", str(cert), "-v", f"https://localhost:{tls_upstream}/get?custom=1")
        assert r.returncode == 0, r.stderr
        assert b"subject: CN=custom.e2e" in r.stderr
        assert json.loads(r.stdout)["path"] == "/get?custom=1"
    finally:
        assert p.stop() == 0


def test_garbage_after_connect_ends_only_that_connection(proxy, upstream):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % upstream)
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        s.sendall(b"\x16\x03\x01\x00\x05garbage-that-is-no-hello")
        s.settimeout(5)
        while s.recv(65536):
            pass
    r = curl(proxy, f"http://127.0.0.1:{upstream}/get?after-garbage=1")
    assert json.loads(r.stdout)["path"] == "/get?after-garbage=1"


def test_connect_plain_http_is_intercepted(proxy, upstream):
    r = curl(proxy, "-p", f"http://127.0.0.1:{upstream}/get?tunnel=1")
    assert json.loads(r.stdout)["path"] == "/get?tunnel=1"
    out = proxy.wait_output("tunnel=1")
    assert "GET http://127.0.0.1" in out


def test_addon_script_adds_header(tmp_path, upstream):
    script = tmp_path / "addheader.py"
    script.write_text(
        "from proxycore import http\n\n"
        "def request(flow: http.HTTPFlow) -> None:\n"
        "    flow.request.headers['X-Added'] = 'by-script'\n\n"
        "def response(flow):\n"
        "    flow.response.headers['X-Seen'] = flow.request.path\n"
    )
    p = Proxy(["-s", str(script)], tmp_path)
    try:
        r = curl(p, "-D", "-", f"http://127.0.0.1:{upstream}/get")
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        assert json.loads(body)["headers"]["x-added"] == "by-script"
        assert b"X-Seen: /get" in head
    finally:
        assert p.stop() == 0


def test_addon_script_answers_with_response_make(tmp_path):
    script = tmp_path / "answer.py"
    script.write_text(
        "from proxycore import http\n\n"
        "class Answer:\n"
        "    def request(self, flow):\n"
        "        if flow.request.pretty_host == 'answer.invalid':\n"
        "            flow.response = http.Response.make(200, b'from the proxy', {'Content-Type': 'text/plain'})\n\n"
        "addons = [Answer()]\n"
    )
    p = Proxy(["-s", str(script)], tmp_path)
    try:
        r = curl(p, "http://answer.invalid/anything")
        assert r.stdout == b"from the proxy"
    finally:
        assert p.stop() == 0
