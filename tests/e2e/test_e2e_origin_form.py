"""Origin-form requests to a regular proxy go where their Host header says (as in
mitmproxy); one whose Host names the proxy itself is refused, not looped."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.test_e2e import Proxy
from tests.e2e_servers import start_http

pytestmark = [pytest.mark.e2e]


def ask(port: int, request: bytes) -> bytes:
    """Send a ``Connection: close`` request; everything until the proxy hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_origin_form_is_served_and_a_request_to_the_proxy_itself_is_refused(tmp_path):
    server, upstream = start_http()
    proxy = Proxy([], tmp_path)
    try:
        served = ask(proxy.port, f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\nConnection: close\r\n\r\n".encode())
        assert served.startswith(b"HTTP/1.1 200"), served[:200]
        assert b"/hello" in served
        looped = ask(proxy.port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\nConnection: close\r\n\r\n".encode())
        assert looped.startswith(b"HTTP/1.1 502"), looped[:200]
        assert b"destination unknown" in looped
    finally:
        proxy.stop()
        server.shutdown()
