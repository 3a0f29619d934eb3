"""HTTP/3 end to end: aioquic's own client and server, proxydump/proxyweb in between, real UDP
sockets on 127.0.0.1.

- ``reverse:http3://`` to an aioquic HTTP/3 origin: requests on one QUIC connection, the
  certificate the client sees (for its SNI, signed by the proxycore CA), Alt-Svc rewritten,
  proxydump's output, the ``-w`` file (read back by us and by mitmproxy 11 and 12), GET /flows.
- An HTTP/3 client on the UDP half of ``reverse:https://`` in front of an HTTP/1.1 origin:
  translated both ways; TCP clients on the same port keep working.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from proxycore.io import FlowReader
from tests.e2e_servers import free_port, start_http
from tests.h3_peers import H3Origin, h3_request, h3_requests
from tests.real_mitmproxy import assert_mitmproxy_reads_back
from tests.webapi import TOKEN, request

pytestmark = pytest.mark.e2e


class Proxy:
    """proxydump (or proxyweb) with the given modes; waits until every listener is up."""

    def __init__(self, tmp: Path, modes: list[str], *args: str, module: str = "proxycore") -> None:
        self.confdir = tmp / "conf"
        self.out = tmp / f"out-{time.monotonic_ns()}.txt"
        self.err = tmp / f"err-{time.monotonic_ns()}.txt"
        mode_args = [a for m in modes for a in ("-m", m)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--listen-host", "127.0.0.1", "--set", f"confdir={self.confdir}",
             *mode_args, *args],
            stdout=self.out.open("wb"), stderr=self.err.open("wb"),
        )
        deadline = time.monotonic() + 20
        while self.stderr().count("listening at") < len(modes):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"proxy did not start:\n{self.stderr()}")
            time.sleep(0.05)

    @property
    def ca(self) -> str:
        return str(self.confdir / "proxycore-ca-cert.pem")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert "Traceback" not in self.stderr(), self.stderr()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H3Origin]:
    server = H3Origin(tmp_path_factory.mktemp("h3-origin"))
    yield server
    server.close()


def test_reverse_http3_to_an_http3_origin(tmp_path: Path, origin: H3Origin, mitmproxy_pythons: dict[str, Path]) -> None:
    port = free_port()
    saved = tmp_path / "h3.mitm"
    proxy = Proxy(tmp_path, [f"reverse:http3://127.0.0.1:{origin.port}@{port}"],
                  "--set", f"ssl_verify_upstream_trusted_ca={origin.cert}", "-w", str(saved))
    try:
        get, post = h3_requests(
            port, [("GET", "/hello?x=1", b""), ("POST", "/upload", b"h3 body")],
            server_name="example.com", cafile=proxy.ca,
        )
        # The certificate the client verified: for its SNI, issued by the proxycore CA.
        leaf = get.peer_certificate
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
        assert "example.com" in names
        ca = x509.load_pem_x509_certificate(Path(proxy.ca).read_bytes())
        assert leaf.issuer == ca.subject
        assert get.alpn == "h3"
        assert get.status == 200 and post.status == 200
        assert b'"path": "/hello?x=1"' in get.body
        assert b'"body": "h3 body"' in post.body and b'"method": "POST"' in post.body
        # The origin advertised its own port; the client is pointed back at the proxy.
        assert get.headers["alt-svc"] == f'h3=":{port}"; ma=60'
        # A wrong CA fails the client's handshake: the check above is a real one.
        with pytest.raises(Exception):  # noqa: B017 - aioquic raises its own alert types
            h3_request(port, server_name="example.com", cafile=str(origin.cert), timeout=5)
        out = _wait_for(proxy.stdout, "POST https://127.0.0.1")
        assert re.search(rf"GET https://127\.0\.0\.1:{origin.port}/hello\?x=1 HTTP/3", out), out
        assert "<< HTTP/3 200 OK" in out, out
    finally:
        proxy.stop()
    flows = assert_mitmproxy_reads_back(mitmproxy_pythons, saved)  # mitmproxy 11 and 12 read the same
    assert sorted(f.request.path for f in flows) == ["/hello?x=1", "/upload"]
    for flow in flows:
        assert flow.request.http_version == "HTTP/3" and flow.response.http_version == "HTTP/3"
        assert flow.client_conn.tls_version == "QUICv1" and flow.client_conn.sni == "example.com"
        assert flow.server_conn.alpn == b"h3" and flow.server_conn.transport_protocol == "udp"


def test_http3_client_to_an_http1_origin_through_reverse_https(tmp_path: Path) -> None:
    server, origin_port = start_http(tmp_path)
    port = free_port()
    proxy = Proxy(tmp_path, [f"reverse:https://127.0.0.1:{origin_port}@{port}"], "--set", "ssl_insecure=true")
    try:
        answer = h3_request(port, "POST", "/post", b"from h3", server_name="localhost", cafile=proxy.ca)
        assert answer.status == 200 and answer.alpn == "h3"
        assert b'"body": "from h3"' in answer.body and b'"path": "/post"' in answer.body
        assert answer.headers["content-type"] == "application/json"
        out = _wait_for(proxy.stdout, "<< HTTP/1.1 200 OK")
        assert "POST https://127.0.0.1" in out and "/post HTTP/3" in out, out
        # The TCP half of the same port still serves TLS and plain clients.
        r = subprocess.run(["curl", "-sSk", "--max-time", "10", f"https://127.0.0.1:{port}/get"],
                           capture_output=True, timeout=20)
        assert r.returncode == 0 and b'"path": "/get"' in r.stdout, r.stderr
    finally:
        proxy.stop()
        server.shutdown()


def test_http3_flows_in_the_web_api(tmp_path: Path, origin: H3Origin) -> None:
    web_port, port = free_port(), free_port()
    proxy = Proxy(tmp_path, [f"reverse:http3://127.0.0.1:{origin.port}@{port}"],
                  "--set", "ssl_insecure=true", "--no-web-open-browser", "--web-port", str(web_port),
                  "--set", "web_fetch_frontend=false", "--set", f"web_password={TOKEN}", module="proxycore.tools.web")
    try:
        _wait_for(proxy.stderr, "Web server listening at")
        answer = h3_request(port, "GET", "/web", server_name="example.com", cafile=proxy.ca)
        assert answer.status == 200
        deadline = time.monotonic() + 10
        while not (flows := request(web_port, "GET", "/flows").json()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (flow,) = flows
        assert flow["request"]["http_version"] == "HTTP/3" and flow["request"]["path"] == "/web"
        assert flow["response"]["http_version"] == "HTTP/3" and flow["response"]["status_code"] == 200
        assert flow["client_conn"]["tls_version"] == "QUICv1"
        assert flow["server_conn"]["alpn"] == "h3"
    finally:
        proxy.stop()


def test_a_stray_datagram_does_not_hurt_the_listener(tmp_path: Path, origin: H3Origin) -> None:
    port = free_port()
    proxy = Proxy(tmp_path, [f"reverse:http3://127.0.0.1:{origin.port}@{port}"], "--set", "ssl_insecure=true")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\xc0\x00\x00\x00\x01garbage that claims to be QUIC", ("127.0.0.1", port))
            s.sendto(b"not QUIC at all", ("127.0.0.1", port))
        assert h3_request(port, "GET", "/after", server_name="example.com", cafile=proxy.ca).status == 200
    finally:
        proxy.stop()


def _wait_for(read: object, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while needle not in (text := read()):  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in:\n{text}")
        time.sleep(0.05)
    return text


LAZY_CHECK = """
import sys
from proxycore.addons import default_addons
from proxycore.addons.proxyserver import make_listener
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy.mode_specs import ProxyMode

