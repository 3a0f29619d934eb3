"""End to end: the request smuggling of issue 18 against a real proxydump and a real origin
(Python's http.server, which splits heads on bare LF), and its response twin."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e_servers import RecordingHandler, start_http
from tests.processes import Proxy

pytestmark = [pytest.mark.e2e]


class Seen(RecordingHandler):
    seen: list[str] = []


@pytest.fixture
def origin() -> Iterator[int]:
    Seen.seen = []
    server, port = start_http(handler=Seen)
    yield port
    server.shutdown()


@pytest.fixture
def proxy(tmp_path) -> Iterator[Proxy]:
    p = Proxy([], tmp_path)
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` to the proxy and read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_bare_lf_smuggling_is_refused_and_reaches_no_origin(proxy, origin):
    host = f"127.0.0.1:{origin}".encode()
    payload = (
        b"POST http://" + host + b"/innocent HTTP/1.1\r\nHost: " + host + b"\r\nX-A: a\nContent-Length: 0\r\n"
        b"Content-Length: 55\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    )
    # The origin itself is fooled by it, which is why the proxy must not pass it on.
    with socket.create_connection(("127.0.0.1", origin), timeout=10) as sock:
        sock.sendall(payload.replace(b"http://" + host, b""))
        deadline = time.monotonic() + 5
        while "/SMUGGLED" not in Seen.seen and time.monotonic() < deadline:
            time.sleep(0.02)
    assert Seen.seen == ["/innocent", "/SMUGGLED"]
    Seen.seen.clear()

    started = time.monotonic()
    answer = exchange(proxy.port, payload)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1
    assert time.monotonic() - started < 5  # answered and closed at once
    time.sleep(0.3)
    assert Seen.seen == []
    # The canary: the proxy goes on serving.
    ok = exchange(proxy.port, b"GET http://" + host + b"/get HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
    assert Seen.seen == ["/get"]


def test_bad_hosts_are_answered_promptly(proxy):
    for request in (
        b"CONNECT exa\x00mple.com:443 HTTP/1.1\r\n\r\n",
        b"CONNECT a..b:443 HTTP/1.1\r\n\r\n",
        b"GET http://xn--\xc3\xa4.com/ HTTP/1.1\r\n\r\n",
        "GET http://example.com:8²/ HTTP/1.1\r\n\r\n".encode(),
        "POST http://example.com/ HTTP/1.1\r\nContent-Length: ²\r\n\r\n".encode(),
    ):
        started = time.monotonic()
        answer = exchange(proxy.port, request)
        assert answer.startswith(b"HTTP/1.1 400"), (request, answer[:200])
        assert time.monotonic() - started < 5


def raw_origin(response: bytes) -> tuple[socket.socket, int, list[bytes]]:
    """A one-shot origin on a raw socket: reads a request head, sends ``response``, closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            got.append(head)
            conn.sendall(response)

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1], got


def test_response_header_behind_a_bare_lf_never_reaches_the_client(proxy):
    listener, port, got = raw_origin(
        b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: session=attacker\r\nContent-Length: 2\r\n\r\nhi"
    )
    with listener:
        answer = exchange(proxy.port, b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % port)
    assert got, "the request never reached the origin"
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 502"), answer[:200]
    assert b"set-cookie" not in head.lower()


def test_addon_setting_a_host_idna_refuses_gets_502(tmp_path):
    script = tmp_path / "bad_host.py"
    script.write_text('def request(flow):\n    flow.request.host = "a" * 64 + ".example"\n')
    p = Proxy(["-s", str(script)], tmp_path)
    try:
        started = time.monotonic()
        answer = exchange(p.port, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 502"), answer[:300]
        assert b"invalid host" in answer
        assert time.monotonic() - started < 5
    finally:
        assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def test_pipelined_flood_behind_a_slow_request_is_not_buffered(proxy):
    """A client pipelines 40 MB behind a request whose origin never answers: the proxy stops
    reading it (head_size_limit bounds what it holds) instead of buffering it all."""
    from tests.processes import peak_rss_mb

    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    port = listener.getsockname()[1]
    before = peak_rss_mb(proxy)
    request = b"GET http://127.0.0.1:%d/slow HTTP/1.1\r\nHost: x\r\n\r\n" % port
    filler = b"GET http://127.0.0.1:%d/next HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n" % (port, b"p" * 900)
    sent = 0
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.settimeout(0.5)
        sock.sendall(request)
        deadline = time.monotonic() + 8
        block = filler * 64
        try:
            while sent < 40_000_000 and time.monotonic() < deadline:
                sent += sock.send(block)
        except (TimeoutError, BlockingIOError):
            pass  # the proxy stopped reading: the kernel buffers are full
        grown = peak_rss_mb(proxy) - before
    listener.close()
    for conn in accepted:
        conn.close()
    assert sent < 40_000_000, "the proxy read everything"
    assert grown < 20, f"proxy RSS grew by {grown:.1f} MiB for {sent / 1e6:.1f} MB pipelined"
