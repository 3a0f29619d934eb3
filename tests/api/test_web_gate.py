"""api.gate: the Host check (DNS rebinding) and body limits applied before the body is read."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.gate import host_allowed, host_name
from tests.webapi import TOKEN, WebServer, request, running

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path) as s:
        yield s


def raw(port: int, head: bytes, body: bytes = b"", timeout: float = 5) -> bytes:
    """Send a request head (and maybe part of a body), then read the answer until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


# Host ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, name",
    [("127.0.0.1:8081", "127.0.0.1"), ("LocalHost", "localhost"), ("[::1]:80", "::1"),
     ("evil.example:8081", "evil.example"), ("a:b", None), ("", None), ("[::1", None)],
)
def test_host_name(header: str, name: str | None) -> None:
    assert host_name(header) == name


def test_host_allowed_rules() -> None:
    assert host_allowed("localhost", "127.0.0.1", [], [])
    assert host_allowed("::1", "127.0.0.1", [], [])
    assert not host_allowed("evil.example", "127.0.0.1", ["127.0.0.1"], [])
    assert host_allowed("proxy.example", "127.0.0.1", [], ["Proxy.Example"])
    assert host_allowed("anything.example", "127.0.0.1", [], ["*"])
    assert host_allowed("10.1.2.3", "0.0.0.0", [], [])  # all interfaces: any address literal
    assert not host_allowed("rebound.example", "0.0.0.0", [], [])
    assert host_allowed("10.1.2.3", "10.1.2.3", ["10.1.2.3"], [])
    assert not host_allowed("10.1.2.4", "10.1.2.3", ["10.1.2.3"], [])


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_local_host_names_are_served(server: WebServer, host: str) -> None:
    r = request(server.port, "GET", "/flows", headers={"Host": f"{host}:{server.port}"})
    assert r.status == 200


@pytest.mark.parametrize("path", ["/", "/flows", "/static/app.js", "/nope"])
def test_foreign_host_is_refused_with_a_message(server: WebServer, path: str) -> None:
    r = request(server.port, "GET", path, headers={"Host": f"evil.example:{server.port}"})
    assert r.status == 403
    assert "Host header 'evil.example:" in r.text and "web_allowed_hosts" in r.text


def ws_handshake(port: int, host: str) -> bytes:
    """The first line of the answer to a WebSocket handshake with this Host header."""
    lines = [
        "GET /updates HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
        f"Authorization: Bearer {TOKEN}",
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := s.recv(4096)):
            answer += chunk
        if answer.startswith(b"HTTP/1.1 403"):
            while chunk := s.recv(4096):
                answer += chunk
    return answer


def test_foreign_host_is_refused_for_the_websocket(server: WebServer) -> None:
    answer = ws_handshake(server.port, "rebound.example")
    assert answer.startswith(b"HTTP/1.1 403 ") and b"DNS rebinding" in answer
    assert ws_handshake(server.port, f"127.0.0.1:{server.port}").startswith(b"HTTP/1.1 101 ")


def test_web_allowed_hosts_lets_a_reverse_proxy_name_in(server: WebServer) -> None:
    assert request(server.port, "GET", "/flows", headers={"Host": "ui.example.org"}).status == 403
    server.call(lambda: server.master.options.update(web_allowed_hosts=["ui.example.org"]))
    r = request(server.port, "GET", "/flows", headers={"Host": "ui.example.org"})
    assert r.status == 200
    assert ws_handshake(server.port, "ui.example.org").startswith(b"HTTP/1.1 101 ")


def test_missing_host_is_refused(server: WebServer) -> None:
    answer = raw(server.port, b"GET /flows HTTP/1.0\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 ")


# body size before authentication ----------------------------------------------------------


def head(port: int, length: int, *extra: str, path: str = "/flows/dump") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_big_unauthenticated_body_is_refused_before_it_is_sent(server: WebServer) -> None:
    # The client sends only the head of a 90 MB upload: the answer must come without the body.
    answer = raw(server.port, head(server.port, 90 * 1024 * 1024))
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"Authentication required before sending a request body this large." in answer
    assert len(server.view) == 0


def test_refusal_reaches_a_client_that_keeps_sending(server: WebServer) -> None:
    answer = raw(server.port, head(server.port, 90 * 1024 * 1024), b"x" * 300_000)
    assert answer.startswith(b"HTTP/1.1 403 ")


def test_expect_100_continue_gets_the_403_not_a_100(server: WebServer) -> None:
    answer = raw(server.port, head(server.port, 10**8, "Expect: 100-continue"))
    assert answer.startswith(b"HTTP/1.1 403 ")


def test_unauthenticated_chunked_body_is_refused(server: WebServer) -> None:
    answer = raw(server.port, head(server.port, 0, "Transfer-Encoding: chunked").replace(b"Content-Length: 0\r\n", b""))
    assert answer.startswith(b"HTTP/1.1 403 ")


def test_small_unauthenticated_body_gets_the_ordinary_403(server: WebServer) -> None:
    r = request(server.port, "POST", "/clear", b"x" * 1000, auth=False)
    assert r.status == 403 and r.body == b""


def test_authenticated_body_over_web_max_body_size_is_413(server: WebServer) -> None:
    server.call(lambda: server.master.options.update(web_max_body_size="100k"))
    answer = raw(server.port, head(server.port, 200 * 1024, f"Authorization: Bearer {TOKEN}"))
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"web_max_body_size is 102400" in answer
    # credentials as the query argument count too
    answer = raw(server.port, head(server.port, 200 * 1024, path=f"/flows/dump?token={TOKEN}"))
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_authenticated_big_upload_under_the_limit_is_read(server: WebServer) -> None:
    r = request(server.port, "POST", "/flows/dump", b"\x00" * 200_000)
    assert r.status == 400 and "Invalid flow file" in r.text  # read and parsed, not refused


def test_web_max_body_size_must_be_a_size(server: WebServer) -> None:
    from proxycore.exceptions import OptionsError

    for bad in ("0", "lots", ""):
        with pytest.raises(OptionsError, match="web_max_body_size"):
            server.call(lambda bad=bad: server.master.options.update(web_max_body_size=bad))