master = Master(Options())
master.addons.add(*default_addons())
for spec in ("regular", "reverse:http://example.com", "socks5", "dns", "reverse:udp://example.com:53"):
    make_listener(master, ProxyMode.parse(spec))
before = sorted(m for m in sys.modules if m.startswith("aioquic"))
make_listener(master, ProxyMode.parse("reverse:http3://example.com"))
after = any(m.startswith("aioquic") for m in sys.modules)
print(before, after)
"""


def test_aioquic_is_imported_only_for_http3_listeners() -> None:
    r = subprocess.run([sys.executable, "-c", LAZY_CHECK], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[]", "True"], r.stdout


TO_HTTP3 = '''
def request(flow):
    if flow.request.path.startswith("/via-h3"):
        flow.request.scheme = "https"
        flow.server_conn.transport_protocol = "udp"
'''


def test_regular_mode_client_to_an_http3_server_chosen_by_an_addon(tmp_path: Path, origin: H3Origin) -> None:
    """As with mitmproxy, an addon that sets flow.server_conn.transport_protocol to "udp" has
    the request sent over HTTP/3; curl speaks HTTP/1.1 to the proxy."""
    script = tmp_path / "to_h3.py"
    script.write_text(TO_HTTP3)
    port = free_port()
    proxy = Proxy(tmp_path, [f"regular@{port}"], "-s", str(script),
                  "--set", f"ssl_verify_upstream_trusted_ca={origin.cert}")
    try:
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", f"http://127.0.0.1:{port}",
                            "-d", "from curl", f"http://localhost:{origin.port}/via-h3/x"],
                           capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr
        assert b'"path": "/via-h3/x"' in r.stdout and b'"body": "from curl"' in r.stdout, r.stdout
        out = _wait_for(proxy.stdout, "<< HTTP/3 200 OK")
        assert f"POST https://localhost:{origin.port}/via-h3/x" in out, out
    finally:
        proxy.stop()


def test_reverse_quic_relays_each_stream_as_a_tcp_flow(tmp_path: Path) -> None:
    from proxycore.tcp import TCPFlow
    from tests.h3_peers import QuicEchoServer, quic_echo

    (tmp_path / "echo").mkdir()
    echo = QuicEchoServer(tmp_path / "echo")
    port = free_port()
    saved = tmp_path / "quic.mitm"
    proxy = Proxy(tmp_path, [f"reverse:quic://127.0.0.1:{echo.port}@{port}"],
                  "--set", f"ssl_verify_upstream_trusted_ca={echo.cert}", "-w", str(saved))
    try:
        answers = quic_echo(port, [b"first stream", b"second one", b"x" * 100_000],
                            server_name="echo.example", cafile=proxy.ca)
        assert answers == [b"FIRST STREAM", b"SECOND ONE", b"X" * 100_000]
        out = _wait_for(proxy.stdout, "<- quic stream 0 <- mitmproxy <- quic stream 0 <- 127.0.0.1")
        assert "-> quic stream 4 -> mitmproxy -> quic stream 4 -> 127.0.0.1" in out, out
    finally:
        proxy.stop()
        echo.close()
    with saved.open("rb") as f:
        flows = list(FlowReader(f).stream())
    assert len(flows) == 3 and all(isinstance(f, TCPFlow) for f in flows)
    sent = sorted(b"".join(m.content for m in f.messages if m.from_client) for f in flows)
    assert sent == sorted([b"first stream", b"second one", b"x" * 100_000])
    for flow in flows:
        assert flow.client_conn.alpn == b"echo" and flow.client_conn.sni == "echo.example"
        assert flow.server_conn.alpn == b"echo"


def test_http3_client_to_an_http2_origin_through_reverse_https(tmp_path: Path) -> None:
    from tests.e2e_servers import start_h2

    _loop, origin_port = start_h2(tmp_path)  # a daemon thread, as in test_e2e_http2
    port = free_port()
    proxy = Proxy(tmp_path, [f"reverse:https://127.0.0.1:{origin_port}@{port}"], "--set", "ssl_insecure=true")
    try:
        answers = h3_requests(port, [("GET", "/one", b""), ("POST", "/two", b"h3 to h2"), ("GET", "/size/300000", b"")],
                              server_name="localhost", cafile=proxy.ca)
        assert [a.status for a in answers] == [200, 200, 200]
        assert b'"protocol": "h2"' in answers[0].body and b'"path": "/one"' in answers[0].body
        assert b'"body": "h3 to h2"' in answers[1].body
        assert answers[2].body == b"x" * 300000
        out = _wait_for(proxy.stdout, "/size/300000 HTTP/3")
        assert "<< HTTP/2.0 200 OK" in _wait_for(proxy.stdout, "<< HTTP/2.0 200 OK"), out
    finally:
        proxy.stop()


BYPASS = '''
def tls_clienthello(data):
    if data.client_hello.sni == "bypass.example":
        data.ignore_connection = True
'''


def test_tls_clienthello_can_pass_a_quic_connection_through_untouched(tmp_path: Path) -> None:
    (tmp_path / "origin").mkdir()
    origin = H3Origin(tmp_path / "origin", names=("bypass.example", "127.0.0.1"))
    script = tmp_path / "bypass.py"
    script.write_text(BYPASS)
    port = free_port()
    proxy = Proxy(tmp_path, [f"reverse:http3://127.0.0.1:{origin.port}@{port}"], "-s", str(script),
                  "--set", f"ssl_verify_upstream_trusted_ca={origin.cert}")
    try:
        # Passed through: the client completes its handshake with the origin itself.
        direct = h3_request(port, "GET", "/bypassed", server_name="bypass.example", cafile=str(origin.cert))
        assert direct.status == 200 and direct.peer_certificate.issuer.rfc4514_string() == "CN=h3-origin"
        intercepted = h3_request(port, "GET", "/seen", server_name="intercepted.example", cafile=proxy.ca)
        assert intercepted.status == 200
        out = _wait_for(proxy.stdout, "/seen HTTP/3")
        assert "/bypassed" not in out, out
    finally:
        proxy.stop()
        origin.close()


def test_http3_through_reverse_quic_shows_its_frames(tmp_path: Path, origin: H3Origin) -> None:
    """HTTP/3 relayed as raw QUIC: each stream a TCP flow, readable with the HTTP/3 Frames view."""
    from proxycore import contentviews

    port = free_port()
    saved = tmp_path / "raw-h3.mitm"
    proxy = Proxy(tmp_path, [f"reverse:quic://127.0.0.1:{origin.port}@{port}"],
                  "--set", f"ssl_verify_upstream_trusted_ca={origin.cert}", "-w", str(saved))
    try:
        answer = h3_request(port, "GET", "/raw", server_name="localhost", cafile=proxy.ca)
        assert answer.status == 200 and answer.alpn == "h3" and b'"path": "/raw"' in answer.body
    finally:
        proxy.stop()
    with saved.open("rb") as f:
        flows = list(FlowReader(f).stream())
    request_streams = [f for f in flows if f.metadata["quic_stream_id_client"] == 0]
    assert len(request_streams) == 1 and not request_streams[0].metadata["quic_is_unidirectional"]
    stream = request_streams[0]
    first = next(m for m in stream.messages if m.from_client)
    result = contentviews.prettify_message(first, stream)
    assert result.view_name == "HTTP/3 Frames"
    assert "HEADERS Frame\n:method: GET" in result.text and ":path: /raw" in result.text
    control = [f for f in flows if f.metadata["quic_is_unidirectional"] and f.messages]
    assert any(contentviews.prettify_message(f.messages[0], f).text.startswith("Control Stream") for f in control)


def test_client_replay_of_an_http3_flow_speaks_http3_again(tmp_path: Path, origin: H3Origin) -> None:
    port = free_port()
    saved = tmp_path / "to-replay.mitm"
    proxy = Proxy(tmp_path, [f"reverse:http3://127.0.0.1:{origin.port}@{port}"],
                  "--set", f"ssl_verify_upstream_trusted_ca={origin.cert}", "-w", str(saved))
    try:
        assert h3_request(port, "GET", "/replay-me", server_name="localhost", cafile=proxy.ca).status == 200
    finally:
        proxy.stop()
    replay = subprocess.run(
        [sys.executable, "-m", "proxycore", "-n", "-C", str(saved), "--set", f"confdir={tmp_path / 'conf'}",
         "--set", f"ssl_verify_upstream_trusted_ca={origin.cert}"],
        capture_output=True, text=True, timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    assert f"[replay]: GET https://127.0.0.1:{origin.port}/replay-me HTTP/3" in replay.stdout, replay.stdout
    assert "<< HTTP/3 200 OK" in replay.stdout, replay.stdout


def test_an_http3_server_that_is_not_there_is_a_502(tmp_path: Path) -> None:
    port, nobody = free_port(), free_port()
    proxy = Proxy(tmp_path, [f"reverse:http3://127.0.0.1:{nobody}@{port}"], "--set", "ssl_insecure=true")
    try:
        answer = h3_request(port, "GET", "/x", server_name="localhost", cafile=proxy.ca)
        assert answer.status == 502
        assert b"QUIC connection to the server closed: Connection refused" in answer.body
    finally:
        proxy.stop()
